import math

import numpy as np
import pytest

from l2dynamics.theory import fixed_point, train_deep_linear


def test_fixed_point_formula():
    assert fixed_point(100, 0.05) == pytest.approx(0.5)
    assert fixed_point(100, 0.1) == 0.0
    assert fixed_point(100, 0.3) == 0.0


def test_gradient_descent_reaches_one_minus_lambda_sqrt_n():
    n = 400
    c = np.array([0.2, 0.6, 0.9, 1.3, 3.0])
    result = train_deep_linear(n, c / math.sqrt(n), seed=3)
    assert np.all(result.steps < 4_000_000)  # converged, not out of budget
    nonzero = c < 1
    np.testing.assert_allclose(result.f[nonzero], 1 - c[nonzero], rtol=0.01)
    assert np.abs(result.f[~nonzero]).max() < 1e-3


def test_the_fixed_point_does_not_depend_on_the_initialization():
    lams = [0.5 / math.sqrt(50)]
    a = train_deep_linear(50, lams, seed=0).f
    b = train_deep_linear(50, lams, seed=7).f
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(a, 0.5, rtol=1e-3)
