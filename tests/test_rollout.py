"""Rollout (Algorithm 1), meta-loss, divergence handling and tuning."""
import functools
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize
from autograd import grad
from hypothesis import given, settings, strategies as st

from lto_ref import objectives, optimizers as opt, rollout

FAMILIES = [objectives.logistic_regression(), objectives.robust_linear_regression(),
            objectives.two_layer_net(), objectives.logistic_regression_2d(), objectives.quadratic()]
OPTIMIZERS = [opt.gd(0.1), opt.momentum(0.1, 0.9), opt.conjugate_gradient(0.01), opt.lbfgs(0.1),
              opt.adam(0.05), opt.adagrad(0.1), opt.rmsprop(0.01)]
family_idx = st.integers(0, len(FAMILIES) - 1)
optimizer_idx = st.integers(0, len(OPTIMIZERS) - 1)


def _setup(fi, seed, n):
    fam = FAMILIES[fi]
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0, functools.partial(fam.loss, problems=problems)


@settings(max_examples=50)
@given(family_idx, optimizer_idx, st.integers(0, 10**6), st.integers(0, 8))
def test_meta_loss_is_objective_summed_over_iterates_1_to_T(fi, oi, seed, steps):
    fam, problems, x0, obj = _setup(fi, seed, 3)
    trace = rollout.run(OPTIMIZERS[oi], obj, x0, steps)
    assert trace.xs.shape == (steps + 1, 3, fam.dim) and trace.fs.shape == (steps + 1, 3)
    # independent recomputation of f at every stored iterate
    recomputed = sum(fam.loss(trace.xs[t], problems) for t in range(1, steps + 1))
    np.testing.assert_allclose(rollout.meta_loss(trace), recomputed, rtol=1e-12, atol=0)
    assert rollout.meta_loss(trace).shape == (3,)
    np.testing.assert_allclose(rollout.gps_cost(trace),
                               trace.fs[0] + rollout.meta_loss(trace) - trace.fs[-1], rtol=1e-12)


