"""Figure 5: infinite-width theory of L2 against finite networks (SPEC §4 and §5, row "5").

Panels of ``fig5.png``:

- (a, b) f_t of eq. (3) for k = 2 and k = 1 at λ = 0.01, one curve per kernel eigenvalue λ_a
  (f_a(0) = 0, y_a = 1): with k = 2 learning switches off on the time scale 1/λ and f_t → 0.
- (c) a bias-free 2-layer ReLU net on 200 MNIST images with even/odd labels (±1): its training
  outputs under gradient descent with L2, against eq. (3) evolved from the empirical Θ_0 of a
  width-5000 net of the same family with k = 1 and with k = 2.
- (d) kernel decay: ⟨Θ_t, Θ_0⟩/‖Θ_0‖² measured along training at several widths, against
  e^{−2(k−1)λt}.
- (e) the deep-linear fixed point f = 1 − λ√n against gradient descent.
- (f) the distance of the trained outputs to the k = 1 and k = 2 predictions over time.

Conventions (see :mod:`l2dynamics.theory`): the loss is the *sum* ``Σ_x ½(f − y)² + (λ/2)‖θ‖²``,
time is ``t = η·step``, the networks use NTK normalization (their kernel has a width-independent
limit at fixed η; the standard parametrization's grows ∝ width). The mean-normalized loss
``(1/N) Σ_x ½(f − y)²`` with λ_mean is the same flow with ``λ = N·λ_mean``, its time t_mean being
``N·t`` here: the λ = 2 on N = 200 images is λ_mean = 0.01, the λ of panels (a, b), and
the trained time t = 1.5 is t_mean = 300 (3/λ_mean).

Why λ = 2 (sum) and not smaller: the kernel decay's relative error at width n scales as
``C/(λ√n)``; smaller λ measured far from the theory at CPU widths (benchmarks/fig5-notes.md).

Every number of the figure, at each scale, is in the experiment file ``files/fig5.toml``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from l2dynamics.config import from_dict
from l2dynamics.errors import ConfigError
from l2dynamics.experiments.base import SCALES, ReproduceRequest
from l2dynamics.experiments.spec import read_file
from l2dynamics.files import write_json
from l2dynamics.theory import (
    TwoLayerReLU,
    empirical_ntk,
    euler_residual,
    evolve_outputs,
    fit_decay_rate,
    fixed_point,
    hessian_euler_residual,
    homogeneity_degree,
    kernel_decay_rate,
    kernel_deviation,
    kernel_overlap,
    mode_evolution,
    relative_error,
    solve_eq1,
    train_deep_linear,
    train_with_kernels,
)


@dataclasses.dataclass(frozen=True)
class Fig5Config:
    """Every number of Figure 5, as :func:`load_configs` reads it from ``files/fig5.toml`` (no
    defaults here: each number is written once, in that file, with what it is).

    Attributes:
        theory_lam: λ of panels (a, b).
        eigenvalues: kernel eigenvalues λ_a of panels (a, b).
        theory_t: (first, last) physical time of panels (a, b) (log-spaced).
        dataset, n_train, seed: the images (MNIST, 200, balanced over digits, pixels in [0, 1]).
        kernel_width: width of the net whose Θ_0 drives the eq. (3) prediction of panel (c).
        widths: widths trained for the kernel-decay table; the widest is panel (c)'s network.
        lam: λ of training (sum-normalized loss; λ/n_train in mean normalization).
        eta: gradient-descent step η; t_max: physical time trained (t = η·step).
        segments: kernel measurements after t = 0; record_every: steps between output records.
        probes: training images the kernel is measured on; block_size: NTK block size.
        ode_size, ode_kernels: size and number of random kernels for eq. (3) vs ODE, per k.
        ode_lam: λ of that check; ode_t: its last time, in units of 1/ode_lam.
        homogeneity_width: width of the FC nets of the Lemma 1 check.
        homogeneity_layers: their numbers of weight layers L (k = L).
        linear_ns: widths n of the deep-linear check; linear_c: the values of λ√n.
    """

    theory_lam: float
    eigenvalues: tuple[float, ...]
    theory_t: tuple[float, float]
    dataset: str
    n_train: int
    seed: int
    kernel_width: int
    widths: tuple[int, ...]
    lam: float
    eta: float
    t_max: float
    segments: int
    record_every: int
    probes: int
    block_size: int
    ode_size: int
    ode_kernels: int
    ode_lam: float
    ode_t: float
    homogeneity_width: int
    homogeneity_layers: tuple[int, ...]
    linear_ns: tuple[int, ...]
    linear_c: tuple[float, ...]

    @property
    def steps(self) -> int:
        """Gradient-descent steps per width: ``t_max/η``, a multiple of the record period."""
        per = self.segments * self.record_every
        return per * max(1, round(self.t_max / self.eta / per))


# The tables of files/fig5.toml: its header, the paper scale, and overrides of it per scale
# ("tiny" is for tests only, not a CLI scale).
HEADER_KEYS = ("figure", "title", "runner", "shows")
OVERRIDES = ("cpu", "tiny")


def load_configs(text: str | None = None) -> dict[str, Fig5Config]:
    """Figure 5's configs by scale ("paper", "cpu", "tiny"), from ``files/fig5.toml``.

    Args:
        text: TOML to read instead of the file (for tests).

    Raises:
        ConfigError: an unknown table or key, a missing key or a value of the wrong type,
            named (e.g. ``unknown key 'cpu.widthz'``).
    """
    data = read_file("fig5") if text is None else tomllib.loads(text)
    known = ("experiment", "config", *OVERRIDES)
    for table in data:
        if table not in known:
            raise ConfigError(f"fig5.toml: unknown table [{table}] (known: {', '.join(known)})")
    for key in data.get("experiment", {}):
        if key not in HEADER_KEYS:
            raise ConfigError(f"fig5.toml: unknown key 'experiment.{key}'")
    paper = from_dict(Fig5Config, data.get("config", {}), prefix="config.")
    over = {
        s: from_dict(Fig5Config, data.get(s, {}), prefix=f"{s}.", base=paper) for s in OVERRIDES
    }
    return {"paper": paper, **over}


def run(request: ReproduceRequest) -> dict[str, Any]:
    """Reproduce Figure 5 at ``request.scale`` into ``request.out_dir`` (see the module doc)."""
    if request.scale not in SCALES:
        raise ConfigError(f"fig5: unknown scale {request.scale!r} (choose cpu or paper)")
    return run_config(request, load_configs()[request.scale])


def run_config(request: ReproduceRequest, cfg: Fig5Config) -> dict[str, Any]:
    """Compute every panel and check with ``cfg``; write fig5.png, CSVs, summary.json, report."""
    start, out, say = time.time(), Path(request.out_dir), request.say
    x, y = load_images(cfg, request.data_dir)  # first: a missing data set fails at once
    say("theory curves, Lemma 1, deep linear", 0, None)
    tables = {"panel_ab": theory_curves(cfg), "homogeneity": homogeneity_table(cfg)}
    tables["deep_linear"] = deep_linear_table(cfg)
    say(f"Θ_0 of the width-{cfg.kernel_width} net on {len(y)} images", 0, None)
    theta0 = kernel_of_fresh_net(cfg, x)
    tables["eq3_vs_ode"] = ode_table(cfg, theta0)
    widths, trace = width_runs(cfg, x, y, request)
    tables.update(widths)
    tables["panel_c"], tables["distances"] = panel_c(cfg, theta0, trace, y)
    summary = summarize(cfg, request.scale, tables)
    summary["wall_s"] = time.time() - start
    write_outputs(out, summary, tables, cfg)
    say("done", 1, 1)
    return summary


# --------------------------------------------------------------------------- the computations


def theory_curves(cfg: Fig5Config) -> pd.DataFrame:
    """Panels (a, b): eq. (3) with f_a(0) = 0, y_a = 1 per eigenvalue, k = 2 and k = 1."""
    t = np.geomspace(*cfg.theory_t, 300)
    lam_a = np.asarray(cfg.eigenvalues)
    rows = []
    for k in (2, 1):
        f = mode_evolution(
            lam_a, np.zeros_like(lam_a), np.ones_like(lam_a), t, lam=cfg.theory_lam, k=k
        )
        for j, ev in enumerate(lam_a):
            rows.append(pd.DataFrame({"k": k, "eigenvalue": ev, "t": t, "f": f[:, j]}))
    return pd.concat(rows, ignore_index=True)


def ode_table(cfg: Fig5Config, theta0: np.ndarray) -> pd.DataFrame:
    """Eq. (3) (matrix form) against the ODE solve of eq. (1)+(2): random PD kernels with
    eigenvalues log-uniform in [1e-3, 1e2], and the network's own Θ_0, for k = 1, 2, 3."""
    rng = np.random.default_rng(cfg.seed)
    kernels = [(f"random {i}", _random_pd(rng, cfg.ode_size)) for i in range(cfg.ode_kernels)]
    kernels.append((f"network Θ_0 ({len(theta0)} images)", theta0))
    t = np.linspace(0.0, cfg.ode_t / cfg.ode_lam, 41)
    rows = []
    for name, kern in kernels:
        f0, y = rng.normal(size=len(kern)), rng.choice([-1.0, 1.0], size=len(kern))
        for k in (1, 2, 3):
            closed = evolve_outputs(kern, f0, y, t, lam=cfg.ode_lam, k=k)
            ode = solve_eq1(kern, f0, y, t, lam=cfg.ode_lam, k=k)
            rows.append({"kernel": name, "k": k, "rel_error": relative_error(closed, ode)})
    return pd.DataFrame(rows)


