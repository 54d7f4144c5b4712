import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig, validate
from l2dynamics.losses import cross_entropy, one_hot
from l2dynamics.train import step as S
from l2dynamics.train.run import (
    build_program,
    init_state,
    load_data,
    measure_steps,
    physical_times,
    run_program,
    step_loops,
    stepwise_dispatch,
    train,
)
from l2dynamics.train.schedule import every_k, log_spaced, peak_window

SMALL = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=200),
    model=ModelConfig("fc", {"depth": 2, "width": 32}),
    eta=0.5,
    lam=0.01,
    batch_size=32,
    budget_epochs=3.0,
    measure="every",
    measure_every=4,
)


@pytest.mark.parametrize("batch,n", [(32, 128), (48, 128), (7, 20)])
def test_batch_stream_is_one_permutation_per_epoch(batch, n):
    key = jax.random.key(3)
    steps = 3 * n  # an integer number of epochs in any case: 3n·B/n = 3B epochs
    idx = np.concatenate(
        [np.asarray(S.batch_indices(key, jnp.int32(s), batch, n)) for s in range(steps)]
    )
    for e in range(len(idx) // n):
        assert sorted(idx[e * n : (e + 1) * n]) == list(range(n))
    assert not np.array_equal(idx[:n], idx[n : 2 * n])  # a fresh order each epoch


@pytest.mark.parametrize("max_batch", [10, 40, 15])  # 11 chunks (lax.map); 3 and 7 (unrolled)
def test_evaluate_in_chunks_equals_one_pass(max_batch):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w = jax.random.normal(k1, (5, 3))
    x = jax.random.normal(k2, (103, 5))
    y = one_hot(jax.random.randint(k3, (103,), 0, 3), 3)

    def apply(variables, xb, train=False):
        return xb @ variables["params"]

    full = S.evaluate(apply, cross_entropy, w, x, y, max_batch=1000)
    chunked = S.evaluate(apply, cross_entropy, w, x, y, max_batch=max_batch)
    np.testing.assert_allclose(np.asarray(full), np.asarray(chunked), rtol=1e-5)
    np.testing.assert_allclose(float(full[0]), float(cross_entropy(x @ w, y)), rtol=1e-5)


def test_run_steps_equals_step_by_step():
    ds = load_data(SMALL)
    program = build_program(SMALL, ds)
    data = S.DeviceData(
        jnp.asarray(ds.x_train),
        one_hot(jnp.asarray(ds.y_train), 10),
        jnp.asarray(ds.x_test),
        one_hot(jnp.asarray(ds.y_test), 10),
    )
    hyper = S.Hyper(jnp.float32(0.5), jnp.float32(0.01), jnp.int32(100))
    looped = program.run_steps(data, init_state(SMALL, program), hyper, jnp.int32(9))
    one = jax.jit(partial(S.train_step, program.spec))
    state = init_state(SMALL, program)
    for _ in range(9):
        state = one(data, state, hyper)
    assert int(looped.step) == int(state.step) == 9
    for a, b in zip(jax.tree.leaves(looped.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_train_is_deterministic_and_seed_dependent():
    a, b = train(SMALL), train(SMALL)
    np.testing.assert_array_equal(a.curve["test_acc"], b.curve["test_acc"])
    np.testing.assert_array_equal(a.curve["train_loss"], b.curve["train_loss"])
    c = train(dataclasses.replace(SMALL, seed=1))
    assert not np.array_equal(a.curve["train_loss"], c.curve["train_loss"])


def test_plain_sgd_program_trains_like_a_buffered_one_and_refuses_momentum():
    """Plain SGD (μ = 0) runs without a momentum buffer: the same curve as a program that keeps
    one; a μ ≠ 0 run cannot start on such a program."""
    ds = load_data(SMALL)
    plain = build_program(SMALL, ds)
    buffered = build_program(dataclasses.replace(SMALL, momentum=0.9), ds)
    assert not plain.heavy_ball and buffered.heavy_ball
    a = run_program(SMALL, ds, plain)
    b = run_program(SMALL, ds, buffered)
    np.testing.assert_array_equal(a.curve["train_loss"], b.curve["train_loss"])
    with pytest.raises(ValueError, match="momentum buffer"):
        init_state(dataclasses.replace(SMALL, momentum=0.9), plain)


def test_measure_steps_follow_the_configured_schedule():
    expected = {
        "log": log_spaced(5000, 0.05),
        "peak": peak_window(5000, 0.05),
        "every": every_k(5000, SMALL.measure_every),
    }
    for kind, steps in expected.items():
        cfg = dataclasses.replace(SMALL, measure=kind, measure_resolution=0.05)
        validate(cfg)
        np.testing.assert_array_equal(measure_steps(cfg, 5000), steps)


def test_curve_units_and_summary():
    r = train(SMALL)
    steps = r.curve["step"]
    assert steps[0] == 0 and steps[-1] == r.steps == 12  # 3 epochs × 128/32
    np.testing.assert_allclose(r.curve["epoch"], steps * 32 / 128)
    np.testing.assert_allclose(r.curve["time"], 0.5 * r.curve["epoch"], rtol=1e-6)
    np.testing.assert_allclose(r.curve["tau"], 0.5 * 0.01 * r.curve["epoch"], rtol=1e-6)
    i = int(np.argmax(r.curve["test_acc"]))
    assert r.best_test_acc == r.curve["test_acc"][i] == r.curve["test_acc"].max()
    assert r.t_star_epochs == r.curve["epoch"][i]
    assert r.status == "done" and r.diverged_step is None
    s = r.summary()
    for key in ("status", "best_test_acc", "t_star_epochs", "final_train_acc", "steps", "wall_s"):
        assert key in s


def test_l2_shrinks_the_norm_of_an_untrained_direction():
    """With η·λ per step, ‖θ‖² of a run with λ > 0 ends below that of λ = 0 (same seed)."""
    base = dataclasses.replace(SMALL, budget_epochs=6.0)
    with_l2 = train(dataclasses.replace(base, lam=0.5))
    without = train(dataclasses.replace(base, lam=0.0))
    assert with_l2.curve["l2_norm_sq"][-1] < 0.8 * without.curve["l2_norm_sq"][-1]


def test_divergence_is_recorded_with_its_step():
    r = train(dataclasses.replace(SMALL, eta=1e6, budget_epochs=20.0))
    assert r.status == "diverged"
    assert r.diverged_step is not None and 0 <= r.diverged_step < 80
    assert r.steps <= r.diverged_step + 1


def test_step_schedule_physical_time():
    cfg = dataclasses.replace(SMALL, lr_schedule="step")
    t = physical_times(cfg, np.arange(11), 10, 32, 128)
    per_step = 0.5 * 32 / 128
    expected = np.cumsum(
        [0] + [per_step * 0.2 ** sum(s / 10 >= m for m in (0.3, 0.6, 0.9)) for s in range(10)]
    )
    np.testing.assert_allclose(t, expected, rtol=1e-6)


def test_csv_is_written_atomically(tmp_path):
    r = train(SMALL)
    out = tmp_path / "curve.csv"
    r.to_csv(out)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("step,epoch,time,tau,train_loss")
    assert len(lines) == len(r.curve["step"]) + 1
    assert [p.name for p in tmp_path.iterdir()] == ["curve.csv"]


CONV = dataclasses.replace(
    SMALL,
    model=ModelConfig("cnn", {"channels": 4, "dense": 8, "pool_window": 1, "pool_stride": 1}),
    eta=0.05,
)


def _stacked(states):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


@pytest.mark.parametrize("eta", [0.05, 1e7])  # 1e7: every lane diverges
def test_stepwise_dispatch_equals_the_while_loop(eta):
    cfg = dataclasses.replace(CONV, eta=eta)
    ds = load_data(cfg)
    program = build_program(cfg, ds)
    loop_one, loop_many = step_loops(program.spec, stepwise=False)
    step_one, step_many = step_loops(program.spec, stepwise=True)
    hyper = S.Hyper(jnp.float32(eta), jnp.float32(0.01), jnp.int32(100))
    a = loop_one(program.data, init_state(cfg, program), hyper, jnp.int32(6))
    b = step_one(program.data, init_state(cfg, program), hyper, 6)
    lanes = [dataclasses.replace(cfg, seed=s) for s in range(3)]
    hypers = S.Hyper(*(jnp.stack([x] * 3) for x in hyper))
    n_steps = np.array([5, 0, 7], np.int32)
    c = loop_many(program.data, _stacked([init_state(c, program) for c in lanes]), hypers, n_steps)
    d = step_many(program.data, _stacked([init_state(c, program) for c in lanes]), hypers, n_steps)
    for x, y in ((a, b), (c, d)):
        np.testing.assert_array_equal(np.asarray(x.step), np.asarray(y.step))
        np.testing.assert_array_equal(np.asarray(x.diverged_step), np.asarray(y.diverged_step))
        if eta > 1:
            continue  # diverged parameters (≈1e37 and NaN) are not worth comparing
        for p, q in zip(jax.tree.leaves(x.params), jax.tree.leaves(y.params), strict=True):
            np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-6)
    if eta > 1:
        assert (np.asarray(d.diverged_step)[[0, 2]] >= 0).all()
    assert stepwise_dispatch("cnn") == (jax.default_backend() == "cpu")
    assert not stepwise_dispatch("fc")


@pytest.mark.parametrize(
    "loss, same_as", [("xent", {"eta": 2 * 0.3, "lam": 0.01}), ("mse", {"eta": 0.3, "lam": 0.02})]
)
def test_the_script_convention_trains_as_the_sm_convention_at_the_equivalent_eta_lam(loss, same_as):
    """SPEC §1: with CE/k and λ·‖θ‖² the script's (η, λ) is the SM's (2η, λ); for MSE (the same
    data loss in both) its λ·‖θ‖² is the SM's 2λ. Same seed: the same trajectory, up to
    float32 rounding (the script's recorded loss is its own: twice the SM's for xent)."""
    base = TrainConfig(
        data=DataConfig("digits", n_train=128, n_test=100),
        model=ModelConfig("fc", {"depth": 1, "width": 32}),
        loss=loss,
        batch_size=32,
        budget_epochs=5,
        measure="every",
        measure_every=4,
    )
    script = train(dataclasses.replace(base, convention="script", eta=0.3, lam=0.01)).curve
    sm = train(dataclasses.replace(base, **same_as)).curve
    np.testing.assert_allclose(script["l2_norm_sq"], sm["l2_norm_sq"], rtol=2e-4)
    np.testing.assert_allclose(script["test_acc"], sm["test_acc"], atol=0.011)
    factor = 2.0 if loss == "xent" else 1.0
    np.testing.assert_allclose(script["train_loss"], factor * sm["train_loss"], rtol=2e-4)


def _numpy_angle(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


@pytest.mark.parametrize("angle", [1e-4, 3e-3, 0.2, 2.5])
def test_turn_angle_equals_the_float64_arccos_at_small_and_large_angles(angle):
    """The step's angle from the update (no float32 arccos near 1, which loses angles of
    1e-3 rad to about 6%) against numpy's arccos in float64, on a tensor rotated by ``angle``
    in a random plane and rescaled, as a step under L2 does."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    u = a.ravel() / np.linalg.norm(a)
    v = rng.standard_normal(u.size)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    b = (0.97 * np.linalg.norm(a) * (np.cos(angle) * u + np.sin(angle) * v)).reshape(a.shape)
    b = b.astype(np.float32)
    got = float(S.turn_angle(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_allclose(got, _numpy_angle(a, b), rtol=2e-4)
    np.testing.assert_allclose(got, angle, rtol=2e-3)
    assert np.isnan(float(S.turn_angle(jnp.zeros(3), jnp.ones(3))))  # no direction: NaN


LAYERED = TrainConfig(
    data=DataConfig("digits", n_train=64, n_test=100),
    model=ModelConfig(
        "cnn",
        {"channels": 4, "dense": 16, "batch_norm": True, "pool_window": 2, "pool_stride": 1},
    ),
    eta=0.1,
    lam=0.01,
    momentum=0.9,
    budget_epochs=2.0,
    batch_size=16,
    measure_layers=True,
)


def test_measure_layers_records_each_tensor_and_the_last_steps_angle():
    """A run with layer measurements: per measurement, every parameter tensor's ‖θ_l‖² and
    the angle of the step before (checked against the parameters around the last step); the
    BatchNorm-fed kernels flagged; without the flag the state carries nothing."""
    ds = load_data(LAYERED)
    program = build_program(LAYERED, ds)
    result = run_program(LAYERED, ds, program)
    lay = result.layers
    n_tensors = len(jax.tree.leaves(program.init_params(jax.random.key(0))))
    assert len(lay["step"]) == n_tensors * len(result.curve["step"])
    assert set(lay["layer"][lay["scale_invariant"]]) == {f"conv_{i}/kernel" for i in range(3)}
    assert np.isnan(lay["angle"][lay["step"] == 0]).all()
    state = init_state(LAYERED, program)
    hyper = S.Hyper(jnp.float32(0.1), jnp.float32(0.01), jnp.int32(8))
    before = program.run_steps(program.data, state, hyper, 7)
    before_params = jax.tree.map(np.asarray, before.params)  # the next call donates the state
    after = program.run_steps(program.data, before, hyper, 1)
    kernel = _numpy_angle(
        before_params["conv_1"]["kernel"], np.asarray(after.params["conv_1"]["kernel"])
    )
    np.testing.assert_allclose(float(after.angles["conv_1"]["kernel"]), kernel, rtol=1e-3)
    at = (lay["step"] == 8) & (lay["layer"] == "conv_1/kernel")
    np.testing.assert_allclose(lay["angle"][at], kernel, rtol=1e-3)
    norm = np.sum(np.square(np.asarray(after.params["conv_1"]["kernel"], np.float64)))
    np.testing.assert_allclose(lay["norm_sq"][at], norm, rtol=1e-5)
    plain = dataclasses.replace(LAYERED, measure_layers=False)
    assert init_state(plain, build_program(plain, ds)).angles is None
    assert run_program(plain, ds, build_program(plain, ds)).layers is None
