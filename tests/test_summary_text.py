"""Summaries as people read them: labels with units, intervals and ranges beside their values,
nested summaries and seed agreement as text, the t* fits and the rotational equilibrium as
sentences."""

from l2dynamics.analysis.summary_text import fit_sentence, headline, summary_items

FIT = {
    "slope": -0.95,
    "slope_ci": [-1.02, -0.88],
    "c": 0.41,
    "c_ci": [0.3, 0.6],
    "c_slope_minus_1": 0.4,
    "c_slope_minus_1_ci": [0.35, 0.45],
    "n_fit_runs": 44,
    "n_fit_points": 20,
    "decades": 2.2,
}
SUMMARY = {
    "title": "shown as the heading",
    "t_star_estimator": "robust",
    **FIT,
    "paper": {**FIT, "slope": -0.9},
    "seed_agreement": {
        "robust": {"median": 0.12, "p90": 0.4, "n_pairs": 60},
        "paper": {"median": None, "p90": None, "n_pairs": 0},
    },
    "best_acc_by_lam": {"0.0002": 0.91, "0.001": 0.93},
    "best_lam": 0.001,
    "lam0_t_star_epochs": [],
    "my_own_key": 3,
    "notes": ["shown in the Notes section"],
}


def test_known_keys_read_as_labels_with_intervals_beside_their_values():
    items = dict(summary_items(SUMMARY))
    assert items["slope b of t* = c/(η·λ)^b"] == "-0.95 (95% interval [-1.02, -0.88])"
    assert items["c = t*·η·λ with the slope held at −1 (τ units)"].endswith("[0.35, 0.45])")
    assert items["runs in the fit"] == "44" and items["t* used by the fit"].startswith("the near")
    assert items["my_own_key"] == "3"  # an unknown key falls back to itself
    assert items["t* of the λ = 0 runs (epochs)"] == "none"
    flat = str(items)
    assert "slope_ci" not in flat and "title" not in items and "notes" not in items


def test_nested_summaries_and_seed_agreement_read_as_text():
    items = dict(summary_items(SUMMARY))
    paper = dict(items["the same fit of the paper's t* (first maximum)"])
    assert paper["slope b of t* = c/(η·λ)^b"].startswith("-0.9 (95% interval")
    agree = dict(items[next(k for k in items if k.startswith("seed agreement"))])
    assert agree["near-peak centre (the toolkit's t*)"] == (
        "median 12%, 90th percentile 40% over 60 pairs of seeds"
    )
    assert "no (η, λ) with two seeds" in agree["first maximum of test accuracy (the paper's t*)"]
    by_lam = dict(items["best test accuracy per λ (at the best η, mean over seeds)"])
    assert by_lam == {"λ = 0.0002": "0.91", "λ = 0.001": "0.93"}


def test_the_fits_as_sentences_and_no_fit_as_one_row():
    lines = headline(SUMMARY)
    assert lines[0].startswith("t* as the near-peak centre") and "44 runs at 20" in lines[0]
    assert "slope -0.950 (95% interval [-1.02, -0.88])" in lines[0]
    assert lines[1].startswith("t* as the first maximum") and "slope -0.900" in lines[1]
    assert lines[2] == "Best test accuracy 0.93 at λ = 0.001 (the best η, mean over seeds)."
    empty = {**SUMMARY, **dict.fromkeys(FIT)}
    assert fit_sentence(empty) == "no fit (see the notes)."
    rows = [k for k, _ in summary_items(empty)]
    assert "runs in the fit" not in rows and "slope b of t* = c/(η·λ)^b" in rows


# the equilibrium kind's summary (l2dynamics.experiments.kinds.equilibrium), as it writes it
EQUILIBRIUM = {
    "n_layer_runs": 3,
    "ratio_median": 1.05,
    "ratio_range": [1.02, 1.08],
    "ratio_n_runs": 3,
    "ratios": {"eta=0.05, lam=0.001, run=r0": 1.02},
    "t_eq_slope": 0.98,
    "t_eq_slope_ci": [0.9, 1.06],
    "t_eq_prefactor": 3.2,
    "t_eq_decades": 1.2,
    "t_eq_n_runs": 3,
}


def test_the_equilibrium_keys_read_as_labels_with_units_and_intervals():
    items = dict(summary_items(EQUILIBRIUM))
    assert not set(EQUILIBRIUM) & set(items)  # no key is shown as itself
    ratio = "measured/predicted equilibrium angle per step, median over runs (dimensionless)"
    assert items[ratio] == "1.05 (range [1.02, 1.08])"
    (slope,) = [k for k in items if k.startswith("slope b of t_eq")]
    assert "steps" in slope and items[slope] == "0.98 (95% interval [0.9, 1.06])"
    assert "t_eq·η·λ" in next(k for k in items if k.startswith("prefactor e^a"))
    per_run = dict(items["measured/predicted equilibrium angle per run (dimensionless)"])
    assert per_run == {"eta=0.05, lam=0.001, run=r0": "1.02"}


def test_the_equilibrium_findings_as_sentences_and_no_fit_as_one_row():
    angle, fit = headline(EQUILIBRIUM)
    assert angle == (
        "Equilibrium angle per step of the BatchNorm-fed kernels: measured/predicted 1.05, the "
        "median over 3 runs (range [1.02, 1.08])."
    )
    assert fit.startswith("Time to equilibrium t_eq ∝ (1/(η·λ))^b: b = 0.980 (95% interval")
    assert "over 3 runs spanning 1.2 decades of η·λ" in fit and "e^a = 3.2" in fit
    unfit = {**EQUILIBRIUM, "t_eq_slope": None, "t_eq_slope_ci": None, "t_eq_prefactor": None,
             "t_eq_decades": None, "t_eq_n_runs": 1}  # fmt: skip
    assert headline(unfit)[1] == "Time to equilibrium against 1/(η·λ): no fit (see the notes)."
    rows = dict(summary_items(unfit))
    (slope,) = [k for k in rows if k.startswith("slope b of t_eq")]
    assert rows[slope] == "no fit (see the notes)"
    assert not [k for k in rows if k.startswith(("prefactor e^a", "runs in the fit of t_eq"))]
    none = {**unfit, "n_layer_runs": 0, "ratio_median": None, "ratio_n_runs": 0, "ratios": {}}
    assert headline(none)[0] == "Rotational equilibrium: no run analysed (see the notes)."
    assert "no predicted angle" in headline({**none, "n_layer_runs": 2})[0]