@settings(max_examples=30)
@given(family_idx, st.integers(0, 10**6))
def test_trace_holds_value_and_gradient_at_each_iterate(fi, seed):
    fam, problems, x0, obj = _setup(fi, seed, 2)
    trace = rollout.run(opt.momentum(0.05, 0.5), obj, x0, 4)
    np.testing.assert_array_equal(trace.xs[0], x0)
    for t in range(5):
        for i in range(2):
            one = objectives.subset(problems, [i])
            g_i = grad(lambda z: fam.loss(z, one)[0])(trace.xs[t, i:i + 1])
            np.testing.assert_allclose(trace.gs[t, i], g_i[0], rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(trace.fs[t, i], fam.loss(trace.xs[t, i:i + 1], one)[0],
                                       rtol=1e-12)


@settings(max_examples=40)
@given(family_idx, optimizer_idx, st.integers(0, 10**6))
def test_batch_equals_each_problem_alone(fi, oi, seed):
    fam, problems, x0, obj = _setup(fi, seed, 3)
    together = rollout.run(OPTIMIZERS[oi], obj, x0, 6)
    for i in range(3):
        alone = rollout.run(OPTIMIZERS[oi], functools.partial(
            fam.loss, problems=objectives.subset(problems, [i])), x0[i:i + 1], 6)
        np.testing.assert_allclose(together.xs[:, i], alone.xs[:, 0], rtol=1e-14, atol=1e-15)
        # not bitwise: BLAS may block a batched einsum differently from a one-row one
        np.testing.assert_allclose(together.fs[:, i], alone.fs[:, 0], rtol=1e-14, atol=1e-15)


@given(optimizer_idx, st.integers(0, 10**6))
def test_same_inputs_same_trace_and_inputs_unchanged(oi, seed):
    fam, problems, x0, obj = _setup(0, seed, 4)
    x0_copy, a_copy = x0.copy(), problems.a.copy()
    a = rollout.run(OPTIMIZERS[oi], obj, x0, 5)
    b = rollout.run(OPTIMIZERS[oi], obj, x0, 5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(x0, x0_copy)
    np.testing.assert_array_equal(problems.a, a_copy)


def _stiff_batch():
    """Three 2-D quadratics; problem 1 has curvature 1e6, so GD with lr 0.5 blows it up."""
    A = np.stack([np.eye(2), 1e6 * np.eye(2), 0.5 * np.eye(2)])
    problems = objectives.Quadratic(A=A, x_star=np.zeros((3, 2)), f_off=np.zeros(3))
    return problems, np.ones((3, 2))


@pytest.mark.parametrize("o", [opt.gd(0.5), opt.momentum(0.5, 0.9), opt.conjugate_gradient(0.5)])
def test_blow_up_freezes_one_problem_and_leaves_the_others_alone(o):
    problems, x0 = _stiff_batch()
    loss = objectives.quadratic(2).loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings leak out of run
        trace = rollout.run(o, functools.partial(loss, problems=problems), x0, 80)
    np.testing.assert_array_equal(trace.diverged, [False, True, False])
    assert np.all(np.isfinite(trace.xs)) and np.all(np.isfinite(trace.fs))
    t_last = np.flatnonzero(np.diff(trace.fs[:, 1]) != 0).max() + 1  # last change of problem 1
    assert t_last < 80 and np.all(trace.xs[t_last:, 1] == trace.xs[t_last, 1])
    for i in (0, 2):
        alone = rollout.run(o, functools.partial(loss, problems=objectives.subset(problems, [i])),
                            x0[i:i + 1], 80)
        np.testing.assert_array_equal(trace.xs[:, i], alone.xs[:, 0])
        assert not alone.diverged[0]


def test_nonfinite_objective_at_x0_is_flagged_not_propagated():
    def obj(x):  # problem 0 is the log of a negative number at x0
        return anp.stack([anp.log(x[0, 0] - 2.0), anp.sum(x[1] ** 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = rollout.run(opt.gd(0.1), obj, np.ones((2, 2)), 3)
    np.testing.assert_array_equal(trace.diverged, [True, False])
    np.testing.assert_allclose(trace.xs[:, 1, 0], [1, 0.8, 0.64, 0.512], atol=1e-15)


@pytest.mark.parametrize("x0,steps,arg", [
    (np.ones(3), 2, "x0"), (np.ones((2, 2)), -1, "steps"), (np.ones((2, 2)), 1.5, "steps"),
    (np.array([[np.nan, 1.0]]), 2, "x0"),
])
def test_bad_run_arguments_raise(x0, steps, arg):
    with pytest.raises(ValueError, match=arg):
        rollout.run(opt.gd(0.1), lambda x: (x ** 2).sum(1), x0, steps)


def test_objective_with_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="objective"):
        rollout.run(opt.gd(0.1), lambda x: (x ** 2).sum(), np.ones((2, 2)), 1)


def test_wrong_x_dimension_is_refused_by_the_family():
    fam, problems, x0, obj = _setup(0, 0, 2)
    with pytest.raises(ValueError, match="x"):
        rollout.run(opt.gd(0.1), obj, x0[:, :3], 1)


def test_meta_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="fs"):
        rollout.meta_loss(np.ones(4))


# ---------------------------------------------------------------- tuning

def test_tune_picks_the_brute_force_argmin_and_reports_every_setting():
    fam, problems, x0, obj = _setup(4, 3, 5)
    grid = rollout.default_grid("momentum")[:30]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, table = rollout.tune(opt.momentum, grid, obj, x0, steps=20)
    scores = []
    for p in grid:  # independent brute force
        tr = rollout.run(opt.momentum(**p), obj, x0, 20)
        scores.append(np.inf if tr.diverged.any() else tr.fs[1:].sum(0).mean())
    assert [p for p, _ in table] == grid
    np.testing.assert_allclose([s for _, s in table], scores, rtol=1e-12)
    assert best == grid[int(np.argmin(scores))]


def test_tune_scores_diverged_settings_as_inf_and_breaks_ties_in_grid_order():
    problems, x0 = _stiff_batch()
    obj = functools.partial(objectives.quadratic(2).loss, problems=problems)
    grid = [{"lr": 0.5}, {"lr": 1e-7}]
    with pytest.warns(RuntimeWarning, match="edge"):  # 1e-7 is the smallest lr of the grid
        best, table = rollout.tune(opt.gd, grid, obj, x0, steps=60)
    assert table[0][1] == np.inf and np.isfinite(table[1][1])
    assert best == {"lr": 1e-7}
    tied = [{"lr": 0.0, "mass": 0.9}, {"lr": 0.0, "mass": 0.5}]  # x never moves: equal scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best2, table2 = rollout.tune(opt.momentum, tied, obj, x0, steps=3)
    assert table2[0][1] == table2[1][1] and best2 == tied[0]


def test_default_grids_follow_spec():
    lrs = [p["lr"] for p in rollout.default_grid("gd")]
    np.testing.assert_allclose(lrs, np.logspace(-3, 1, 13), rtol=1e-12)
    mom = rollout.default_grid("momentum")
    assert len(mom) == 78 and mom[0] == {"lr": 1e-3, "mass": 0.5} and mom[1]["mass"] == 0.7
    with pytest.raises(ValueError, match="name"):
        rollout.default_grid("sgd")
    with pytest.raises(ValueError, match="grid"):
        rollout.tune(opt.gd, [], lambda x: x.sum(1), np.ones((1, 1)))


@pytest.mark.slow
def test_tuned_fixed_step_lbfgs_reaches_the_scipy_minimizer_of_logistic_regression():
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 4)
    obj = functools.partial(fam.loss, problems=problems)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, _ = rollout.tune(opt.lbfgs, rollout.default_grid("lbfgs"), obj, x0, steps=100)
    trace = rollout.run(opt.lbfgs(**best), obj, x0, 400)
    for i in range(4):
        a, y = problems.a[i], problems.y[i]

        def f_and_g(x):  # plain-numpy logistic loss and gradient, written from docs/method.md (3)–(4)
            z = a @ x[:3] + x[3]
            r = 1 / (1 + np.exp(-z)) - y
            f = np.mean(np.logaddexp(0, z) - y * z) + 2.5e-4 * x[:3] @ x[:3]
            return f, np.append(a.T @ r / len(y) + 5e-4 * x[:3], r.mean())

        res = scipy.optimize.minimize(f_and_g, x0[i], jac=True, method="L-BFGS-B",
                                      options={"gtol": 1e-12, "ftol": 0, "maxiter": 10000})
        np.testing.assert_allclose(trace.xs[-1, i], res.x, atol=1e-5)


def test_tune_by_final_objective_scores_the_last_value():
    """Criterion (23b) on f = ½(x₁² + c x₂²), c = 0.01, from x0 = (1, 1): gd's coordinates shrink
    by (1 − γ) and (1 − cγ) per step, so f(x_k) = ½((1 − γ)^{2k} + c(1 − cγ)^{2k}). γ = 1.5
    starts higher but ends lower than γ = 1: (23b) picks it, the sum (23) does not."""
    c = 0.01
    obj = lambda x: 0.5 * (x[:, 0] ** 2 + c * x[:, 1] ** 2)  # noqa: E731
    x0 = np.ones((2, 2))
    grid = [{"lr": 1.0}, {"lr": 1.5}, {"lr": 1e300}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, table = rollout.tune(opt.gd, grid[:2], obj, x0, steps=8, criterion="final")
        best23, _ = rollout.tune(opt.gd, grid[:2], obj, x0, steps=8)
        _, diverged = rollout.tune(opt.gd, grid, obj, x0, steps=8, criterion="final")
    expected = [0.5 * ((1 - p["lr"]) ** 16 + c * (1 - c * p["lr"]) ** 16) for p in grid[:2]]
    np.testing.assert_allclose([s for _, s in table], expected, rtol=1e-10)
    assert best == {"lr": 1.5} and best23 == {"lr": 1.0}
    assert diverged[2][1] == np.inf                       # x overflows: non-finite scores +∞
    with pytest.raises(ValueError, match="criterion"):
        rollout.tune(opt.gd, grid, obj, x0, criterion="sum")
