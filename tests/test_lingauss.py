"""Linear-Gaussian controllers: quadratic form, actions, KL divergences."""
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from conftest import random_controller, random_spd, rng_from, seeds
from lto_ref.gps import lingauss as LG


@given(seeds, st.integers(1, 4), st.integers(1, 3))
def test_quadratic_form_is_negative_gaussian_log_density(seed, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, 1, 1, dX, dU)
    K, k, G = lg.K[0, 0], lg.k[0, 0], lg.pol_covar[0, 0]
    Mq, v, c = LG.quadratic_form(K, k, lg.inv[0, 0])
    x, u = rng.standard_normal(dX), rng.standard_normal(dU)
    z = np.concatenate([x, u])
    nll = -scipy.stats.multivariate_normal(K @ x + k, G).logpdf(u)
    ours = 0.5 * z @ Mq @ z + z @ v + c + 0.5 * np.linalg.slogdet(2 * np.pi * G)[1]
    np.testing.assert_allclose(ours, nll, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(Mq, Mq.T)


@given(seeds, st.integers(1, 4), st.integers(1, 3))
def test_expected_nll_is_the_expected_quadratic_form_and_matches_monte_carlo(seed, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, 1, 1, dX, dU)
    mu, sigma = rng.standard_normal(dX + dU), random_spd(rng, dX + dU)   # any Gaussian over z
    Mq, v, c = LG.quadratic_form(lg.K[0, 0], lg.k[0, 0], lg.inv[0, 0])
    expected = (0.5 * mu @ Mq @ mu + 0.5 * np.trace(sigma @ Mq) + mu @ v + c
                + 0.5 * LG.logdet(lg)[0, 0])
    ours = LG.expected_nll(mu[None, None], sigma[None, None], lg)[0, 0]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)
    z = np.random.default_rng(seed).multivariate_normal(mu, sigma, size=40000)
    x, u = z[:, :dX], z[:, dX:]
    nll = -scipy.stats.multivariate_normal(np.zeros(dU), lg.pol_covar[0, 0]).logpdf(
        u - x @ lg.K[0, 0].T - lg.k[0, 0]) - 0.5 * dU * np.log(2 * np.pi)
    assert abs(nll.mean() - ours) < 5 * nll.std() / np.sqrt(len(nll))


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))
def test_make_computes_cholesky_inverse_and_logdet(seed, M, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, M, 2, dX, dU)
    np.testing.assert_allclose(lg.chol @ np.swapaxes(lg.chol, -1, -2), lg.pol_covar, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(lg.inv @ lg.pol_covar, np.broadcast_to(np.eye(dU), lg.inv.shape),
                               atol=1e-9)
    np.testing.assert_allclose(LG.logdet(lg), np.linalg.slogdet(lg.pol_covar)[1], rtol=1e-10,
                               atol=1e-12)


def test_make_refuses_bad_shapes_and_indefinite_covariances():
    with pytest.raises(ValueError, match="K"):
        LG.make(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 2)), np.ones((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="positive definite"):
        LG.make(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2)), -np.ones((1, 1, 2, 2)))


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))
def test_act_is_K_x_plus_k_plus_chol_noise(seed, M, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, M, 3, dX, dU)
    x, xi = rng.standard_normal((M, 5, dX)), rng.standard_normal((M, 5, dU))
    u = LG.act(lg, 1, x, xi)
    for m in range(M):
        for n in range(5):
            ref = lg.K[m, 1] @ x[m, n] + lg.k[m, 1] + lg.chol[m, 1] @ xi[m, n]
            np.testing.assert_allclose(u[m, n], ref, rtol=1e-12, atol=1e-13)


def test_action_covariance_approaches_pol_covar():
    rng = np.random.default_rng(5)
    lg = random_controller(rng, 1, 1, 3, 2)
    N = 40000
    u = LG.act(lg, 0, np.zeros((1, N, 3)), rng.standard_normal((1, N, 2)))[0]
    # each covariance entry has standard error ≈ sqrt((G_ii G_jj + G_ij²)/N); allow 5 of them
    G = lg.pol_covar[0, 0]
    se = np.sqrt((np.outer(np.diag(G), np.diag(G)) + G ** 2) / N)
    assert np.all(np.abs(np.cov(u.T) - G) < 5 * se)


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4))
def test_traj_kl_of_a_controller_with_itself_is_zero(seed, M, dX, dU, T):
    rng = rng_from(seed)
    lg = random_controller(rng, M, T, dX, dU)
    mu = rng.standard_normal((M, T, dX + dU))
    sigma = random_spd(rng, M, T, dX + dU)
    np.testing.assert_allclose(LG.traj_kl(mu, sigma, lg, lg), 0.0, atol=1e-9)


