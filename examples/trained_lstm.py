"""Analyse a trained model: why does a 2-layer character LSTM forget?

Trains ``Embedding -> nn.LSTM(num_layers=2) -> Linear`` (PyTorch, CPU, a minute or two)
to predict the next character of text that is on every machine without a download (the
source of a few modules of Python's own standard library), then asks gradspec about the
trained model along real text:

- lambda_1: the top Lyapunov exponent of the whole 2-layer stack (the worst direction);
- loss_rate: the rate at which the gradient of the model's own readout decays with the
  lag, carried back through the recurrence (``diagnose(..., readout=head.weight)``);
- torch: the same rate measured independently by PyTorch's autograd, from the loss at
  the last character to every earlier state of both layers;
- the units that carry lambda_1 but that the loss never sees, with their gates.

Run: ``python examples/trained_lstm.py`` (``--steps`` to train longer).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import torch

import gradspec
from gradspec.interop import find_recurrent, from_torch

jax.config.update("jax_enable_x64", True)
MODULES = ("argparse", "collections/__init__", "dataclasses", "functools", "inspect", "typing")


def corpus() -> str:
    root = os.path.dirname(os.__file__)
    return "".join(open(os.path.join(root, m + ".py"), encoding="utf-8").read() for m in MODULES)


class CharModel(torch.nn.Module):
    def __init__(self, vocab: int, embed: int = 16, hidden: int = 64):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed)
        self.lstm = torch.nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])


def batches(ids: np.ndarray, batch: int, length: int, rng: np.random.Generator):
    starts = rng.integers(0, len(ids) - length - 1, batch)
    chunk = np.stack([ids[s : s + length + 1] for s in starts])
    return torch.from_numpy(chunk[:, :-1]), torch.from_numpy(chunk[:, 1:])


def train(model, ids, steps: int, rng) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        x, y = batches(ids, 32, 100, rng)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return float(loss.detach())


def torch_rate(model, x, y) -> float:
    """Slope over lags of log ||d loss_T / d (h, c)_{T-k}|| (both layers), by autograd:
    the LSTM run one step at a time so that every state is a node with a gradient."""
    model = model.double()
    emb = model.embed(x).double()
    state, kept = None, []
    for t in range(emb.shape[1]):
        _, state = model.lstm(emb[:, t : t + 1], state)
        for s in state:
            s.retain_grad()
        kept.append(state)
    logits = model.head(state[0][-1])  # the last layer's h at the last step
    torch.nn.functional.cross_entropy(logits, y[:, -1], reduction="sum").backward()
    def square(s):  # the last c does not reach the loss: no gradient at all
        return 0.0 if s.grad is None else (s.grad**2).sum((0, 2)).numpy()

    logs = np.stack([  # (T, B): per sequence, log of the joint state's gradient norm
        0.5 * np.log(square(h) + square(c)) for h, c in kept])[::-1]
    lags = np.arange(len(logs))
    return float(np.mean([np.polyfit(lags, logs[:, b], 1)[0] for b in range(logs.shape[1])]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps")
    parser.add_argument("--T", type=int, default=200, help="length of the analysed text")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    text = corpus()
    vocab = sorted(set(text))
    ids = np.array([vocab.index(ch) for ch in text], np.int64)
    model = CharModel(len(vocab))
    start = time.perf_counter()
    loss = train(model, ids, args.steps, rng)
    print(f"trained {args.steps} steps on {len(text)} characters ({len(vocab)} symbols) in "
          f"{time.perf_counter() - start:.0f} s: loss {loss:.3f} nats/char")

    found = find_recurrent(model)  # the LSTM, its embedding and its readout
    cell, params = from_torch(found.module, dtype="float64")
    x, y = batches(ids, 16, args.T, rng)
    with torch.no_grad():
        xs = found.embedding(x).double().numpy()  # (B, T, D): the real inputs
    readout = found.readout.weight.detach().double().numpy()  # (vocab, N)
    d = gradspec.diagnose(cell, params, xs, readout=readout)
    p = gradspec.predict(cell, params, T=args.T, inputs=xs)
    print(f"\n{cell}, {xs.shape[0]} sequences of {args.T} characters of real text:\n")
    print(f"  lambda_1 (top exponent, worst direction)  {d.lyapunov:+.4f} +- {d.lyapunov_se:.4f}")
    print(f"  loss_rate (the readout's gradient)        {d.loss_rate:+.4f} +- {d.loss_rate_se:.4f}")
    print(f"  torch autograd, loss at the last char     {torch_rate(model, x, y):+.4f}")
    print(f"  predict (sampled along the text)          {p.lyapunov:+.4f} ({p.regime})")
    print(f"  verdict (follows the loss)                {d.regime}")
    print(f"  invisible state entries                   {d.invisible_units}\n")
    print("why:")
    for line in d.why:
        print(f"  - {line}")


if __name__ == "__main__":
    main()
