"""The step cost t(w) (train.cost): the CPU model keeps today's plans; a measured or stub cost
moves the pool's width and its tail hand-over as its numbers say."""

import dataclasses

import pytest

import l2dynamics.sweep.chunks as chunks
from l2dynamics.sweep.plan import lpt_makespan, pool_lanes
from l2dynamics.sweep.spec import run_hash
from l2dynamics.train.cost import (
    CPU_COST,
    LANE_OVERHEAD,
    TAIL_MIN_SAVING,
    StepCost,
    measure_widths,
    step_cost,
)
from l2dynamics.train.run import build_program, load_data
from l2dynamics.train.vector import hand_over_tail, tail_saving, train_vectorized
from test_vector import BASE  # the small FC on digits that the pool tests train

# seconds per pool step: flat (extra lanes cost nothing, as on an idle accelerator), and the
# CPU model's shape w + a, but measured (seconds) and with a free hand-over
FLAT = StepCost(((1, 0.01), (8, 0.01), (64, 0.01)), handover=1.0, unit="seconds")
LINEAR = StepCost(((1, 1 + LANE_OVERHEAD), (64, 64 + LANE_OVERHEAD)), 0.0, "seconds")


def test_the_cpu_model_is_w_plus_the_lane_overhead_and_keeps_todays_tail_price():
    assert [CPU_COST(w) for w in range(1, 130)] == [w + LANE_OVERHEAD for w in range(1, 130)]
    assert CPU_COST.handover == TAIL_MIN_SAVING and not CPU_COST.measured
    assert tail_saving([100, 50], 6) == 100 * (6 + LANE_OVERHEAD) - 150 * (1 + LANE_OVERHEAD)


def test_a_cost_interpolates_its_points_and_counts_a_sharded_pools_padded_width():
    cost = StepCost(((1, 1.0), (8, 2.0), (64, 9.0)), 0.0, "seconds", multiple=4)
    assert cost(1) == 1.0 and cost(8) == 2.0 and cost(64) == 9.0
    assert cost(5) == cost(8) and cost(6) == cost(8)  # 5 and 6 lanes pad to 8
    assert cost(36) == 2.0 + (36 - 8) * 7.0 / 56
    assert cost(72) == 9.0 + 8 * 7.0 / 56  # past the last point along the last segment
    assert StepCost(((1, 3.0),), 0.0)(40) == 3.0


def test_a_flat_cost_gives_the_widest_pool_that_helps_and_never_hands_over_the_tail():
    """With a flat t(w) the time is the makespan: as wide as it shortens (the fewest lanes that
    reach the shortest), all runs at once when their budgets are equal."""
    assert pool_lanes([100] * 12, 1000, limit=5) == 4  # the CPU model
    assert pool_lanes([100] * 12, 1000, cost=FLAT, limit=64) == 12
    assert pool_lanes([100] * 12, 10**7, cost=FLAT, limit=64) == 12  # no model-size rule
    assert pool_lanes([100] * 100, 1000, cost=FLAT, limit=64) == 50  # 2 rounds either way
    totals = [20000] + [5000] * 6 + [100] * 5
    assert pool_lanes(totals, 1000) == 2  # the CPU model: 25,000 steps of 2.5
    assert pool_lanes(totals, 1000, cost=FLAT, limit=64) == 3  # the longest run's 20,000
    for remaining in ([5000], [20000, 10], [3, 2, 1]):
        assert tail_saving(remaining, 64, FLAT) <= 0  # one by one saves nothing
        assert not hand_over_tail(remaining, 64, 0, FLAT.handover, FLAT)


def test_a_linear_cost_gives_the_cpu_models_choices():
    cases = [([20000] + [5000] * 6, None), ([100] * 12, None), ([100] * 12, 5), ([7, 1, 1], 3)]
    for totals, limit in cases:
        want = pool_lanes(totals, 1000, limit=limit)
        assert pool_lanes(totals, 1000, limit=limit or 64, cost=LINEAR) == want
    for remaining, lanes in (([100, 40], 4), ([5000], 6), ([10, 10, 10], 8)):
        assert tail_saving(remaining, lanes, LINEAR) == tail_saving(remaining, lanes)
    assert hand_over_tail([5000], 6, 0, LINEAR.handover, LINEAR)


def test_a_steeper_cost_prefers_fewer_lanes():
    steep = StepCost(((1, 1.0), (2, 3.0)), 0.0, "seconds")  # a second lane costs two
    totals = [100] * 8
    assert pool_lanes(totals, 1000, cost=steep, limit=64) == 1
    assert lpt_makespan(totals, 1) * steep(1) < lpt_makespan(totals, 8) * steep(8)


def test_measure_widths_stop_at_the_cap():
    assert measure_widths(64) == measure_widths(500) == (1, 8, 64)
    assert measure_widths(20) == (1, 8, 20)
    assert measure_widths(5) == (1, 5)
    assert measure_widths(1) == (1,)