def _gauss_kl(m0, S0, m1, S1):
    """Closed-form KL(N(m0, S0) ‖ N(m1, S1))."""
    k = len(m0)
    S1inv = np.linalg.inv(S1)
    d = m1 - m0
    return 0.5 * (np.trace(S1inv @ S0) + d @ S1inv @ d - k
                  + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


@settings(max_examples=60)
@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_traj_kl_for_one_step_and_a_fixed_state_is_the_gaussian_kl(seed, dX, dU):
    """T = 1 with a point-mass state: E_x[KL(p_new(u|x) ‖ p_prev(u|x))] is the closed form."""
    rng = rng_from(seed)
    new, prev = random_controller(rng, 1, 1, dX, dU), random_controller(rng, 1, 1, dX, dU)
    x = rng.standard_normal(dX)
    u_mean = new.K[0, 0] @ x + new.k[0, 0]
    mu = np.concatenate([x, u_mean])[None, None]
    sigma = np.zeros((1, 1, dX + dU, dX + dU))
    sigma[0, 0, dX:, dX:] = new.pol_covar[0, 0]
    expected = _gauss_kl(u_mean, new.pol_covar[0, 0], prev.K[0, 0] @ x + prev.k[0, 0],
                         prev.pol_covar[0, 0])
    np.testing.assert_allclose(LG.traj_kl(mu, sigma, new, prev), [expected], rtol=1e-8, atol=1e-10)
    assert LG.traj_kl(mu, sigma, new, prev)[0] >= 0


@settings(max_examples=60)
@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_policy_kl_matches_monte_carlo_over_states(seed, dX, dU):
    """Laplace KL_t(p ‖ π̄) = E_{x~N(μx, Σx)} KL(N(Kx+k, G) ‖ N(K̄x+k̄, S̄)), checked by sampling."""
    rng = rng_from(seed)
    p, pb = random_controller(rng, 1, 1, dX, dU), random_controller(rng, 1, 1, dX, dU)
    mu_x, sig_x = rng.standard_normal((1, 1, dX)), random_spd(rng, 1, 1, dX, scale=0.3)
    ours = LG.policy_kl(mu_x, sig_x, p, pb.K, pb.k, pb.pol_covar)[0, 0]
    xs = rng.multivariate_normal(mu_x[0, 0], sig_x[0, 0], size=400)
    mc = [_gauss_kl(p.K[0, 0] @ x + p.k[0, 0], p.pol_covar[0, 0], pb.K[0, 0] @ x + pb.k[0, 0],
                    pb.pol_covar[0, 0]) for x in xs]
    assert abs(ours - np.mean(mc)) < 5 * np.std(mc) / np.sqrt(len(mc)) + 1e-9


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_sample_kl_is_the_mean_closed_form_kl(seed, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, 2, 2, dX, dU)
    X, mu_pol = rng.standard_normal((2, 3, 2, dX)), rng.standard_normal((2, 3, 2, dU))
    var = rng.uniform(0.1, 2, dU)
    ours = LG.sample_kl(X, mu_pol, lg, var)
    for m in range(2):
        for t in range(2):
            ref = np.mean([_gauss_kl(lg.K[m, t] @ X[m, n, t] + lg.k[m, t], lg.pol_covar[m, t],
                                     mu_pol[m, n, t], np.diag(var)) for n in range(3)])
            np.testing.assert_allclose(ours[m, t], ref, rtol=1e-9, atol=1e-10)
    per_condition = rng.uniform(0.1, 2, (2, dU))             # one variance per condition
    both = LG.sample_kl(X, mu_pol, lg, per_condition)
    for m in range(2):
        alone = LG.sample_kl(X[m:m + 1], mu_pol[m:m + 1], LG.LinGauss(*(a[m:m + 1] for a in lg)),
                             per_condition[m])
        np.testing.assert_allclose(both[m], alone[0], rtol=1e-12)


def test_cholesky_adds_jitter_with_a_warning_only_when_needed():
    rng = np.random.default_rng(0)
    spd = random_spd(rng, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no warning on the clean path
        np.testing.assert_array_equal(LG.cholesky(spd), np.linalg.cholesky(spd))
    singular = np.ones((2, 3, 3))                           # rank 1: not positive definite
    with pytest.warns(RuntimeWarning, match="jitter"):
        L = LG.cholesky(singular)
    np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), singular, atol=1e-6)
    with pytest.raises(np.linalg.LinAlgError):
        LG.cholesky(-np.eye(2), tries=2)


def test_make_stores_c_order_so_pickled_copies_compute_bitwise_alike():
    # an executor's pickling returns C-contiguous arrays; gains kept in another layout made the
    # C-step's products sum in another order in the worker than in the parent (map_fn)
    rng = np.random.default_rng(0)
    M, T, dU, dX = 3, 5, 4, 53
    K = np.asfortranarray(rng.standard_normal((M, T, dU, dX)))
    A = rng.standard_normal((M, T, dU, dU))
    lg = LG.make(K, rng.standard_normal((M, T, dU)), A @ np.swapaxes(A, -1, -2) + np.eye(dU))
    assert all(field.flags.c_contiguous for field in lg)
    np.testing.assert_array_equal(lg.K, K)
