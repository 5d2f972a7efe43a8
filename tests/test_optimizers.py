"""Baseline optimizers: one step against the textbook formula, degenerate equivalences,
golden traces derived by hand, and convergence facts on quadratics."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import autodiff, objectives, optimizers as opt, rollout

dims = st.tuples(st.integers(1, 5), st.integers(1, 6))  # (n, d)
lrs = st.floats(1e-3, 10.0)


def _arrays(rng, n, d, scale=1.0):
    return scale * rng.standard_normal((n, d))


# ---------------------------------------------------------------- one step from injected state

@given(seeds, dims, lrs)
def test_gd_step_is_minus_lr_g(seed, nd, lr):
    rng = rng_from(seed)
    x, g = _arrays(rng, *nd), _arrays(rng, *nd)
    o = opt.gd(lr)
    dx, _ = o.step(o.init(x), x, np.zeros(nd[0]), g)
    np.testing.assert_allclose(dx, -lr * g, rtol=1e-12, atol=0)


@given(seeds, dims, lrs, st.floats(0.0, 0.999))
def test_momentum_step_matches_heavy_ball(seed, nd, lr, mass):
    rng = rng_from(seed)
    x, g, v = _arrays(rng, *nd), _arrays(rng, *nd), _arrays(rng, *nd)
    dx, state = opt.momentum(lr, mass).step(opt.MomentumState(v=v), x, np.zeros(nd[0]), g)
    np.testing.assert_allclose(state.v, mass * v + g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, -lr * (mass * v + g), rtol=1e-12, atol=1e-15)


@given(seeds, dims, lrs, st.booleans())
def test_cg_step_matches_fletcher_reeves(seed, nd, lr, first):
    rng = rng_from(seed)
    n, d = nd
    x, g, d_prev, g_prev = (_arrays(rng, n, d) for _ in range(4))
    gsq_prev = np.zeros(n) if first else np.sum(g_prev ** 2, axis=1)
    dx, state = opt.conjugate_gradient(lr).step(opt.CGState(d=d_prev, gsq=gsq_prev), x, None, g)
    for i in range(n):  # per problem, as written in docs/method.md (17)
        beta = 0.0 if first else (g[i] @ g[i]) / (g_prev[i] @ g_prev[i])
        direction = -g[i] + beta * d_prev[i]
        np.testing.assert_allclose(dx[i], lr * direction, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state.d[i], direction, rtol=1e-12, atol=1e-14)


def _bfgs_inverse_hessian(S, Y, offset):
    """Oracle: H = product of BFGS inverse updates H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ,
    H0 = (sᵀy / yᵀy) I of the newest pair — the matrix the two-loop recursion applies."""
    d = S.shape[1]
    H = (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1]) * np.eye(d)
    for s, y in zip(S, Y):  # oldest -> newest
        rho = 1.0 / (y @ s + offset)
        V = np.eye(d) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@settings(max_examples=60)
@given(seeds, dims, st.integers(1, 4), st.integers(1, 7), st.floats(1e-2, 1.0))
def test_lbfgs_step_matches_bfgs_matrix_recursion(seed, nd, memory, t, lr):
    rng = rng_from(seed)
    n, d = nd
    S_all, Y_all = _arrays(rng, n, memory * d).reshape(n, memory, d), None
    # Y = A S with A SPD keeps yᵀs > 0, so the oracle's H stays well conditioned.
    A = np.eye(d) + 0.3 * np.diag(rng.uniform(size=d))
    Y_all = S_all @ A
    x_prev, g_prev = _arrays(rng, n, d), _arrays(rng, n, d)
    x, g = _arrays(rng, n, d), _arrays(rng, n, d)
    state = opt.LBFGSState(S=S_all, Y=Y_all, x_prev=x_prev, g_prev=g_prev, t=np.array(t))
    dx, new = opt.lbfgs(lr, memory).step(state, x, None, g)
    S_new = np.concatenate([S_all[:, 1:], (x - x_prev)[:, None]], axis=1)
    Y_new = np.concatenate([Y_all[:, 1:], (g - g_prev)[:, None]], axis=1)
    np.testing.assert_array_equal(new.S, S_new)
    np.testing.assert_array_equal(new.Y, Y_new)
    k = min(t, memory)
    for i in range(n):
        H = _bfgs_inverse_hessian(S_new[i, memory - k:], Y_new[i, memory - k:], 1e-8)
        np.testing.assert_allclose(dx[i], -lr * H @ g[i], rtol=1e-8, atol=1e-10)
        # rtol 1e-8: the oracle forms H explicitly, the recursion never does (rounding differs)


@given(seeds, dims, lrs, st.integers(0, 50))
def test_adam_step_matches_kingma_ba(seed, nd, lr, t):
    rng = rng_from(seed)
    x, g, m = _arrays(rng, *nd), _arrays(rng, *nd), _arrays(rng, *nd)
    v = _arrays(rng, *nd) ** 2
    dx, state = opt.adam(lr).step(opt.AdamState(m=m, v=v, t=np.array(t)), x, None, g)
    m1, v1 = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    mhat, vhat = m1 / (1 - 0.9 ** (t + 1)), v1 / (1 - 0.999 ** (t + 1))
    np.testing.assert_allclose(dx, -lr * mhat / (np.sqrt(vhat) + 1e-8), rtol=1e-12)
    assert int(state.t) == t + 1


@given(seeds, dims, lrs)
def test_adagrad_step_matches_formula(seed, nd, lr):
    rng = rng_from(seed)
    x, g, G = _arrays(rng, *nd), _arrays(rng, *nd), _arrays(rng, *nd) ** 2
    dx, state = opt.adagrad(lr).step(opt.AccumState(s=G), x, None, g)
    np.testing.assert_allclose(state.s, G + g * g, rtol=1e-12)
    np.testing.assert_allclose(dx, -lr * g / (np.sqrt(G + g * g) + 1e-10), rtol=1e-12)


@given(seeds, dims, lrs, st.floats(0.0, 0.999))
def test_rmsprop_step_matches_formula(seed, nd, lr, decay):
    rng = rng_from(seed)
    x, g, s = _arrays(rng, *nd), _arrays(rng, *nd), _arrays(rng, *nd) ** 2
    dx, state = opt.rmsprop(lr, decay).step(opt.AccumState(s=s), x, None, g)
    s1 = decay * s + (1 - decay) * g * g
    np.testing.assert_allclose(state.s, s1, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dx, -lr * g / (np.sqrt(s1) + 1e-8), rtol=1e-12)


# ---------------------------------------------------------------- state structure

ALL = [("gd", {"lr": 0.1}), ("momentum", {"lr": 0.1, "mass": 0.9}),
       ("conjugate_gradient", {"lr": 0.1}), ("lbfgs", {"lr": 0.1, "memory": 3}),
       ("adam", {"lr": 0.1}), ("adagrad", {"lr": 0.1}), ("rmsprop", {"lr": 0.1})]


@pytest.mark.parametrize("name,hp", ALL)
def test_step_preserves_state_structure(name, hp):
    rng = np.random.default_rng(0)
    o = opt.by_name(name, **hp)
    x = rng.standard_normal((3, 4))
    state = o.init(x)
    for _ in range(5):
        dx, new = o.step(state, x, np.ones(3), rng.standard_normal((3, 4)))
        assert type(new) is type(state) and dx.shape == x.shape and dx.dtype == np.float64
        for a, b in zip(state, new):
            assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        state, x = new, x + dx


# ---------------------------------------------------------------- degenerate equivalences

def _quad_batch(seed, n=3, d=4):
    fam = objectives.quadratic(d)
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0, functools.partial(fam.loss, problems=problems)


@given(st.integers(0, 1000), st.floats(1e-3, 1.0))
def test_momentum_with_zero_mass_is_gd(seed, lr):
    _, _, x0, obj = _quad_batch(seed)
    a = rollout.run(opt.momentum(lr, mass=0.0), obj, x0, 10)
    b = rollout.run(opt.gd(lr), obj, x0, 10)
    np.testing.assert_array_equal(a.xs, b.xs)


@pytest.mark.parametrize("name,hp", ALL)
def test_zero_lr_leaves_x_unchanged(name, hp):
    _, _, x0, obj = _quad_batch(1)
    trace = rollout.run(opt.by_name(name, **{**hp, "lr": 0.0}), obj, x0, 5)
    np.testing.assert_array_equal(trace.xs, np.broadcast_to(x0, trace.xs.shape))


@given(st.integers(0, 1000), st.floats(1e-3, 1.0))
def test_lbfgs_first_step_is_gd(seed, lr):
    _, _, x0, obj = _quad_batch(seed)
    a = rollout.run(opt.lbfgs(lr), obj, x0, 1)
    b = rollout.run(opt.gd(lr), obj, x0, 1)
    np.testing.assert_array_equal(a.xs, b.xs)


# ---------------------------------------------------------------- golden traces (1-D f = x²)

def _golden(o, steps):
    """f(x) = x² (A = 2, x* = 0), x0 = 1: the first iterates of optimizer o."""
    problems = objectives.Quadratic(A=np.array([[[2.0]]]), x_star=np.zeros((1, 1)), f_off=np.zeros(1))
    obj = functools.partial(objectives.quadratic(1).loss, problems=problems)
    return rollout.run(o, obj, np.ones((1, 1)), steps).xs[:, 0, 0]


def test_golden_gd():
    # x_{t+1} = x_t − 0.1·2x_t = 0.8 x_t
    np.testing.assert_allclose(_golden(opt.gd(0.1), 3), [1, 0.8, 0.64, 0.512], atol=1e-12)


def test_golden_momentum():
    # v0 = 2 → x1 = 0.8; g1 = 1.6, v1 = 0.5·2 + 1.6 = 2.6 → x2 = 0.54;
    # g2 = 1.08, v2 = 1.3 + 1.08 = 2.38 → x3 = 0.302
    np.testing.assert_allclose(_golden(opt.momentum(0.1, 0.5), 3), [1, 0.8, 0.54, 0.302], atol=1e-12)


def test_golden_conjugate_gradient():
    # d0 = −2 → x1 = 0.8; β1 = 1.6²/2² = 0.64, d1 = −1.6 − 1.28 = −2.88 → x2 = 0.512;
    # β2 = 1.024²/1.6² = 0.4096, d2 = −1.024 − 1.179648 = −2.203648 → x3 = 0.2916352
    np.testing.assert_allclose(_golden(opt.conjugate_gradient(0.1), 3),
                               [1, 0.8, 0.512, 0.2916352], atol=1e-12)


def test_golden_lbfgs():
    # x1 = 0.8. One pair s = −0.2, y = 1.6 − 2 = −0.4, ρ = 1/(sy + 1e-8) = 1/(0.08 + 1e-8);
    # α = ρ s g1 = −0.32ρ, q = g1 − α y = 1.6 − 0.128ρ; h = sy/yy = 0.5, r = 0.5q;
    # β = ρ y r = −0.2ρq, r ← r + (α − β) s.  (With offset 0 this is Newton: r = x1.)
    rho = 1 / (0.08 + 1e-8)
    q = 1.6 - 0.128 * rho
    r = 0.5 * q + (-0.32 * rho + 0.2 * rho * q) * -0.2
    np.testing.assert_allclose(_golden(opt.lbfgs(0.1), 2), [1, 0.8, 0.8 - 0.1 * r], atol=1e-12)
    np.testing.assert_allclose(_golden(opt.lbfgs(1.0, offset=0.0), 2), [1, -1, 0], atol=1e-12)


def test_golden_adam():
    # k = 1: m̂ = g0 = 2, v̂ = 4 → x1 = 1 − 0.1·2/(2 + 1e-8).
    # k = 2: m = 0.9·0.2 + 0.1 g1, v = 0.999·0.004 + 0.001 g1², bias-corrected by 0.19, 0.001999.
    x1 = 1 - 0.2 / (2 + 1e-8)
    g1 = 2 * x1
    m, v = 0.18 + 0.1 * g1, 0.003996 + 0.001 * g1 ** 2
    x2 = x1 - 0.1 * (m / 0.19) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(_golden(opt.adam(0.1), 2), [1, x1, x2], atol=1e-12)


def test_golden_adagrad_and_rmsprop():
    x1 = 1 - 0.2 / (2 + 1e-10)                       # G = 4
    x2 = x1 - 0.1 * 2 * x1 / (np.sqrt(4 + 4 * x1 ** 2) + 1e-10)
    np.testing.assert_allclose(_golden(opt.adagrad(0.1), 2), [1, x1, x2], atol=1e-12)
    y1 = 1 - 0.01 * 2 / (np.sqrt(0.04) + 1e-8)        # s = 0.01·4
    s2 = 0.99 * 0.04 + 0.01 * 4 * y1 ** 2
    y2 = y1 - 0.01 * 2 * y1 / (np.sqrt(s2) + 1e-8)
    np.testing.assert_allclose(_golden(opt.rmsprop(0.01), 2), [1, y1, y2], atol=1e-12)


# ---------------------------------------------------------------- convergence facts

@given(st.integers(0, 1000), st.floats(0.05, 1.0))
def test_gd_with_lr_below_one_over_L_never_increases_quadratic(seed, frac):
    _, _, x0, obj = _quad_batch(seed)          # λ_max = 1 = L
    fs = rollout.run(opt.gd(frac * 1.0), obj, x0, 30).fs
    assert np.all(np.diff(fs, axis=0) <= 1e-15)


@given(st.integers(0, 1000), st.integers(1, 6))
def test_cg_with_exact_line_search_reaches_minimizer_in_d_steps(seed, d):
    """FR directions of ``conjugate_gradient`` (lr = 1 returns d_t) with the exact step
    α_t = −g_tᵀd_t / d_tᵀ A d_t minimise an SPD quadratic in at most d steps."""
    fam, problems, x, obj = _quad_batch(seed, n=2, d=d)
    o = opt.conjugate_gradient(1.0)
    state = o.init(x)
    for _ in range(d):
        f, g = autodiff.value_and_grad(obj, x)
        direction, state = o.step(state, x, f, g)
        Ad = np.einsum("nij,nj->ni", problems.A, direction)
        alpha = -np.sum(g * direction, 1) / np.maximum(np.sum(direction * Ad, 1), 1e-300)
        x = x + alpha[:, None] * direction
    np.testing.assert_allclose(x, problems.x_star, atol=1e-8)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("factory,kwargs,arg", [
    (opt.gd, {"lr": -0.1}, "lr"), (opt.gd, {"lr": float("nan")}, "lr"),
    (opt.momentum, {"lr": 0.1, "mass": 1.0}, "mass"), (opt.momentum, {"lr": -1}, "lr"),
    (opt.conjugate_gradient, {"lr": -1e-3}, "lr"), (opt.lbfgs, {"lr": 0.1, "memory": 0}, "memory"),
    (opt.lbfgs, {"lr": -0.1}, "lr"), (opt.adam, {"lr": 0.1, "b1": 1.0}, "b1"),
    (opt.adam, {"lr": 0.1, "eps": 0.0}, "eps"), (opt.adagrad, {"lr": -2}, "lr"),
    (opt.rmsprop, {"lr": 0.1, "decay": -0.1}, "decay"),
])
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


def test_by_name_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="name"):
        opt.by_name("newton", lr=1.0)