def _random_pd(rng: np.random.Generator, n: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.exp(rng.uniform(np.log(1e-3), np.log(1e2), n))) @ q.T


def homogeneity_table(cfg: Fig5Config) -> pd.DataFrame:
    """Lemma 1 for bias-free ReLU FC nets with L weight layers (k = L), on random inputs."""
    from l2dynamics.models import FC

    x = jax.random.normal(jax.random.key(cfg.seed), (8, 8, 8, 1), jnp.float32)
    rows = []
    for layers in cfg.homogeneity_layers:
        net = FC(depth=layers - 1, width=cfg.homogeneity_width, num_classes=3, use_bias=False)
        params = net.init(jax.random.key(layers), x)["params"]

        def apply(p: Any, xs: jax.Array, net: FC = net) -> jax.Array:
            return net.apply({"params": p}, xs)

        rows.append(
            {
                "weight_layers": layers,
                "fitted_k": homogeneity_degree(apply, params, x),
                "euler_m0_residual": euler_residual(apply, params, x, layers),
                "euler_m1_residual": hessian_euler_residual(apply, params, x, layers),
            }
        )
    return pd.DataFrame(rows)


def deep_linear_table(cfg: Fig5Config) -> pd.DataFrame:
    """Gradient descent on ``f = n^{−1/2} W₁W₀x`` against the fixed point ``max(0, 1 − λ√n)``."""
    rows = []
    for n in cfg.linear_ns:
        lams = [c / math.sqrt(n) for c in cfg.linear_c]
        result = train_deep_linear(n, lams, seed=cfg.seed)
        for c, lam, f, steps in zip(cfg.linear_c, lams, result.f, result.steps, strict=True):
            pred = fixed_point(n, lam)
            rel = abs(float(f) - pred) / pred if pred > 0 else float("nan")
            rows.append(
                {
                    "n": n,
                    "lam": lam,
                    "lam_sqrt_n": c,
                    "f_gd": float(f),
                    "f_pred": pred,
                    "rel_error": rel,
                    "steps": int(steps),
                }
            )
    return pd.DataFrame(rows)


