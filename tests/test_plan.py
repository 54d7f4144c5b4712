import dataclasses

from l2dynamics.config import ModelConfig, TrainConfig
from l2dynamics.sweep.plan import group_key, lpt_makespan, max_chunk_size, plan_chunks, pool_lanes


def test_chunks_are_equal_cuts_in_budget_order():
    totals = [100, 400, 150, 90, 1000, 210, 95]
    chunks = plan_chunks(totals, 1000, max_chunk=3)
    assert chunks == [[3, 6, 0], [2, 5, 1], [4]]
    assert plan_chunks(list(range(8)), 1000, max_chunk=6) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_large_models_run_one_by_one():
    chunks = plan_chunks([10, 10, 10], 10**9)
    assert chunks == [[0], [1], [2]]
    assert plan_chunks([10, 10], 10**9, vectorize=True, max_chunk=8) == [[0, 1]]


def test_max_chunk_size_follows_memory():
    assert max_chunk_size(1000, memory=10**12) == 64
    assert max_chunk_size(10**5, memory=4 * 10**7) == 5  # 1e7 bytes / (1e5 · 20 bytes)
    assert max_chunk_size(10**5, memory=10**12) == 10  # 4 MiB of parameters / (1e5 · 4 bytes)
    assert max_chunk_size(10**9, memory=10**9) == 1


def test_group_key_ignores_only_per_run_hyperparameters():
    a = TrainConfig(eta=0.1, lam=0.01, seed=0, budget_c=2.0)
    assert group_key(a) == group_key(dataclasses.replace(a, eta=3.0, lam=0.0, seed=4))
    assert group_key(a) != group_key(dataclasses.replace(a, batch_size=16))
    assert group_key(a) != group_key(dataclasses.replace(a, model=ModelConfig("fc", {"width": 3})))


def test_runs_of_different_optimizers_or_adam_settings_never_share_a_program():
    """Adam's β₁, β₂, ε are constants of the compiled program, the optimizer its chain."""
    a = TrainConfig(eta=0.1, lam=0.01, budget_c=2.0)
    keys = {
        group_key(dataclasses.replace(a, **kw))
        for kw in (
            {},
            {"optimizer": "sgdw"},
            {"optimizer": "adam"},
            {"optimizer": "adamw"},
            {"optimizer": "adamw", "beta1": 0.5},
            {"optimizer": "adamw", "beta2": 0.9},
            {"optimizer": "adamw", "eps": 1e-6},
        )
    }
    assert len(keys) == 7
    adamw = dataclasses.replace(a, optimizer="adamw")
    assert group_key(adamw) == group_key(dataclasses.replace(adamw, eta=1e-3, lam=0.3, seed=2))


def test_lpt_makespan_fills_the_freest_lane_longest_run_first():
    assert lpt_makespan([20000] + [5000] * 6, 2) == 25000
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert lpt_makespan([7, 1], 5) == 7


def test_pool_lanes_minimizes_the_estimated_time():
    # 1 lane: 50000·1.5; 2: 25000·2.5 = 62500; 3: 20000·3.5 = 70000
    assert pool_lanes([20000] + [5000] * 6, 1000) == 2
    assert pool_lanes([100] * 12, 1000) == 12  # equal budgets: all at once
    # capped at 5: 3 rounds either way, so 4 lanes (300·4.5) beat 5 (300·5.5)
    assert pool_lanes([100] * 12, 1000, limit=5) == 4
    assert pool_lanes([100] * 12, 10**7) == 1  # too large to vectorize: one by one
    assert pool_lanes([100] * 12, 1000, vectorize=False) == 1
    assert pool_lanes([], 1000) == 1
