"""LQR C-step: forward marginals, whole-horizon QP oracle, trust-region limits, η search."""
import warnings

import numpy as np
import scipy.linalg
from hypothesis import given, settings, strategies as st

from conftest import random_controller, random_cost, random_dynamics, rng_from, seeds
from lto_ref.gps import eta_search, lingauss as LG, lqr

sizes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 5))


@given(seeds, sizes)
def test_forward_covariances_symmetric_psd(seed, size):
    M, dX, dU, T = size
    rng = rng_from(seed)
    mu, sigma = lqr.forward(random_dynamics(rng, M, T, dX, dU), random_controller(rng, M, T, dX, dU))
    assert mu.shape == (M, T, dX + dU) and sigma.shape == (M, T, dX + dU, dX + dU)
    np.testing.assert_array_equal(sigma, np.swapaxes(sigma, -1, -2))
    assert np.all(np.linalg.eigvalsh(sigma) > -1e-10)


@given(seeds, sizes)
def test_forward_means_follow_the_dynamics_with_zero_gain(seed, size):
    M, dX, dU, T = size
    rng = rng_from(seed)
    dyn = random_dynamics(rng, M, T, dX, dU)
    lg = random_controller(rng, M, T, dX, dU)
    lg = LG.make(np.zeros_like(lg.K), lg.k, lg.pol_covar)
    mu, sigma = lqr.forward(dyn, lg)
    x, S = dyn.x0mu, dyn.x0sigma
    for t in range(T):
        np.testing.assert_allclose(mu[:, t], np.concatenate([x, lg.k[:, t]], -1), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(sigma[:, t, :dX, :dX], S, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sigma[:, t, dX:, dX:], lg.pol_covar[:, t], rtol=1e-10)
        if t < T - 1:
            F = dyn.Fm[:, t]
            x = np.einsum("mij,mj->mi", F, mu[:, t]) + dyn.fv[:, t]
            S = F @ sigma[:, t] @ np.swapaxes(F, -1, -2) + dyn.dyn_covar[:, t]


def _qp_actions(dyn, cost, m):
    """Oracle: minimise Σ_t ½ z_tᵀ C z_t + z_tᵀ c over u_0..u_{T−1}, x_{t+1} = F z_t + f, x_0 given,
    as one linear system (KKT) solved by scipy.linalg.solve."""
    T, dXU = cost.cv.shape[1:]
    dX = dyn.x0mu.shape[-1]
    n = T * dXU                                    # stacked z_0 … z_{T−1}
    H = scipy.linalg.block_diag(*cost.Cm[m])
    g = cost.cv[m].ravel()
    rows, rhs = [], []
    E0 = np.zeros((dX, n))
    E0[:, :dX] = np.eye(dX)
    rows.append(E0), rhs.append(dyn.x0mu[m])
    for t in range(T - 1):                         # x_{t+1} − F z_t = f
        A = np.zeros((dX, n))
        A[:, (t + 1) * dXU:(t + 1) * dXU + dX] = np.eye(dX)
        A[:, t * dXU:(t + 1) * dXU] = -dyn.Fm[m, t]
        rows.append(A), rhs.append(dyn.fv[m, t])
    A = np.vstack(rows)
    kkt = np.block([[H, A.T], [A, np.zeros((A.shape[0], A.shape[0]))]])
    sol = scipy.linalg.solve(kkt, np.concatenate([-g, np.concatenate(rhs)]))
    return sol[:n].reshape(T, dXU)[:, dX:]


@settings(max_examples=50)
@given(seeds, sizes)
def test_lqr_mean_actions_solve_the_whole_horizon_qp(seed, size):
    M, dX, dU, T = size
    rng = rng_from(seed)
    dyn = random_dynamics(rng, M, T, dX, dU)
    cost = random_cost(rng, M, T, dX, dU)
    lg, ok = lqr.backward(dyn, cost.Cm, cost.cv)
    assert ok.all()
    mu, _ = lqr.forward(dyn, lg)
    for m in range(M):
        np.testing.assert_allclose(mu[m, :, dX:], _qp_actions(dyn, cost, m), rtol=1e-7, atol=1e-8)
    # the max-entropy covariance is Q_uu⁻¹; at the last step Q_uu is the cost's own C_uu
    np.testing.assert_allclose(lg.inv[:, -1], cost.Cm[:, -1, dX:, dX:], rtol=1e-10, atol=1e-12)


@given(seeds, sizes)
def test_huge_eta_returns_the_previous_controller(seed, size):
    M, dX, dU, T = size
    rng = rng_from(seed)
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    prev = random_controller(rng, M, T, dX, dU)
    lg, ok = lqr.backward(dyn, *lqr.badmm_cost(cost, np.full(M, 1e9), prev))
    assert ok.all()
    np.testing.assert_allclose(lg.K, prev.K, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lg.k, prev.k, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lg.pol_covar, prev.pol_covar, rtol=1e-5, atol=1e-7)


def _kl_fn(dyn_prev):
    return lambda lg, mu, sigma, idx: LG.traj_kl(mu, sigma, lg, lqr.take(dyn_prev, idx))


@settings(max_examples=40)
@given(seeds, sizes)
def test_kl_to_the_previous_controller_is_nonincreasing_in_eta(seed, size):
    M, dX, dU, T = size
    rng = rng_from(seed)
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    prev = random_controller(rng, M, T, dX, dU)
    kls = []
    for eta in np.logspace(-2, 4, 9):
        lg, ok = lqr.backward(dyn, *lqr.badmm_cost(cost, np.full(M, eta), prev))
        assert ok.all() and np.all(np.linalg.eigvalsh(lg.inv) > 0)   # Q_uu PD at every t
        mu, sigma = lqr.forward(dyn, lg)
        kls.append(LG.traj_kl(mu, sigma, lg, prev))
    kls = np.array(kls)
    assert np.all(kls >= 0)
    assert np.all(np.diff(kls, axis=0) <= 1e-8 * (1 + kls[:-1]))


@settings(max_examples=30)
@given(seeds, sizes, st.floats(0.05, 2.0), st.sampled_from(eta_search.METHODS))
def test_eta_search_meets_the_kl_bound(seed, size, eps, method):
    M, dX, dU, T = size
    rng = rng_from(seed)
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    prev = random_controller(rng, M, T, dX, dU)
    cost_fn = lambda e, idx: lqr.badmm_cost(lqr.take(cost, idx), e, lqr.take(prev, idx))  # noqa
    # KL at the bracket ends: the bound is reachable only if KL(η_min) > ε
    lg_lo, _ = lqr.backward(dyn, *cost_fn(np.full(M, 1e-4), np.arange(M)))
    kl_lo = LG.traj_kl(*lqr.forward(dyn, lg_lo), lg_lo, prev)
    eps_arr = np.full(M, eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # unreachable bounds warn
        lg, eta, kl, conv = eta_search.solve_eta(dyn, cost_fn, _kl_fn(prev), eps_arr, np.ones(M),
                                                 method=method)
    reachable = kl_lo > 1.1 * eps
    assert np.all(conv[reachable])
    assert np.all(np.abs(kl[reachable] - eps) < 0.1 * eps)
    mu, sigma = lqr.forward(dyn, lg)                   # the returned controller has that KL
    np.testing.assert_allclose(LG.traj_kl(mu, sigma, lg, prev), kl, rtol=1e-8, atol=1e-10)


def test_non_pd_q_uu_raises_eta_until_positive_definite():
    rng = np.random.default_rng(0)
    M, dX, dU, T = 2, 2, 1, 3
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    Cm = cost.Cm.copy()
    Cm[0, :, dX:, dX:] = -5.0                          # condition 0: concave in u
    cost = cost._replace(Cm=Cm)
    prev = random_controller(rng, M, T, dX, dU)
    cost_fn = lambda e, idx: lqr.badmm_cost(lqr.take(cost, idx), e, lqr.take(prev, idx))  # noqa
    _, ok = lqr.backward(dyn, *cost_fn(np.full(M, 1e-3), np.arange(M)))
    assert not ok[0] and ok[1]
    lg, eta = eta_search._backward_pd(dyn, cost_fn, np.full(M, 1e-3))
    assert eta[1] == 1e-3 and eta[0] > 1e-3
    assert np.all(np.linalg.eigvalsh(lg.inv) > 0)


def test_eta_search_stops_quietly_when_the_bound_is_out_of_reach():
    rng = np.random.default_rng(3)
    M, dX, dU, T = 2, 2, 1, 3
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    prev = random_controller(rng, M, T, dX, dU)
    cost_fn = lambda e, idx: lqr.badmm_cost(lqr.take(cost, idx), e, lqr.take(prev, idx))  # noqa
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # no "did not converge" warning
        lg, eta, kl, conv = eta_search.solve_eta(dyn, cost_fn, _kl_fn(prev), np.full(M, 1e6), np.ones(M))
    assert conv.all() and np.allclose(eta, 1e-4) and np.all(kl < 1e6)


def test_overflowing_backward_pass_counts_as_not_pd_instead_of_raising():
    rng = np.random.default_rng(1)
    M, dX, dU, T = 2, 2, 1, 4
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    dyn = dyn._replace(Fm=np.where(np.arange(M)[:, None, None, None] == 0, 1e200 * dyn.Fm, dyn.Fm))
    prev = random_controller(rng, M, T, dX, dU)
    with np.errstate(all="ignore"):
        lg, ok = lqr.backward(dyn, *lqr.badmm_cost(cost, np.ones(M), prev))
    assert ok.tolist() == [False, True]
    assert np.all(np.isfinite(lg.K[1])) and np.all(np.linalg.eigvalsh(lg.inv) > 0)


@given(st.sampled_from(eta_search.METHODS))
def test_eta_search_stops_when_the_smallest_feasible_eta_already_meets_the_bound(method):
    rng = np.random.default_rng(0)
    M, dX, dU, T = 2, 2, 1, 3
    dyn, cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
    Cm = cost.Cm.copy()
    Cm[:, :, dX:, dX:] = -5.0                          # concave in u: small η is not PD
    cost = cost._replace(Cm=Cm)
    prev = random_controller(rng, M, T, dX, dU)
    cost_fn = lambda e, idx: lqr.badmm_cost(lqr.take(cost, idx), e, lqr.take(prev, idx))  # noqa
    calls = []
    kl_fn = lambda lg, mu, sigma, idx: calls.append(len(idx)) or _kl_fn(prev)(lg, mu, sigma, idx)  # noqa
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no "did not converge" warning
        lg, eta, kl, conv = eta_search.solve_eta(dyn, cost_fn, kl_fn, np.full(M, 1e6),
                                                 np.full(M, 1e-3), method=method)
    assert conv.all() and np.all(eta > 1e-3) and np.all(kl < 1e6) and len(calls) == 1
    assert np.all(np.linalg.eigvalsh(lg.inv) > 0)