def load_images(cfg: Fig5Config, data_dir: str | None) -> tuple[jax.Array, np.ndarray]:
    """The training images flattened ``(N, d)`` (pixels in [0, 1]) and ±1 even/odd targets."""
    from l2dynamics.data.datasets import load_dataset

    ds = load_dataset(
        cfg.dataset,
        data_dir=data_dir,
        n_train=cfg.n_train,
        n_test=10,
        seed=cfg.seed,
        balanced=True,
        standardize=False,
        even_odd=True,
    )
    x = jnp.asarray(ds.x_train.reshape(ds.n_train, -1))
    return x, np.where(ds.y_train == 1, 1.0, -1.0).astype(np.float32)


def _net_fn(width: int) -> tuple[TwoLayerReLU, Callable]:
    net = TwoLayerReLU(width)

    def apply(p: Any, xs: jax.Array) -> jax.Array:
        return net.apply({"params": p}, xs)

    return net, apply


def kernel_of_fresh_net(cfg: Fig5Config, x: jax.Array) -> np.ndarray:
    """Θ_0 (float64 ``(N, N)``) of a fresh width-``kernel_width`` net, by the implicit NTK."""
    net, apply = _net_fn(cfg.kernel_width)
    params = net.init(jax.random.key(cfg.seed + 1000), x[:1])["params"]
    return np.asarray(empirical_ntk(apply, params, x, block_size=cfg.block_size), np.float64)


