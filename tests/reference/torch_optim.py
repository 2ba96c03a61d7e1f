#!/usr/bin/env python3
"""Prints the expected parameters of tests/test_optim.cpp after each of 3 steps of each optimiser.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/torch_optim.py
The parameter starts at [1.0, -2.0, 0.5]; before each step its gradient is set to 2 p + [0.1, -0.3, 0.2]
(the gradient of sum(p^2) + c.p). float32, as in xtgrad.
"""
import torch

C = torch.tensor([0.1, -0.3, 0.2])
CASES = [
    ("sgd", lambda p: torch.optim.SGD([p], lr=0.1)),
    ("sgd_momentum_wd", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda p: torch.optim.Adam([p], lr=0.1)),
    ("adam_wd", lambda p: torch.optim.Adam([p], lr=0.1, weight_decay=0.1)),
    ("adamw", lambda p: torch.optim.AdamW([p], lr=0.1, weight_decay=0.1)),
    ("adagrad", lambda p: torch.optim.Adagrad([p], lr=0.1, lr_decay=0.01)),
    ("rmsprop", lambda p: torch.optim.RMSprop([p], lr=0.01)),
    ("rmsprop_centered_momentum", lambda p: torch.optim.RMSprop([p], lr=0.01, momentum=0.5, centered=True)),
]
for name, make in CASES:
    p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = make(p)
    rows = []
    for _ in range(3):
        p.grad = (2 * p + C).detach()
        opt.step()
        rows.append("{" + ", ".join(f"{v:.8g}f" for v in p.detach().tolist()) + "}")
    print(f'{{"{name}", {{{", ".join(rows)}}}}},')
