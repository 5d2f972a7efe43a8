"""Tests of lto_ref.references: scipy CG / L-BFGS-B with every evaluation logged (docs/method.md §4)."""
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings, strategies as st

from lto_ref import objectives
from lto_ref.references import METHODS, scipy_trace

from conftest import rng_from, seeds

QUAD = objectives.quadratic(dim=4, f_off=1.5)
LR = objectives.logistic_regression(lam=0.1)  # strongly convex, well-conditioned minimiser
methods = st.sampled_from(METHODS)


def _draw(family, seed, n):
    rng = rng_from(seed)
    problems = family.sample(rng, n)
    return problems, family.init(rng, n)


def _quad_fun(problem, log):
    """Plain-numpy (f, g) of one quadratic ½ rᵀA r + f_off, r = x − x*, logging every point."""
    A, x_star, f_off = problem.A[0], problem.x_star[0], problem.f_off[0]

    def fun(x):
        log.append(np.array(x))
        r = x - x_star
        return 0.5 * r @ A @ r + f_off, A @ r
    return fun


def _lr_fun(problem, lam):
    """Plain-numpy (f, g) of one logistic regression, x = [w, b], bias unregularised."""
    a, y = problem.a[0], problem.y[0]                 # (N, d_in), (N,)

    def fun(x):
        w, b = x[:-1], x[-1]
        z = a @ w + b
        f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w @ w
        err = 1.0 / (1.0 + np.exp(-z)) - y           # df/dz per point, times N
        return f, np.append(a.T @ err / len(y) + lam * w, np.mean(err))
    return fun


@settings(max_examples=20)
@given(seeds)
def test_lbfgsb_reaches_quadratic_minimiser(seed):
    problems, x0 = _draw(QUAD, seed, 2)
    trace = scipy_trace("L-BFGS-B", QUAD.loss, problems, x0, 100)
    np.testing.assert_allclose(trace.xs[-1], problems.x_star, atol=1e-6)
    np.testing.assert_allclose(trace.fs[-1], problems.f_off, rtol=0, atol=1e-10)
    np.testing.assert_allclose(trace.best_fs[-1], problems.f_off, rtol=0, atol=1e-10)


@settings(max_examples=10)
@given(seeds)
def test_cg_and_lbfgsb_agree_with_direct_scipy_on_logistic_regression(seed):
    problems, x0 = _draw(LR, seed, 2)
    lbfgs = scipy_trace("L-BFGS-B", LR.loss, problems, x0, 300)
    cg = scipy_trace("CG", LR.loss, problems, x0, 300)
    for i in range(2):
        fun = _lr_fun(objectives.subset(problems, [i]), lam=0.1)
        direct = scipy.optimize.minimize(fun, x0[i], jac=True, method="BFGS",
                                         options={"gtol": 1e-10})
        # strong convexity (λ = 0.1) turns gradient tolerances ~1e-8 into ~1e-7 in x
        np.testing.assert_allclose(lbfgs.xs[-1, i], direct.x, atol=1e-6)
        np.testing.assert_allclose(cg.xs[-1, i], direct.x, atol=1e-6)
        np.testing.assert_allclose(lbfgs.fs[-1, i], direct.fun, rtol=1e-12)


@settings(max_examples=20)
@given(seeds, methods)
def test_logged_points_are_the_points_scipy_evaluates(seed, method):
    problems, x0 = _draw(QUAD, seed, 2)
    evals = 8  # before the end game, where rounding differences can change scipy's stopping
    trace = scipy_trace(method, QUAD.loss, problems, x0, evals)
    for i in range(2):
        log = []
        options = {"gtol": 1e-12, "ftol": 0.0, "maxcor": 10} if method == "L-BFGS-B" else {}
        scipy.optimize.minimize(_quad_fun(objectives.subset(problems, [i]), log), x0[i],
                                jac=True, method=method,
                                options={**options, "gtol": 1e-12, "maxiter": 10 * evals})
        k = min(len(log), evals + 1)
        assert trace.n_evals[i] == k
        # same iterates up to rounding of autograd's vs numpy's arithmetic
        np.testing.assert_allclose(trace.xs[:k, i], np.stack(log[:k]), rtol=1e-8, atol=1e-10)


