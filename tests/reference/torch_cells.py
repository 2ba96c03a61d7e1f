#!/usr/bin/env python3
"""Prints the expected outputs of tests/test_layers.cpp's "cells match PyTorch" case.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/torch_cells.py
Weights: the k-th entry (row-major) of the j-th parameter, in PyTorch's order weight_ih, weight_hh, bias_ih,
bias_hh, is 0.5 sin(0.37 k + j). Inputs x[t, b, i] = cos(0.5 n), n the row-major index over (T, B, I).
Initial state h0[b, h] = 0.1 (b H + h + 1), c0[b, h] = -0.05 (b H + h + 1).
"""
import math
import torch

T, B, I, H = 3, 2, 3, 2
torch.set_printoptions(precision=8)


def fill(mod):
    for j, name in enumerate(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]):
        p = getattr(mod, name)
        flat = torch.tensor([0.5 * math.sin(0.37 * k + j) for k in range(p.numel())], dtype=torch.float64)
        with torch.no_grad():
            p.copy_(flat.view_as(p))


x = torch.tensor([math.cos(0.5 * n) for n in range(T * B * I)], dtype=torch.float64).view(T, B, I)
h0 = torch.tensor([0.1 * (n + 1) for n in range(B * H)], dtype=torch.float64).view(1, B, H)
c0 = torch.tensor([-0.05 * (n + 1) for n in range(B * H)], dtype=torch.float64).view(1, B, H)

for name, mod in [("RNN_TANH", torch.nn.RNN(I, H, nonlinearity="tanh")),
                  ("RNN_RELU", torch.nn.RNN(I, H, nonlinearity="relu")),
                  ("LSTM", torch.nn.LSTM(I, H)), ("GRU", torch.nn.GRU(I, H))]:
    mod = mod.double()
    fill(mod)
    out, _ = mod(x, (h0, c0)) if name == "LSTM" else mod(x, h0)
    vals = ", ".join(f"{v:.8f}f" for v in out.reshape(-1).tolist())
    print(f'{{"{name}", {{{vals}}}}},')