def test_on_the_cpu_costs_are_the_model_unless_measuring_is_forced():
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    assert step_cost(program, BASE) is CPU_COST  # the CPU backend: never measured by default
    assert step_cost(program, BASE, measure=False) is CPU_COST
    cost = step_cost(program, BASE, cap=4, measure=True)
    assert cost.measured and [w for w, _ in cost.points] == [1, 4]
    assert all(t > 0 for _, t in cost.points) and cost.handover >= 0
    assert step_cost(program, BASE, cap=3, measure=True) is cost  # cached per program
    wider = step_cost(program, BASE, cap=8, measure=True)  # a wider cap measures again
    assert [w for w, _ in wider.points] == [1, 8]
    assert step_cost(program, BASE, cap=8, measure=True) is wider
    assert step_cost(build_program(BASE, ds), BASE, cap=8, measure=True) is not wider


def _pool_of_three(cost):
    """Budgets of 4, 8 and 120 steps in 2 lanes (tests/test_vector.py): when the 4-step run
    ends the queue is dry, one lane idles and 108 steps remain; returns whether the pool handed
    its tail to the one-run program."""
    cfgs = [
        dataclasses.replace(BASE, budget_c=None, budget_epochs=1.0),
        dataclasses.replace(BASE, budget_c=None, budget_epochs=2.0),
        dataclasses.replace(BASE, eta=1.0, lam=0.03, budget_c=None, budget_epochs=30.0),
    ]
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, lanes=2, cost=cost)
    assert sorted(got) == [0, 1, 2] and got[2].steps == 120
    return program.run_steps._cache_size() == 1


def test_the_tail_hand_over_follows_the_cost():
    assert not _pool_of_three(FLAT)
    assert _pool_of_three(LINEAR)  # 108 · 2.5 − 108 · 1.5 ≥ 0
    assert not _pool_of_three(dataclasses.replace(LINEAR, handover=109.0))
    assert not _pool_of_three(CPU_COST)  # 108 lane-steps < TAIL_MIN_SAVING


def _items(n):
    cfgs = [dataclasses.replace(BASE, eta=0.1 * (i + 1), budget_c=None) for i in range(n)]
    cfgs = [dataclasses.replace(c, budget_epochs=float(1 + 3 * i)) for i, c in enumerate(cfgs)]
    return [(run_hash(c), c) for c in cfgs]


def test_the_planner_takes_its_width_from_the_contexts_cost(monkeypatch):
    items = _items(6)  # budgets 4 .. 64 steps: the CPU model pools them in fewer lanes
    today = chunks.plan(items, chunks.Context(), None)
    assert [c.lanes for c in today] == [pool_lanes([4 + 12 * i for i in range(6)], 1000)]
    assert today[0].lanes == 3
    seen = []

    def stub(program, cfg, *, cap, measure):
        seen.append((cap, measure))
        return FLAT

    monkeypatch.setattr(chunks, "step_cost", stub)
    flat = chunks.plan(items, chunks.Context(measure_cost=True), None)
    assert [c.lanes for c in flat] == [4] and seen == [(6, True)]  # makespan 64, the longest
    # Ray's chunks keep the static rule: the driver's JAX is on the CPU
    split = chunks.plan(items, chunks.Context(measure_cost=True), None, split=True)
    assert {c.lanes for c in split} == {today[0].lanes} and len(seen) == 1


@pytest.mark.parametrize("lanes", [2, 3])
def test_a_chunk_trains_with_the_contexts_cost(monkeypatch, lanes):
    """Budgets of 4, 16 and 28 steps: the last run alone in its pool has 12 steps left, too few
    for the CPU model's hand-over; the context's cost (a stub with a free hand-over) hands it
    over."""
    items = _items(3)
    for cost, handed in ((CPU_COST, False), (LINEAR, True)):
        ctx = chunks.Context(measure_cost=True)
        monkeypatch.setattr(chunks, "step_cost", lambda p, c, *, cap, measure, cost=cost: cost)
        chunk = chunks.Chunk(tuple(h for h, _ in items), tuple(c for _, c in items), lanes)
        got = {}
        chunks.train_chunk(chunk, ctx, got.__setitem__)
        assert sorted(got) == sorted(chunk.hashes)
        assert ctx.program(BASE).run_steps._cache_size() == int(handed)


MEASURE_ON_FOUR_DEVICES = """
from l2dynamics.train.cost import step_cost
from l2dynamics.train.run import build_program, load_data
import test_cost as T
program = build_program(T.BASE, load_data(T.BASE))
cost = step_cost(program, T.BASE, cap=6, measure=True)
print([w for w, _ in cost.points], cost.multiple, cost(5) == cost(8), cost(3) == cost(4))
"""


def test_a_measured_cost_counts_the_padded_width_of_a_pool_over_four_devices():
    """On four forced host devices pools of 6 lanes step 8 (padded): the measurement times 8,
    and t(5) = t(8)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    env["PYTHONPATH"] = os.pathsep.join([str(tests.parent / "src"), str(tests)])
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE_ON_FOUR_DEVICES], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-2] == "[1, 8] 4 True True"
