"""Batched derivatives: per-problem gradients and Hessians of every family (oracles: autograd on
one problem at a time, central differences)."""
import functools

import numpy as np
import pytest
from autograd import grad
from hypothesis import given, settings, strategies as st

from lto_ref import autodiff, objectives

FAMILIES = [objectives.logistic_regression(), objectives.robust_linear_regression(),
            objectives.two_layer_net(), objectives.logistic_regression_2d(), objectives.quadratic()]


def _setup(fi, seed, n):
    fam = FAMILIES[fi]
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0, functools.partial(fam.loss, problems=problems)


@settings(max_examples=30)
@given(st.integers(0, len(FAMILIES) - 1), st.integers(0, 10**6), st.integers(1, 4))
def test_value_and_grad_are_each_problems_own(fi, seed, n):
    fam, problems, x0, obj = _setup(fi, seed, n)
    f, g = autodiff.value_and_grad(obj, x0)
    assert f.shape == (n,) and g.shape == (n, fam.dim)
    for i in range(n):
        one = objectives.subset(problems, [i])
        np.testing.assert_allclose(f[i], fam.loss(x0[i:i + 1], one)[0], rtol=1e-13)
        g_i = grad(lambda z: fam.loss(z, one)[0])(x0[i:i + 1])[0]
        np.testing.assert_allclose(g[i], g_i, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fi", range(len(FAMILIES)))
def test_hessians_match_central_differences_of_gradients(fi):
    fam, problems, x0, obj = _setup(fi, 5, 3)
    H = autodiff.hessians(obj, x0)
    h = 1e-5
    fd = np.stack([(autodiff.value_and_grad(obj, x0 + h * e)[1]
                    - autodiff.value_and_grad(obj, x0 - h * e)[1]) / (2 * h)
                   for e in np.eye(fam.dim)], axis=-1)
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, np.swapaxes(H, 1, 2), rtol=1e-10, atol=1e-12)
    if fam.name == "quadratic":
        np.testing.assert_allclose(H, problems.A, rtol=1e-12)


def test_objective_that_is_not_batched_is_refused():
    with pytest.raises(ValueError, match=r"\(n,\)"):
        autodiff.value_and_grad(lambda x: x.sum(), np.ones((3, 2)))