def width_runs(
    cfg: Fig5Config, x: jax.Array, y: np.ndarray, request: ReproduceRequest
) -> tuple[dict[str, pd.DataFrame], Any]:
    """Train every width, measure Θ_t on the probes; the table, the curves, the widest trace."""
    rows, curves, trace = [], [], None
    for i, width in enumerate(sorted(cfg.widths)):
        request.say(
            f"width {width}: gradient descent with L2, Θ_t on {cfg.probes} images",
            i,
            len(cfg.widths),
        )
        begin = time.time()
        trace = _train_width(cfg, width, x, y)
        rows.append(_width_row(cfg, width, trace, time.time() - begin))
        curves.append(_decay_curves(cfg, width, trace))
    return {"width_table": pd.DataFrame(rows), "kernel_decay": pd.concat(curves)}, trace


def _train_width(cfg: Fig5Config, width: int, x: jax.Array, y: np.ndarray) -> Any:
    net, apply = _net_fn(width)
    params = net.init(jax.random.key(cfg.seed + width), x[:1])["params"]
    return train_with_kernels(
        apply,
        params,
        x,
        jnp.asarray(y),
        x[: cfg.probes],
        eta=cfg.eta,
        lam=cfg.lam,
        segments=cfg.segments,
        segment_steps=cfg.steps // cfg.segments,
        record_every=cfg.record_every,
        block_size=cfg.block_size,
    )


def _width_row(cfg: Fig5Config, width: int, trace: Any, wall: float) -> dict[str, float]:
    rate = fit_decay_rate(trace.kernel_times, trace.kernels)
    predicted = kernel_decay_rate(cfg.lam, 2)
    flow = kernel_deviation(trace.kernel_times, trace.kernels, lam=cfg.lam, k=2)
    return {
        "width": width,
        "fitted_rate": rate,
        "predicted_rate": predicted,
        "rate_rel_error": abs(rate - predicted) / predicted,
        "max_deviation": float(flow.max()),
        "wall_s": wall,
    }


def _decay_curves(cfg: Fig5Config, width: int, trace: Any) -> pd.DataFrame:
    t, kernels = trace.kernel_times, trace.kernels
    return pd.DataFrame(
        {
            "width": width,
            "t": t,
            "overlap": kernel_overlap(kernels),
            "predicted": np.exp(-kernel_decay_rate(cfg.lam, 2) * t),
            "deviation": kernel_deviation(t, kernels, lam=cfg.lam, k=2),
        }
    )


