"""GMM by EM, the NIW prior, MAP Gaussians and conditioning."""
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref.gps import gmm as G


def test_cluster_count_rule():
    assert G.n_clusters(741) == 10 and G.n_clusters(741, max_clusters=20) == 20
    assert G.n_clusters(10) == 2 and G.n_clusters(100) == 5


@given(seeds, st.integers(1, 4), st.integers(2, 4))
def test_responsibilities_are_bayes_rule_over_scipy_densities(seed, D, K):
    rng = rng_from(seed)
    A = rng.standard_normal((K, D, D))
    gmm = G.GMM(mu=rng.standard_normal((K, D)), sigma=A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D),
                logmass=np.log(rng.dirichlet(np.ones(K))))
    y = rng.standard_normal((6, D))
    dens = np.stack([np.exp(gmm.logmass[k]) * scipy.stats.multivariate_normal(
        gmm.mu[k], gmm.sigma[k]).pdf(y).reshape(-1) for k in range(K)], axis=1)
    resp, ll = G.responsibilities(y, gmm)
    np.testing.assert_allclose(resp, dens / dens.sum(1, keepdims=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ll, np.mean(np.log(dens.sum(1))), rtol=1e-10)


@settings(max_examples=20)
@given(seeds, st.integers(2, 5))
def test_em_never_ends_below_the_likelihood_of_its_own_start(seed, K):
    rng = rng_from(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    data = np.concatenate([c + 0.5 * rng.standard_normal((200, 3)) for c in centres])
    start = G._m_step(data, np.eye(K)[rng_from(seed + 1).integers(0, K, size=600)], 2e-6, K)
    gmm, _ = G.fit(rng_from(seed + 1), data, K, max_iterations=200)   # same initial assignment
    resp, ll = G.responsibilities(data, gmm)
    assert ll >= G.responsibilities(data, start)[1]
    np.testing.assert_allclose(resp.sum(1), 1.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(gmm.sigma) > 0)


def test_em_from_a_good_start_finds_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0]])
    data = np.concatenate([c + rng.standard_normal((300, 2)) for c in centres])
    init = G.GMM(mu=np.array([[1.0, 1.0], [7.0, -1.0]]), sigma=np.stack([np.eye(2)] * 2),
                 logmass=np.log([0.5, 0.5]))
    gmm, n_it = G.fit(rng, data, 2, init=init)
    np.testing.assert_allclose(gmm.mu, centres, atol=0.2)
    np.testing.assert_allclose(gmm.sigma, np.stack([np.eye(2)] * 2), atol=0.25)
    assert 1 < n_it <= 100
    with pytest.raises(ValueError, match="K"):
        G.fit(rng, data, 0)


@given(seeds, st.integers(1, 4), st.integers(3, 12))
def test_vanishing_prior_gives_the_sample_mean_and_covariance(seed, D, N):
    rng = rng_from(seed)
    pts = rng.standard_normal((N, D))
    mu, sigma = G.map_gaussian(pts, np.zeros(D), np.zeros((D, D)), 0.0, 0.0)
    np.testing.assert_allclose(mu, pts.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(pts.T, bias=True).reshape(D, D), rtol=1e-10,
                               atol=1e-13)


@given(seeds, st.integers(1, 4), st.integers(3, 12), st.permutations(range(3)))
def test_map_gaussian_is_invariant_to_sample_order(seed, D, N, perm):
    rng = rng_from(seed)
    pts = rng.standard_normal((N, D))
    idx = list(perm) + list(range(3, N))
    args = (rng.standard_normal(D), np.eye(D), 1.0, 0.5)
    a, b = G.map_gaussian(pts, *args), G.map_gaussian(pts[idx], *args)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="n0"):
        G.map_gaussian(pts, *args[:3], -N - 1.0)


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_condition_recovers_a_linear_gaussian_map(seed, n_in, n_out):
    rng = rng_from(seed)
    A, a = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    B = rng.standard_normal((n_in, n_in))
    S_in, W = B @ B.T + 0.3 * np.eye(n_in), 0.2 * np.eye(n_out)
    mu_in = rng.standard_normal(n_in)
    mu = np.concatenate([mu_in, A @ mu_in + a])          # exact joint Gaussian of [y_in; y_out]
    sigma = np.block([[S_in, S_in @ A.T], [A @ S_in, A @ S_in @ A.T + W]])
    A_hat, a_hat, W_hat = G.condition(mu, sigma, n_in, reg=0.0)
    np.testing.assert_allclose(A_hat, A, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a_hat, a, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(W_hat, W, rtol=1e-8, atol=1e-10)


def test_prior_of_a_one_component_mixture_is_that_component():
    rng = np.random.default_rng(1)
    gmm = G.GMM(mu=np.array([[1.0, 2.0]]), sigma=np.array([[[2.0, 0.3], [0.3, 1.0]]]),
                logmass=np.zeros(1))
    mu0, Phi, m, n0 = G.prior(gmm, rng.standard_normal((5, 2)), n_pts=100, strength=2.0)
    np.testing.assert_allclose(mu0, [1.0, 2.0])
    np.testing.assert_allclose(Phi, 2.0 * gmm.sigma[0])
    assert m == 2.0 and n0 == pytest.approx(2.0 * (100 - 2 - 2) / 100)


def test_map_gaussian_hand_example():
    # D = 1, points {1, 3}: μ̂ = 2, Ŝ = 1; prior μ₀ = 0, Φ = 2, m = 1, n₀ = 1:
    # Σ = (N Ŝ + Φ + N m/(N+m) (μ̂ − μ₀)²) / (N + n₀) = (2 + 2 + (2/3)·4) / 3 = 20/9
    mu, sigma = G.map_gaussian(np.array([[1.0], [3.0]]), np.zeros(1), np.array([[2.0]]), 1.0, 1.0)
    np.testing.assert_allclose(mu, [2.0])
    np.testing.assert_allclose(sigma, [[20 / 9]], rtol=1e-14)


def test_prior_includes_the_spread_of_the_component_means():
    # components N(−5, 1), N(5, 1) equally weighted; points at ±5 give w = (½, ½):
    # μ₀ = 0, Φ̃ = ½(1 + 25) + ½(1 + 25) = 26
    gmm = G.GMM(mu=np.array([[-5.0], [5.0]]), sigma=np.ones((2, 1, 1)), logmass=np.log([0.5, 0.5]))
    mu0, Phi, m, _ = G.prior(gmm, np.array([[-5.0], [5.0]]), n_pts=50)
    np.testing.assert_allclose(mu0, [0.0], atol=1e-12)
    np.testing.assert_allclose(Phi, [[26.0]], rtol=1e-10)
