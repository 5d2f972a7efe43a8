"""Tests of lto_ref.analysis.tuning_sensitivity: the step-size sweep against closed forms."""
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from lto_ref.analysis import tuning_sensitivity as ts


@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=6), st.integers(1, 6),
       st.integers(0, 2**32 - 1))
def test_gradient_descent_on_quadratics_matches_the_closed_form(lams, T, seed):
    """f_j(x) = ½ λ_j ‖x‖²: GD gives x_T = (1 − γλ)^T x_0, so a run diverges iff |1 − γλ| > 1."""
    lam = np.array(lams)
    x0 = np.random.default_rng(seed).normal(size=(lam.size, 3)) + 0.1
    lrs = np.array([0.05, 0.3, 0.9, 3.0])
    ratio = np.abs(1 - lrs[:, None] * lam[None])                      # (K, n)
    if np.any(np.abs(ratio - 1) < 1e-6):                             # f(x_T) = f(x_0): a tie
        return
    got = ts.sweep("gd", lambda x: 0.5 * anp.sum(lam[:, None] * x ** 2, axis=1), x0, T, lrs=lrs)
    f0 = 0.5 * lam * np.sum(x0 ** 2, axis=1)
    final = f0[None] * ratio ** (2 * T)
    div = ratio > 1
    np.testing.assert_array_equal(got.lr, lrs)
    np.testing.assert_allclose(got.diverged, div.mean(axis=1))
    for k in range(lrs.size):
        if np.all(div[k]):
            assert np.isnan(got.final_mean[k])
        else:
            np.testing.assert_allclose(got.final_mean[k], final[k][~div[k]].mean(), rtol=1e-9,
                                       atol=1e-12)
        np.testing.assert_allclose(got.final_median[k], np.median(np.where(div[k], np.inf,
                                                                           final[k])), rtol=1e-9,
                                   atol=1e-12)


def test_the_fixed_settings_reach_the_optimizer():
    """Momentum with mass 0 is GD; with mass 0.9 on the same quadratic it is not."""
    lam = np.array([1.0, 2.0])
    x0 = np.ones((2, 2))
    f = lambda x: 0.5 * anp.sum(lam[:, None] * x ** 2, axis=1)  # noqa: E731
    gd = ts.sweep("gd", f, x0, 5, lrs=[0.1, 0.5])
    m0 = ts.sweep("momentum", f, x0, 5, lrs=[0.1, 0.5], fixed={"mass": 0.0})
    m9 = ts.sweep("momentum", f, x0, 5, lrs=[0.1, 0.5], fixed={"mass": 0.9})
    np.testing.assert_allclose(m0.final_mean, gd.final_mean)
    assert not np.allclose(m9.final_mean, gd.final_mean)


def test_bad_arguments_raise():
    f = lambda x: anp.sum(x ** 2, axis=1)  # noqa: E731
    with pytest.raises(ValueError, match="lrs"):
        ts.sweep("gd", f, np.ones((1, 1)), 3, lrs=[])
    with pytest.raises(ValueError, match="lrs"):
        ts.sweep("gd", f, np.ones((1, 1)), 3, lrs=[0.1, -1.0])
    with pytest.raises(ValueError, match="fixed"):
        ts.sweep("momentum", f, np.ones((1, 1)), 3, fixed={"lr": 0.1})
