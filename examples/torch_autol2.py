"""AutoL2 with a PyTorch optimizer: a small MLP on scikit-learn's digits, SGD + AutoL2.

The loss is SPEC §1's normalized cross-entropy (mean cross-entropy / 2k, k = 10 classes) and
λ is the coefficient of (λ/2)‖θ‖², which torch's SGD applies as ``weight_decay`` (coupled,
before momentum). AutoL2 measures the bare minibatch loss and error every k steps and decays λ
by 10 when both rise twice in a row (SPEC §3). Runs in a few seconds on a CPU:

    python examples/torch_autol2.py [--steps 600] [--eta 2.0] [--k 10]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits

from l2dynamics.torch import AutoL2

N_CLASSES = 10


def digits(seed: int) -> tuple[torch.Tensor, ...]:
    """Standardized digits, split 1437 train / 360 test."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    x = (x - x[:1437].mean(0)) / (x[:1437].std(0) + 1e-6)
    as_t = torch.from_numpy
    return as_t(x[:1437]), as_t(y[:1437]), as_t(x[1437:]), as_t(y[1437:])


def loss_and_error(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Bare loss (no L2) = mean cross-entropy / (2k), and the error (a fraction)."""
    loss = torch.nn.functional.cross_entropy(logits, y) / (2 * N_CLASSES)
    return loss, (logits.argmax(1) != y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eta", type=float, default=2.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--k", type=int, default=10, help="steps between measurements")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a model this small only loses time to thread hand-offs
    torch.manual_seed(args.seed)
    x, y, x_test, y_test = digits(args.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, N_CLASSES)
    )
    opt = torch.optim.SGD(model.parameters(), lr=args.eta, momentum=args.momentum)
    sched = AutoL2(opt, k=args.k)
    print(f"step {0:4d}  λ = {sched.lam:.3g}")
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        idx = torch.randint(len(x), (args.batch,), generator=gen)
        loss, err = loss_and_error(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched.step(loss, err):
            print(f"step {step:4d}  λ = {sched.lam:.3g}  (loss {loss.item():.4f}, error {err:.3f})")
    with torch.no_grad():
        _, test_err = loss_and_error(model(x_test), y_test)
        _, train_err = loss_and_error(model(x), y)
    print(
        f"after {args.steps} steps: λ = {sched.lam:.3g}, train acc {1 - train_err:.3f}, "
        f"test acc {1 - test_err:.3f}"
    )


if __name__ == "__main__":
    main()