def panel_c(
    cfg: Fig5Config, theta0: np.ndarray, trace: Any, y: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eq. (3) from the width-``kernel_width`` Θ_0 and the trained net's own f_0, k = 1 and 2,
    against the trained outputs; long table of outputs, and distances over time.

    Distance at time t: ``‖f_pred(t) − f_trained(t)‖₂ / ‖y‖₂`` over the N training images.
    """
    t, trained = trace.output_times, np.asarray(trace.outputs, np.float64)
    preds = {k: evolve_outputs(theta0, trained[0], y, t, lam=cfg.lam, k=k) for k in (1, 2)}
    n = trained.shape[1]
    sample = np.repeat(np.arange(n)[None], len(t), axis=0).ravel()
    outputs = pd.DataFrame(
        {
            "t": np.repeat(t, n),
            "sample": sample,
            "y": np.tile(y, len(t)),
            "trained": trained.ravel(),
            "k1": preds[1].ravel(),
            "k2": preds[2].ravel(),
        }
    )
    norm_y = float(np.linalg.norm(y))
    dist = {f"dist_k{k}": np.linalg.norm(p - trained, axis=1) / norm_y for k, p in preds.items()}
    return outputs, pd.DataFrame({"t": t, **dist})


# --------------------------------------------------------------------------- summary and outputs


def summarize(cfg: Fig5Config, scale: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The fitted values and every check of the issue, JSON-ready."""
    return {
        "figure": "fig5",
        "scale": scale,
        "config": dataclasses.asdict(cfg),
        "panel_ab": _summary_ab(cfg, tables["panel_ab"]),
        "eq3_vs_ode": _summary_ode(tables["eq3_vs_ode"]),
        "homogeneity": tables["homogeneity"].to_dict(orient="records"),
        "kernel_decay": _summary_decay(cfg, tables["width_table"]),
        "panel_c": _summary_c(cfg, tables["panel_c"], tables["distances"]),
        "deep_linear": _summary_linear(tables["deep_linear"]),
    }


def _summary_ab(cfg: Fig5Config, ab: pd.DataFrame) -> dict[str, Any]:
    last = ab[ab["t"] == ab["t"].max()]
    k2, k1 = last[last["k"] == 2], last[last["k"] == 1]
    limit = k1["eigenvalue"] / (k1["eigenvalue"] + cfg.theory_lam)
    return {
        "t_last": float(ab["t"].max()),
        "k2_max_abs_f_at_t_last": float(k2["f"].abs().max()),
        "k2_peak_f": float(ab[ab["k"] == 2]["f"].max()),
        "k1_max_error_vs_limit": float((k1["f"] - limit.to_numpy()).abs().max()),
    }


def _summary_ode(ode: pd.DataFrame) -> dict[str, Any]:
    random = ode[ode["kernel"].str.startswith("random")]
    by_k = {f"k{k}": float(g["rel_error"].max()) for k, g in random.groupby("k")}
    return {
        "max_rel_error_random_by_k": by_k,
        "max_rel_error_network": float(
            ode[~ode["kernel"].str.startswith("random")]["rel_error"].max()
        ),
        "tolerance": 1e-6,
        "passed": bool(random["rel_error"].max() < 1e-6),
    }


def _summary_decay(cfg: Fig5Config, table: pd.DataFrame) -> dict[str, Any]:
    widest = table.iloc[-1]
    dev = table["max_deviation"].to_numpy()
    return {
        "lam": cfg.lam,
        "lam_mean_normalized": cfg.lam / cfg.n_train,
        "eta": cfg.eta,
        "t_max": cfg.eta * cfg.steps,
        "predicted_rate": kernel_decay_rate(cfg.lam, 2),
        "fitted_rate_widest": float(widest["fitted_rate"]),
        "widest": int(widest["width"]),
        "rate_rel_error_widest": float(widest["rate_rel_error"]),
        "rate_within_10pct": bool(widest["rate_rel_error"] < 0.1),
        "deviation_decreases_with_width": bool(np.all(np.diff(dev) < 0)),
        "table": table.to_dict(orient="records"),
    }


def _summary_c(cfg: Fig5Config, outputs: pd.DataFrame, dist: pd.DataFrame) -> dict[str, Any]:
    def rel_l2(col: str) -> float:
        return float(
            np.linalg.norm(outputs[col] - outputs["trained"]) / np.linalg.norm(outputs["trained"])
        )

    d1, d2 = rel_l2("k1"), rel_l2("k2")
    return {
        "kernel_width": cfg.kernel_width,
        "trained_width": max(cfg.widths),
        "rel_l2_over_time_k1": d1,
        "rel_l2_over_time_k2": d2,
        "max_dist_over_y_k1": float(dist["dist_k1"].max()),
        "max_dist_over_y_k2": float(dist["dist_k2"].max()),
        "final_dist_over_y_k1": float(dist["dist_k1"].iloc[-1]),
        "final_dist_over_y_k2": float(dist["dist_k2"].iloc[-1]),
        "closer_to": "k=2" if d2 < d1 else "k=1",
    }


def _summary_linear(table: pd.DataFrame) -> dict[str, Any]:
    nonzero, zero = table[table["f_pred"] > 0], table[table["f_pred"] == 0]
    worst = float(nonzero["rel_error"].max()) if len(nonzero) else float("nan")
    return {
        "max_rel_error_nonzero": worst,
        "within_1pct": bool(worst < 0.01),
        "max_abs_f_zero_regime": float(zero["f_gd"].abs().max()) if len(zero) else None,
    }


def write_outputs(
    out: Path, summary: dict[str, Any], tables: dict[str, pd.DataFrame], cfg: Fig5Config
) -> None:
    """fig5.png, one CSV per table, summary.json and report.html into ``out``."""
    from l2dynamics.analysis.report import write_report

    png = plot_fig5(out / "fig5.png", tables, cfg)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    _write_json(out / "summary.json", summary)
    shown = {k: v for k, v in tables.items() if k not in ("panel_ab", "panel_c", "kernel_decay")}
    write_report(
        out / "report.html",
        title=f"Figure 5 ({summary['scale']} scale)",
        summary=_headline(summary),
        figures=[("Figure 5", png)],
        tables=shown,
        notes=NOTES,
    )


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    decay, c, ode = summary["kernel_decay"], summary["panel_c"], summary["eq3_vs_ode"]
    return {
        "eq. (3) vs ODE, max rel. error (random kernels)": max(
            ode["max_rel_error_random_by_k"].values()
        ),
        "kernel decay rate fitted (widest) / predicted": (
            f"{decay['fitted_rate_widest']:.4g} / {decay['predicted_rate']:.4g}"
        ),
        "kernel decay deviation decreases with width": decay["deviation_decreases_with_width"],
        "panel (c) rel. L2 to k=1 / k=2": (
            f"{c['rel_l2_over_time_k1']:.4g} / {c['rel_l2_over_time_k2']:.4g}"
        ),
        "trained net closer to": c["closer_to"],
        "deep linear max rel. error (f ≠ 0)": summary["deep_linear"]["max_rel_error_nonzero"],
        "k=2, max |f_t| at the last time (panel a)": summary["panel_ab"]["k2_max_abs_f_at_t_last"],
        "wall time (s)": summary["wall_s"],
    }


NOTES = (
    "Loss: Σ_x ½(f − y)² + (λ/2)‖θ‖² (a sum over the training set); time t = η·step. The mean-"
    "normalized loss with λ_mean is the same flow with λ = N·λ_mean and time t/N.",
    "Networks: bias-free 2-layer ReLU, NTK normalization (W, v ~ N(0,1), f = v·relu(√2·Wx/√d)/√n),"
    " so that the kernel has a width-independent limit at fixed η.",
    "Panel (c): the prediction uses Θ_0 of a separate net of width kernel_width and the trained "
    "net's own f_0; distances are ‖f_pred − f_trained‖/‖y‖ over the training images.",
    "Kernel decay: deviation = max over t of ‖Θ_t − e^{−2λt}Θ_0‖_F/‖e^{−2λt}Θ_0‖_F on the probe"
    " images; fitted rate = least-squares slope of −log(⟨Θ_t,Θ_0⟩/⟨Θ_0,Θ_0⟩) against t.",
)


# --------------------------------------------------------------------------- the figure


def plot_fig5(path: Path, tables: dict[str, pd.DataFrame], cfg: Fig5Config) -> Path:
    """Draw panels (a)–(f) into ``path`` (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    for ax, k in zip(axes[0, :2], (2, 1), strict=True):
        _plot_theory(ax, tables["panel_ab"], cfg, k)
    _plot_panel_c(axes[0, 2], tables["panel_c"], cfg)
    _plot_decay(axes[1, 0], tables["kernel_decay"], cfg)
    _plot_linear(axes[1, 1], tables["deep_linear"])
    _plot_distances(axes[1, 2], tables["distances"], cfg)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_theory(ax: Any, ab: pd.DataFrame, cfg: Fig5Config, k: int) -> None:
    for ev, g in ab[ab["k"] == k].groupby("eigenvalue"):
        ax.plot(g["t"], g["f"], label=f"λ_a = {ev:g}")
    ax.set_xscale("log")
    ax.axvline(1 / cfg.theory_lam, color="gray", ls=":", lw=1)
    ax.set(xlabel="t = η·step (physical time)", ylabel="f_a(t)  (f_a(0) = 0, y_a = 1)")
    letter = "a" if k == 2 else "b"
    ax.set_title(f"({letter}) eq. (3), k = {k}, λ = {cfg.theory_lam:g}  (dotted: t = 1/λ)")
    ax.legend(fontsize=8)


def _plot_panel_c(ax: Any, outputs: pd.DataFrame, cfg: Fig5Config) -> None:
    colors = ("C0", "C1", "C3", "C2")
    for color, sample in zip(colors, range(4), strict=True):
        g = outputs[outputs["sample"] == sample]
        ax.plot(
            g["t"], g["trained"], color=color, lw=2, label=f"x{sample} (y = {g['y'].iloc[0]:+g})"
        )
        ax.plot(g["t"], g["k2"], color=color, ls="--", lw=1.2)
        ax.plot(g["t"], g["k1"], color=color, ls=":", lw=1.2)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set(xlabel="t = η·step (sum-normalized loss)", ylabel="f_t(x) on training images")
    ax.set_title(
        f"(c) trained, width {max(cfg.widths)} (solid), vs eq. (3) from Θ_0 of\n"
        f"width {cfg.kernel_width}: k = 2 (dashed), k = 1 (dotted); λ = {cfg.lam:g}",
        fontsize=10,
        pad=24,
    )

    ax.secondary_xaxis(
        "top", functions=(lambda t: t * cfg.n_train, lambda t: t / cfg.n_train)
    ).set_xlabel(f"mean-normalized time {cfg.n_train}·t (λ_mean = {cfg.lam / cfg.n_train:g})")
    ax.legend(fontsize=8)


def _plot_decay(ax: Any, curves: pd.DataFrame, cfg: Fig5Config) -> None:
    for width, g in curves.groupby("width"):
        ax.plot(g["t"], g["overlap"], marker="o", ms=3, label=f"width {width}")
    t = np.linspace(0, curves["t"].max(), 100)
    ax.plot(t, np.exp(-kernel_decay_rate(cfg.lam, 2) * t), "k--", label="exp(−2(k−1)λt), k = 2")
    ax.set_yscale("log")
    ax.set(xlabel="t = η·step", ylabel="⟨Θ_t, Θ_0⟩ / ⟨Θ_0, Θ_0⟩")
    ax.set_title(f"(d) kernel decay, 2-layer ReLU (k = 2), λ = {cfg.lam:g}, η = {cfg.eta:g}")
    ax.legend(fontsize=8)


def _plot_linear(ax: Any, table: pd.DataFrame) -> None:
    for (n, g), marker, size in zip(table.groupby("n"), "osD^v", (11, 8, 6, 4, 3), strict=False):
        ax.plot(g["lam_sqrt_n"], g["f_gd"], marker, ms=size, mfc="none", label=f"GD, n = {n}")
    c = np.linspace(0, table["lam_sqrt_n"].max(), 200)
    ax.plot(c, np.maximum(0, 1 - c), "k-", lw=1, label="max(0, 1 − λ√n)")
    ax.set(xlabel="λ√n", ylabel="fixed point f")
    ax.set_title("(e) deep linear f = W₁W₀x/√n, x = y = 1")
    ax.legend(fontsize=8)


def _plot_distances(ax: Any, dist: pd.DataFrame, cfg: Fig5Config) -> None:
    later = dist[dist["t"] > 0]  # both are exactly 0 at t = 0 (same f_0)
    ax.plot(later["t"], later["dist_k2"], label="to the k = 2 prediction")
    ax.plot(later["t"], later["dist_k1"], label="to the k = 1 prediction")
    ax.set_yscale("log")
    ax.set(xlabel="t = η·step", ylabel="‖f_pred(t) − f_trained(t)‖ / ‖y‖")
    ax.set_title(f"(f) trained width {max(cfg.widths)} vs eq. (3)")
    ax.legend(fontsize=8)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON atomically (NaN written as null)."""
    write_json(path, _clean(data), allow_nan=False)


def _clean(value: Any) -> Any:
    """Nested values as plain JSON types; NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
