"""Two full-batch FC runs on the embedded digits data, λ = 0.01 and λ = 0.001, each for
2/(η·λ) epochs (the paper's FC budget rule), and the quantities of SPEC §2 law 1 and 2:
t*·η·λ (≈ the same c for both) and the best test accuracy (higher for the smaller λ).

    python examples/fc_digits_two_lambdas.py [--width 512] [--eta 0.5] [--n-train 512]
"""

from __future__ import annotations

import argparse
import json

from l2dynamics import DataConfig, ModelConfig, TrainConfig
from l2dynamics.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for lam in args.lams:
        cfg = TrainConfig(
            data=DataConfig("digits", n_train=args.n_train),
            model=ModelConfig("fc", {"depth": args.depth, "width": args.width, "sigma_w": 2**0.5}),
            eta=args.eta,
            lam=lam,
            budget_c=2.0,
            seed=args.seed,
        )
        r = train(cfg)
        rows.append(
            {
                "lam": lam,
                "status": r.status,
                "max_train_acc": r.max_train_acc,
                "best_test_acc": r.best_test_acc,
                "t_star_epochs": r.t_star_epochs,
                "t_star_eta_lam": r.t_star_epochs * args.eta * lam,
                "t_star_resolution": r.t_star_resolution,
                "steps": r.steps,
                "wall_s": round(r.wall_s, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
