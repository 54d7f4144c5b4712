"""The PyTorch AutoL2 adapter: weight_decay follows the controller, SGD equals the optax chain."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from l2dynamics.autol2.start import step_scale_lam0  # noqa: E402
from l2dynamics.errors import ConfigError  # noqa: E402
from l2dynamics.torch import AutoL2, replay  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


def _trace(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([0.2, 0.4, 0.6], size=n).tolist(), rng.choice([0.1, 0.2], size=n).tolist()


def _two_group_sgd():
    w, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.1, momentum=0.9)


def test_weight_decay_of_every_group_follows_the_replayed_lams():
    losses, errors = _trace(120)
    opt = _two_group_sgd()
    sched = AutoL2(opt, k=4, lam0=0.1, refractory=0.2)
    lam0 = float(np.float32(0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [sched.lam] * 2 == [lam0] * 2
    expected = replay(list(range(0, 120, 4)), losses[::4], errors[::4], sched.options)
    seen = []
    for step in range(120):
        changed = sched.step(losses[step], errors[step])
        assert {g["weight_decay"] for g in opt.param_groups} == {sched.lam}
        assert changed == (step % 4 == 0 and step > 0 and sched.lam < seen[-1])
        seen.append(sched.lam)
    assert seen[::4] == expected
    assert all(seen[i] == expected[i // 4] for i in range(120))  # held between measurements
    assert len(set(expected)) > 2  # the trace does decay (twice or more)


def _quadratic():
    a = np.asarray([[1.0, 0.5], [0.0, 2.0], [1.0, -1.0]], np.float32)
    b = np.asarray([1.0, -1.0, 0.5], np.float32)
    return a, b


def test_torch_sgd_with_autol2_equals_the_optax_chain():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    from l2dynamics.autol2 import autol2

    a, b = _quadratic()
    values = [1.0, 9.0, 0.5, 9.0, 0.6, 9.0, 0.7, 9.0, 0.8, 9.0, 0.9, 9.0, 0.95, 9.0]
    eta, mu = 0.1, 0.9
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.7]))
    opt = torch.optim.SGD([theta], lr=eta, momentum=mu)
    sched = AutoL2(opt, k=2, lam0=0.5)
    tx = optax.chain(autol2(lam0=0.5, period=2), optax.sgd(eta, momentum=mu))
    jtheta = jax.numpy.asarray([0.3, -0.7], jax.numpy.float32)
    state = tx.init(jtheta)
    grad = jax.grad(lambda th: 0.5 * jax.numpy.sum((a @ th - b) ** 2))
    for value in values:
        opt.zero_grad()
        (0.5 * ((torch.from_numpy(a) @ theta - torch.from_numpy(b)) ** 2).sum()).backward()
        sched.step(value, 0.5)  # before optimizer.step(): the optax timing
        opt.step()
        updates, state = tx.update(grad(jtheta), state, jtheta, value=value, error=0.5)
        jtheta = optax.apply_updates(jtheta, updates)
    assert sched.lam < float(np.float32(0.01))  # two decays happened
    np.testing.assert_allclose(theta.detach().numpy(), np.asarray(jtheta), rtol=1e-5, atol=1e-6)


def test_state_dict_resumes_exactly():
    losses, errors = _trace(90, seed=1)
    full = AutoL2(_two_group_sgd(), k=3, lam0=0.1)
    for step in range(90):
        full.step(losses[step], errors[step])
    first = AutoL2(_two_group_sgd(), k=3, lam0=0.1)
    for step in range(41):
        first.step(losses[step], errors[step])
    opt = _two_group_sgd()
    resumed = AutoL2(opt, k=3, lam0=0.1)
    resumed.load_state_dict(first.state_dict())
    assert {g["weight_decay"] for g in opt.param_groups} == {first.lam} != {float(np.float32(0.1))}
    for step in range(41, 90):
        resumed.step(losses[step], errors[step])
    assert resumed.state_dict() == full.state_dict()
    with pytest.raises(ValueError, match="decay"):
        AutoL2(_two_group_sgd(), k=3, lam0=0.1, decay=2.0).load_state_dict(first.state_dict())


def test_tensor_losses_are_accepted():
    sched = AutoL2(_two_group_sgd(), k=1, lam0=0.1)
    for loss in [1.0, 2.0, 3.0]:
        sched.step(torch.tensor(loss, requires_grad=True) * 1.0, torch.tensor(0.5))
    assert sched.lam < float(np.float32(0.1))


def test_decoupled_weight_decay_draws_a_warning():
    with pytest.warns(UserWarning, match="decoupled"):
        AutoL2(torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))]), lam0=0.1)


def test_the_default_start_is_the_scale_aware_one_of_the_fastest_group():
    """Groups at lr 0.1 and 0.05, momentum 0.9: λ₀ is the optax transform's and the training
    loop's for η = 0.1, μ = 0.9; an optimizer without SGD's momentum needs lam0."""
    pytest.importorskip("jax")
    from l2dynamics.autol2 import autol2

    sched = AutoL2(_two_group_sgd(), k=4)
    assert sched.options.lam0 == step_scale_lam0(0.1, 0.9, 4)
    assert autol2(learning_rate=0.1, momentum=0.9, period=4).init(np.ones(1)).controller.lam == (
        pytest.approx(sched.lam, rel=1e-7)
    )
    short = AutoL2(_two_group_sgd(), k=4, budget_steps=50)
    assert short.options.lam0 == step_scale_lam0(0.1, 0.9, 4, budget_steps=50)
    with pytest.raises(ConfigError, match="lam0"):
        AutoL2(torch.optim.Adam([torch.nn.Parameter(torch.ones(2))]))


def test_the_adapter_imports_no_jax():
    """``l2dynamics.torch`` alone (the parent package's own imports aside) never loads JAX."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys, types
        class NoJax(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("jax", "jaxlib", "optax", "flax"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, NoJax())
        package = types.ModuleType("l2dynamics")
        package.__path__ = [{str(SRC / "l2dynamics")!r}]
        sys.modules["l2dynamics"] = package
        from l2dynamics.torch import AutoL2, replay
        print(replay([0, 10, 20, 30], [1, 2, 3, 4], [0, 0, 0, 0]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[0.1000000014901")
