"""The plotting machinery every figure shares: λ colours follow one log colormap (λ = 0
black), titles wrap to the figure, λ = 0 has a place left of a log axis, PNGs are written
atomically, and few grid values label their axis."""

import math

import numpy as np
import pytest

from l2dynamics.analysis import plotting as P
from sweep_frames import PNG, new_ax


def test_lam_colors_follow_a_log_colormap_with_zero_black():
    colors = P.lam_colors([1e-4, 0.0, 1e-2, 1e-3, 1e-3, math.nan])
    assert list(colors) == [0.0, 1e-4, 1e-3, 1e-2]
    assert colors[0.0] == (0.0, 0.0, 0.0, 1.0)
    assert colors[1e-4] == pytest.approx(P.LAM_CMAP(0.0))
    assert colors[1e-3] == pytest.approx(P.LAM_CMAP(0.5))  # halfway in log10 λ
    assert colors[1e-2] == pytest.approx(P.LAM_CMAP(1.0))
    assert P.lam_colors([0.3]) == {0.3: pytest.approx(P.LAM_CMAP(0.5))}
    assert P.lam_colors([]) == {}


def test_seq_colors_use_their_own_colormap_over_positive_values():
    colors = P.seq_colors([10.0, 1000.0, 100.0, 0.0, math.nan])
    assert list(colors) == [10.0, 100.0, 1000.0]
    assert colors[100.0] == pytest.approx(P.SEQ_CMAP(0.5))
    assert P.seq_colors([0.0]) == {}
    assert P.color_of({0.1: (1, 0, 0, 1)}, 0.1 * (1 + 1e-12)) == (1, 0, 0, 1)
    assert P.color_of({}, 0.1) == (0.5, 0.5, 0.5, 1.0)


def test_long_titles_wrap_to_the_figure_width():
    title = "Figure 1a: test accuracy vs λ, fixed budget vs T ∝ 1/λ (WRN, step schedule)"
    lines = P.wrap_title(title, 5.5).splitlines()
    assert len(lines) == 2 and " ".join(lines) == title
    assert all(len(line) <= 5.5 * 72 / (0.55 * 12) for line in lines)
    assert P.wrap_title(title, 15.0) == title  # a wide figure keeps it on one line


def test_lam_zero_sits_left_of_the_smallest_positive_value():
    x0 = P.zero_x(np.array([0.0, 1e-3, 1e-1, np.nan]))
    assert x0 == pytest.approx(1e-3 / 10**P.ZERO_OFFSET_DECADES)
    assert P.zero_x(np.array([0.0])) == 1.0
    assert list(P.placed(np.array([0.0, 1e-3]), x0)) == [x0, 1e-3]
    ax = new_ax()
    assert P.lam_axis(ax, np.array([0.0, 1e-3, 1e-2])) == pytest.approx(x0)  # same smallest λ
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "λ"
    assert [t.get_text() for t in ax.texts] == ["λ = 0"]


def test_few_grid_values_label_the_axis_and_many_do_not():
    ax = new_ax()
    ax.set_xscale("log")
    P.grid_ticks(ax, [1e-3, 1e-2, 1e-2, 0.0])
    assert list(ax.get_xticks()) == [1e-3, 1e-2]
    ax = new_ax()
    ax.set_xscale("log")
    P.grid_ticks(ax, np.geomspace(1e-4, 1, P.MAX_LEGEND + 1))
    assert len(ax.get_xticks()) != P.MAX_LEGEND + 1


def test_figures_are_saved_atomically_with_their_panels_labelled(tmp_path):
    fig, axes = P.figure(3, size=(6.0, 2.0))
    P.label_panels(axes)
    assert [ax.get_title(loc="left") for ax in axes] == ["(a)", "(b)", "(c)"]
    path = P.save_png(fig, tmp_path / "sub" / "f.png", title="a title")
    assert path == tmp_path / "sub" / "f.png" and path.read_bytes().startswith(PNG)
    assert fig.get_suptitle() == "a title"
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary files left


def test_the_lambda_key_is_a_legend_for_few_and_a_colorbar_for_many():
    fig, (ax,) = P.figure(size=(4.0, 3.0))
    P.lam_key(fig, ax, P.lam_colors([0.0, 1e-3, 1e-2]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "λ = 0",
        "λ = 0.001",
        "λ = 0.01",
    ]
    fig, (ax,) = P.figure(size=(4.0, 3.0))
    P.lam_key(fig, ax, P.lam_colors([0.0, *np.geomspace(1e-4, 1, P.MAX_LEGEND + 1)]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["λ = 0"]
    assert len(fig.axes) == 2  # the colorbar
    fig, (ax,) = P.figure(size=(4.0, 3.0))
    P.lam_legend(ax, P.lam_colors(np.geomspace(1e-4, 1, P.MAX_LEGEND + 2)))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == P.MAX_LEGEND + 1 and texts[-1] == "… 2 more λ"
