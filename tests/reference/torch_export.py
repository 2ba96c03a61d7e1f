#!/usr/bin/env python3
"""Exports a PyTorch word-language-model RNNModel state dict as safetensors, and prints PyTorch's own loss on a
split, so that `xtgrad-lm eval` on the exported file can be compared with it.

Run with Debian's python3-torch (no safetensors package needed: the format is written by hand):
  /usr/bin/python3 tests/reference/torch_export.py --data ../shared/data/wikitext-2 --out pt.safetensors \\
      [--model LSTM] [--emsize 32] [--nhid 32] [--nlayers 2] [--split valid] [--state_dict FILE.pt]
Without --state_dict the model is freshly initialised with --seed (as the example would be); --safetensors FILE
loads weights written by xtgrad-lm into the PyTorch model first (the other direction).
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench"))


def save_safetensors(state, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name].detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().tobytes()  # little-endian on x86
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__" or name.startswith(("optim.", "state.")):
            continue
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e["shape"])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="LSTM")
    p.add_argument("--emsize", type=int, default=32)
    p.add_argument("--nhid", type=int, default=32)
    p.add_argument("--nlayers", type=int, default=2)
    p.add_argument("--split", default="valid")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--state_dict", default="")
    p.add_argument("--safetensors", default="", help="load these weights (e.g. written by xtgrad-lm) first")
    args = p.parse_args()
    sys.argv = [sys.argv[0], "--data", args.data]  # torch_lm parses its own flags at import
    import torch_lm

    torch.manual_seed(args.seed)
    corpus = torch_lm.Corpus(args.data)
    model = torch_lm.RNNModel(args.model, len(corpus.dictionary), args.emsize, args.nhid, args.nlayers, 0.0)
    if args.state_dict:
        model.load_state_dict(torch.load(args.state_dict))
    if args.safetensors:
        model.load_state_dict(load_safetensors(args.safetensors))  # strict: every name and shape must match
    save_safetensors(model.state_dict(), args.out)
    data = torch_lm.batchify(getattr(corpus, args.split), 10)
    model.eval()
    total, hidden = 0.0, model.init_hidden(10)
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, 35):
            x, y = torch_lm.get_batch(data, i, 35)
            out, hidden = model(x, hidden)
            total += len(x) * F.cross_entropy(out, y).item()
    loss = total / (data.size(0) - 1)
    print(f"PyTorch {args.split}: loss {loss:.4f} ppl {math.exp(loss):.2f} -> {args.out}")


if __name__ == "__main__":
    main()