@settings(max_examples=20)
@given(seeds, methods, st.integers(0, 25))
def test_fs_are_the_loss_at_xs_and_best_fs_is_the_running_min(seed, method, evals):
    problems, x0 = _draw(QUAD, seed, 3)
    trace = scipy_trace(method, QUAD.loss, problems, x0, evals)
    assert trace.xs.shape == (evals + 1, 3, 4)
    assert trace.fs.shape == trace.best_fs.shape == (evals + 1, 3)
    np.testing.assert_array_equal(trace.xs[0], x0)
    np.testing.assert_allclose(trace.fs[0], QUAD.loss(x0, problems), rtol=1e-12)
    for k in range(evals + 1):
        np.testing.assert_allclose(trace.fs[k], QUAD.loss(trace.xs[k], problems), rtol=1e-12)
    running = trace.fs[0].copy()
    for k in range(evals + 1):
        running = np.minimum(running, trace.fs[k])
        np.testing.assert_array_equal(trace.best_fs[k], running)
    assert np.all(np.diff(trace.best_fs, axis=0) <= 0)


@pytest.mark.parametrize("method", METHODS)
def test_truncation_keeps_evals_plus_one_entries(method):
    problems, x0 = _draw(QUAD, 7, 2)
    trace = scipy_trace(method, QUAD.loss, problems, x0, 3)
    assert trace.xs.shape == (4, 2, 4) and trace.fs.shape == (4, 2)
    np.testing.assert_array_equal(trace.n_evals, [4, 4])
    assert np.all(trace.xs[1] != trace.xs[0])  # not held: scipy moved on every evaluation
    zero = scipy_trace(method, QUAD.loss, problems, x0, 0)
    assert zero.fs.shape == (1, 2)
    np.testing.assert_array_equal(zero.n_evals, [1, 1])


def test_early_stop_holds_the_last_evaluation():
    problems, x0 = _draw(QUAD, 11, 3)
    evals = 200  # L-BFGS-B finishes a 4-D quadratic in a few dozen evaluations
    trace = scipy_trace("L-BFGS-B", QUAD.loss, problems, x0, evals)
    assert np.all(trace.n_evals < evals + 1)
    for i, k in enumerate(trace.n_evals):
        np.testing.assert_array_equal(trace.xs[k:, i], np.broadcast_to(trace.xs[k - 1, i],
                                                                       (evals + 1 - k, 4)))
        np.testing.assert_array_equal(trace.fs[k:, i], trace.fs[k - 1, i])


@settings(max_examples=10)
@given(seeds, methods)
def test_batch_equals_each_problem_alone(seed, method):
    problems, x0 = _draw(LR, seed, 3)
    batch = scipy_trace(method, LR.loss, problems, x0, 40)
    for i in range(3):
        alone = scipy_trace(method, LR.loss, objectives.subset(problems, [i]), x0[i:i + 1], 40)
        for field in ("xs", "fs", "best_fs"):
            np.testing.assert_array_equal(getattr(batch, field)[:, i], getattr(alone, field)[:, 0])
        assert batch.n_evals[i] == alone.n_evals[0]


def test_inputs_are_not_mutated():
    problems, x0 = _draw(QUAD, 3, 2)
    x0_before = x0.copy()
    problems_before = [np.copy(field) for field in problems]
    scipy_trace("L-BFGS-B", QUAD.loss, problems, x0, 20)
    np.testing.assert_array_equal(x0, x0_before)
    for field, before in zip(problems, problems_before):
        np.testing.assert_array_equal(field, before)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "BFGS"}, "method must be one of"),
    ({"evals": -1}, "evals must be an integer >= 0"),
    ({"evals": 2.5}, "evals must be an integer >= 0"),
    ({"evals": True}, "evals must be an integer >= 0"),
    ({"x0": np.zeros(4)}, r"x0 must have shape \(n, d\)"),
    ({"x0": np.zeros((3, 4))}, "x0 must have one row per problem"),
    ({"x0": np.zeros((2, 5))}, "x0 of shape \\(2, 5\\) does not fit family_loss"),
    ({"x0": np.full((2, 4), np.nan)}, "x0 must be finite"),
])
def test_bad_input_is_refused(kwargs, message):
    problems, x0 = _draw(QUAD, 0, 2)
    args = {"method": "CG", "family_loss": QUAD.loss, "problems": problems, "x0": x0,
            "evals": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        scipy_trace(**args)
