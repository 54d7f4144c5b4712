"""AutoL2 (SPEC §3): the JAX controller, its optax transform, and its plain-Python twin."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from l2dynamics.autol2 import (
    AutoL2Options,
    autol2,
    autol2_lam,
    find_autol2_state,
    init,
    initial_refractory_steps,
    pure,
    replay,
    update,
)
from l2dynamics.errors import ConfigError

INF, NAN = math.inf, math.nan
REPLAYS = {"jax": replay, "pure": pure.replay}


def _f32(x):
    return float(np.float32(x))


# --- a hand-written trace (defaults: λ₀ 0.1, decay 10, r 0.1 → refractory 1, 10, 100 steps)

HAND_STEPS = list(range(0, 220, 10))
HAND_LOSSES = [1.0, 0.8, 0.6, 0.9, 0.5, 0.7, 0.55, 0.6, 0.45, 0.4, 0.42, 0.5] + [0.9] * 10
HAND_ERRORS = [0.9, 0.7, 0.5, 0.4, 0.3, 0.35, 0.32, 0.31, 0.2, 0.33, 0.25, 0.3] + [0.9] * 10
# step 30: a one-measurement loss blip (0.9 > best 0.8, but 0.6 before it is not): no decay.
# step 60: losses 0.7, 0.55 both above best 0.5 → λ 0.01, min_step 60 + 10 = 70.
# step 70: losses 0.55, 0.6 still above 0.5, but 70 > 70 is false: blocked; bests take 0.55.
# step 100: errors 0.33, 0.25 both above best 0.2 → λ 0.001, min_step 100 + 100 = 200.
# steps 110-200: rises, all blocked (200 > 200 is false); step 210: λ 1e-4.
HAND_LAMS = [0.1] * 6 + [0.01] * 4 + [0.001] * 11 + [1e-4]


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_hand_written_trace_decays_exactly_where_expected(kind):
    lams = REPLAYS[kind](HAND_STEPS, HAND_LOSSES, HAND_ERRORS)
    np.testing.assert_allclose(lams, HAND_LAMS, rtol=3e-7)
    decay_steps = [s for s, a, b in zip(HAND_STEPS[1:], lams, lams[1:], strict=False) if b < a]
    assert decay_steps == [60, 100, 210]


def test_bests_move_when_a_rise_is_blocked_and_not_at_a_decay():
    state, opts = init(), AutoL2Options()
    bests = {}
    for step, loss, err in zip(HAND_STEPS, HAND_LOSSES, HAND_ERRORS, strict=True):
        state = update(state, step, loss, err, opts)
        bests[step] = (float(state.best_loss), float(state.best_error))
    assert bests[60] == bests[50] == (_f32(0.5), _f32(0.3))  # decay at 60: bests kept
    assert bests[110] == (_f32(0.42), _f32(0.2))  # blocked at 110: best loss takes 0.42
    assert int(state.min_step) == 210 + 1000 and int(state.decays) == 3


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_a_single_blip_never_decays_but_two_in_a_row_do(kind):
    steps = [0, 10, 20, 30, 40, 50]
    errors = [0.5] * 6
    blip = REPLAYS[kind](steps, [1.0, 0.5, 0.4, 0.9, 0.3, 0.2], errors)
    twice = REPLAYS[kind](steps, [1.0, 0.5, 0.4, 0.9, 0.9, 0.2], errors)
    assert blip == [_f32(0.1)] * 6
    assert twice[:4] == [_f32(0.1)] * 4 and twice[4] < twice[3]


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_refractory_boundary_is_strict(kind):
    # decay at 20 (λ 0.01, refractory 10 steps): blocked at 30, allowed at 31.
    lams = REPLAYS[kind]([0, 10, 20, 30, 31], [1, 2, 3, 4, 5], [0.0] * 5)
    np.testing.assert_allclose(lams, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=3e-7)


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_paper_listing_best_loss_of_one_decays_while_losses_exceed_one(kind):
    steps, losses, errors = [0, 10, 20], [2.0, 3.0, 2.5], [0.5] * 3
    assert REPLAYS[kind](steps, losses, errors)[1] == _f32(0.1)
    assert REPLAYS[kind](steps, losses, errors, initial_best_loss=1.0)[1] < _f32(0.1)


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_ties_count_as_rises_only_with_count_ties(kind):
    steps, losses, errors = [0, 10, 20, 30], [1.0, 0.5, 0.5, 0.5], [0.5] * 4
    assert REPLAYS[kind](steps, losses, errors) == [_f32(0.1)] * 4
    tied = REPLAYS[kind](steps, losses, errors, count_ties=True)
    assert tied[:2] == [_f32(0.1)] * 2 and tied[2] < tied[1]


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_start_refractory_blocks_until_r_over_lam0(kind):
    steps, losses, errors = [0, 5, 10, 15], [1, 2, 3, 4], [0.0] * 4
    opts = {"lam0": 0.01}  # r/λ₀ = 10 steps
    np.testing.assert_allclose(
        REPLAYS[kind](steps, losses, errors, **opts), [0.01, 0.01, 1e-3, 1e-3], rtol=3e-7
    )
    np.testing.assert_allclose(
        REPLAYS[kind](steps, losses, errors, start_refractory=True, **opts),
        [0.01, 0.01, 0.01, 1e-3],
        rtol=3e-7,
    )


def test_initial_refractory_period_is_the_exact_decimal_ratio():
    assert initial_refractory_steps(AutoL2Options()) == 1.0
    assert initial_refractory_steps(AutoL2Options(refractory=0.3)) == 3.0  # not 2.999…
    assert initial_refractory_steps(AutoL2Options(lam0=0.03)) == 10 / 3


@pytest.mark.parametrize("kind", sorted(REPLAYS))
def test_refractory_period_saturates_at_int32_max(kind):
    # λ₀ 1e-3 → R 100 steps; decay 1e6 → R 1e8 after one decay, 1e14 (saturated) after two.
    steps = [0, 1, 2, 100_000_002, 200_000_000, 200_000_001, 2**31 - 1]
    lams = REPLAYS[kind](steps, [1, 2, 3, 4, 5, 6, 7], [0.0] * 7, lam0=1e-3, decay=1e6)
    assert [lam < prev for prev, lam in zip(lams, lams[1:], strict=False)] == [
        False, True, False, True, False, False,
    ]  # fmt: skip


def test_lam_below_float32_normals_is_flushed_to_zero_by_both_twins():
    # r = 0: every measurement after the second decays, 0.1 → 1e-38 → 0 (not a subnormal).
    steps, losses = list(range(60)), [float(i) for i in range(60)]
    lams = replay(steps, losses, [0.0] * 60, refractory=0.0)
    assert lams == pure.replay(steps, losses, [0.0] * 60, refractory=0.0)
    assert lams[-1] == 0.0 and min(x for x in lams if x > 0) >= 2.0**-126


@pytest.mark.parametrize(
    "bad",
    [{"lam0": 0.0}, {"decay": 1.0}, {"refractory": -1.0}, {"period": 0}, {"count_ties": 1}],
)
def test_bad_options_name_the_field(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        replay([0], [1.0], [0.5], **bad)


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match="lam_0"):
        autol2(lam_0=0.1)


def test_replay_rejects_ragged_or_out_of_range_input():
    with pytest.raises(ValueError, match="same length"):
        replay([0, 10], [1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="2\\*\\*31"):
        replay([2**31], [1.0], [0.5])


# --- properties on random traces

# Values on a coarse grid (ties, plateaus) or anywhere; steps with gaps that hit the
# refractory boundaries of the option sets below.
_VALUES = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), st.floats(0.0, 3.0))
_SPECIAL = st.one_of(_VALUES, st.sampled_from([NAN, INF, -INF]))
OPTIONS = st.builds(
    AutoL2Options,
    lam0=st.sampled_from([0.1, 0.05, 1.0, 0.003]),
    decay=st.sampled_from([10.0, 2.0, 3.0]),
    refractory=st.sampled_from([0.1, 0.0, 0.3]),
    initial_best_loss=st.sampled_from([INF, 1.0]),
    count_ties=st.booleans(),
    start_refractory=st.booleans(),
)


@st.composite
def traces(draw, values=_VALUES):
    n = draw(st.sampled_from([8, 24, 40]))
    gaps = draw(st.lists(st.sampled_from([1, 2, 3, 5, 10, 20]), min_size=n - 1, max_size=n - 1))
    steps = np.cumsum([draw(st.integers(0, 3)), *gaps]).tolist()
    losses = draw(st.lists(values, min_size=n, max_size=n))
    errors = draw(st.lists(values.map(lambda x: x / 3.0), min_size=n, max_size=n))
    return steps, losses, errors


@settings(max_examples=40, deadline=None)
@given(trace=traces(), opts=OPTIONS)
@example(  # a decay at every measurement: λ reaches the float32 subnormals and is flushed to 0
    trace=(list(range(40)), [0.0] * 40, [0.0] * 40),
    opts=AutoL2Options(refractory=0.0, count_ties=True, start_refractory=False),
)
def test_lam_never_grows_and_never_decays_twice_within_a_refractory_period(trace, opts):
    steps, losses, errors = trace
    lams = pure.replay(steps, losses, errors, opts)
    assert lams[0] == _f32(opts.lam0)  # one measurement alone never decays
    previous, decays, last = lams[0], 0, None
    for step, lam in zip(steps, lams, strict=True):
        assert lam <= previous
        if lam < previous:
            expected = _f32(previous * np.float32(1.0 / opts.decay))
            if abs(expected) < np.finfo(np.float32).tiny:
                expected = 0.0  # the controller flushes subnormal λ to 0 (its docstring)
            assert lam == expected
            # r/λ (steps) with the λ after the previous decay (λ₀ when it starts refractory)
            period = opts.refractory * opts.decay**decays / opts.lam0
            if last is not None or opts.start_refractory:
                assert step - (last or 0) > period * (1 - 1e-9)
            decays, last = decays + 1, step
        previous = lam


@settings(max_examples=40, deadline=None)
@given(trace=traces(values=_SPECIAL), opts=OPTIONS)
def test_jax_and_plain_python_replays_agree_bit_for_bit(trace, opts):
    assert replay(*trace, opts) == pure.replay(*trace, opts)


@functools.cache
def _transform_lams_fn(opts):
    tx = optax.chain(autol2(opts), optax.sgd(0.1))
    params = {"w": jnp.ones(3, jnp.float32)}

    def body(state, xs):
        value, error = xs
        grads = jax.tree.map(jnp.zeros_like, params)
        _, state = tx.update(grads, state, params, value=value, error=error)
        return state, autol2_lam(state)

    return jax.jit(lambda values, errors: jax.lax.scan(body, tx.init(params), (values, errors))[1])


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    opts=st.builds(
        AutoL2Options,
        period=st.sampled_from([1, 3, 10]),
        count_ties=st.booleans(),
        refractory=st.sampled_from([0.1, 1.0]),
    ),
)
def test_optax_transform_lams_equal_both_replays(data, opts):
    n = 60
    values = data.draw(st.lists(_VALUES, min_size=n, max_size=n))
    errors = data.draw(st.lists(_VALUES.map(lambda x: x / 3.0), min_size=n, max_size=n))
    per_step = _transform_lams_fn(opts)(jnp.asarray(values, jnp.float32), jnp.asarray(errors))
    k = opts.period
    measured = [float(x) for x in np.asarray(per_step)[::k]]
    steps = list(range(0, n, k))
    assert measured == replay(steps, values[::k], errors[::k], opts)
    assert measured == pure.replay(steps, values[::k], errors[::k], opts)


# --- the optax transform


def _quadratic():
    a = jnp.asarray([[1.0, 0.5], [0.0, 2.0], [1.0, -1.0]], jnp.float32)
    b = jnp.asarray([1.0, -1.0, 0.5], jnp.float32)
    return (lambda th: 0.5 * jnp.sum((a @ th - b) ** 2)), np.asarray(a), np.asarray(b)


def test_chain_with_sgd_equals_hand_written_sgd_with_lam_theta():
    loss_fn, a, b = _quadratic()
    eta, mu, n = 0.1, 0.9, 14
    # measurements every 2 steps: 1.0, 0.5, 0.6, 0.7 → decay at step 6 (λ 0.05, refractory 2
    # steps, blocked at 8), 0.8 at 8, 0.9 at 10 → decay (λ 0.005); odd steps get garbage.
    at_measurements = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    values = [at_measurements[i // 2] if i % 2 == 0 else 1e9 for i in range(n)]
    lam_per_step = [0.5] * 6 + [0.05] * 4 + [0.005] * 4
    tx = optax.chain(autol2(lam0=0.5, period=2), optax.sgd(eta, momentum=mu))
    theta = jnp.asarray([0.3, -0.7], jnp.float32)
    state = tx.init(theta)
    ref_theta, ref_v = np.asarray(theta, np.float64), np.zeros(2)
    for step in range(n):
        grads = jax.grad(loss_fn)(theta)
        updates, state = tx.update(grads, state, theta, value=values[step], error=0.5)
        theta = optax.apply_updates(theta, updates)
        assert float(autol2_lam(state)) == pytest.approx(lam_per_step[step], rel=3e-7)
        ref_v = mu * ref_v + a.T @ (a @ ref_theta - b) + lam_per_step[step] * ref_theta
        ref_theta = ref_theta - eta * ref_v
    np.testing.assert_allclose(np.asarray(theta), ref_theta, rtol=1e-5, atol=1e-6)


def test_transform_needs_value_and_error_on_every_call():
    tx = autol2(lam0=0.1)
    params = {"w": jnp.ones(2, jnp.float32)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="value"):
        tx.update(params, state, params, error=0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state, value=1.0, error=0.1)


def test_mask_keeps_l2_off_the_masked_out_leaves():
    params = {"kernel": jnp.ones(2, jnp.float32), "bias": jnp.ones(2, jnp.float32)}
    grads = jax.tree.map(jnp.zeros_like, params)
    tx = autol2(mask={"kernel": True, "bias": False}, lam0=0.25)
    updates, _ = tx.update(grads, tx.init(params), params, value=1.0, error=0.5)
    np.testing.assert_array_equal(np.asarray(updates["kernel"]), [0.25, 0.25])
    np.testing.assert_array_equal(np.asarray(updates["bias"]), [0.0, 0.0])


def test_find_autol2_state_wants_exactly_one():
    params = jnp.ones(2, jnp.float32)
    with pytest.raises(ValueError, match="found 0"):
        find_autol2_state(optax.sgd(0.1).init(params))
    with pytest.raises(ValueError, match="found 2"):
        find_autol2_state(optax.chain(autol2(lam0=0.1), autol2(lam0=0.1)).init(params))


# --- jit and vmap of the controller


def test_one_vmapped_update_serves_states_with_their_own_lam0_and_r():
    """``update`` reads only ``decay``/``count_ties``: λ₀ and r live in each initial state."""
    rng = np.random.default_rng(3)
    pairs = [(0.1, 0.1), (0.05, 0.5), (1.0, 0.3), (0.003, 0.1), (0.2, 0.0), (0.1, 2.0)]
    opts = [AutoL2Options(lam0=lam0, refractory=r, decay=3.0) for lam0, r in pairs]
    n = 30
    steps = np.arange(n, dtype=np.int32) * 3
    losses = rng.choice([0.2, 0.4, 0.6, 0.8], size=(len(opts), n)).astype(np.float32)
    errors = rng.choice([0.1, 0.2, 0.3], size=(len(opts), n)).astype(np.float32)
    compiled = AutoL2Options(decay=3.0)  # default λ₀ and r: unused by update

    def run(state, ls, es):
        def body(state, xs):
            state = update(state, *xs, compiled)
            return state, state

        return jax.lax.scan(body, state, (jnp.asarray(steps), ls, es))[1]

    states0 = jax.tree.map(lambda *xs: jnp.stack(xs), *[init(o) for o in opts])
    batched = jax.jit(jax.vmap(run))(states0, jnp.asarray(losses), jnp.asarray(errors))
    for b, opt in enumerate(opts):
        state = pure.init(opt)
        for i in range(n):
            state = pure.update(state, int(steps[i]), float(losses[b, i]), errors[b, i], opt)
            got = {f: np.asarray(getattr(batched, f)[b, i]).item() for f in state._fields}
            assert got == state._asdict()
    assert len(set(np.asarray(batched.lam)[:, -1].tolist())) == len(opts)  # all differ
    assert int(np.asarray(batched.decays).max()) >= 2


def test_the_default_start_is_the_scale_aware_one_for_the_sgd_it_feeds():
    from l2dynamics.autol2 import step_scale_lam0
    from l2dynamics.errors import ConfigError

    tx = autol2(learning_rate=0.5, momentum=0.9, period=5)
    lam = tx.init(jnp.ones(2, jnp.float32)).controller.lam
    assert float(lam) == pytest.approx(step_scale_lam0(0.5, 0.9, 5), rel=1e-7)
    short = autol2(learning_rate=0.5, momentum=0.9, period=5, budget_steps=100)
    lam = short.init(jnp.ones(2, jnp.float32)).controller.lam
    assert float(lam) == pytest.approx(step_scale_lam0(0.5, 0.9, 5, budget_steps=100), rel=1e-7)
    with pytest.raises(ConfigError, match="learning_rate"):
        autol2()
