"""Gaussian mixture model by EM, and the Normal-inverse-Wishart prior it supplies (docs/method.md (50)–(58)).

GPS fits local linear models from only N = 20 samples per time step in hundreds of dimensions; a
GMM fitted to the samples of *all* time steps (and previous iterations) gives each step's fit a
prior (Levine et al., "End-to-end training of deep visuomotor policies", App. A.3)::

    w_k ∝ mean_i p(k | y_i)   (the N points of this step)
    μ₀ = Σ_k w_k μ_k,   Φ̃ = Σ_k w_k (Σ_k + (μ_k − μ₀)(μ_k − μ₀)ᵀ)
    m = strength,   n₀ = strength·(N_pts − 2 − D)/N_pts,   Φ = m·Φ̃

``map_gaussian`` combines the prior with the N points into a joint Gaussian; ``condition`` turns it
into a linear-Gaussian map. Plain numpy; ``rng`` only for the initial hard assignment.
"""
import dataclasses
from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from lto_ref.gps import lingauss

__all__ = ["Config", "GMM", "n_clusters", "fit", "em", "responsibilities", "prior", "map_gaussian",
           "condition", "fit_conditional"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of a GMM prior and of the fits it regularises (dynamics and π̄)."""
    max_clusters: int = 10         # the paper's 10 Gaussians (the released code: 20)
    min_samples_per_cluster: int = 20
    strength: float = 1.0          # prior strength m
    em_iterations: int = 100
    em_warm_iterations: int = 10   # cap for a warm-started refit (docs/deviations.md)
    em_tol: float = 1e-5
    em_reg: float = 1e-6           # added to each component's covariance
    reg: float = 1e-3              # added to Σ[in, in] before conditioning
    pooled: bool = True            # one GMM on points pooled over conditions (deviation) …
    pooled_points: int = 2000      # … subsampled to this many; False: one GMM per condition

    def __post_init__(self):
        for name in ("max_clusters", "min_samples_per_cluster", "em_iterations",
                     "em_warm_iterations", "pooled_points"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("strength", "em_tol", "em_reg", "reg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class GMM(NamedTuple):
    mu: np.ndarray       # (K, D) means
    sigma: np.ndarray    # (K, D, D) covariances
    logmass: np.ndarray  # (K,) log mixing weights


def n_clusters(n_points, max_clusters=10, min_samples_per_cluster=20):
    """K = max(2, min(max_clusters, ⌊n_points / min_samples_per_cluster⌋)) (docs/method.md (50)–(58))."""
    return max(2, min(max_clusters, n_points // min_samples_per_cluster))


def _symmetrize(A):
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def _log_obs(data, gmm, block=4096):
    """log w_k + log N(y_i; μ_k, Σ_k): (N, K).

    Mahalanobis terms |L_k⁻¹(y − μ_k)|² as matrix products with the inverse Cholesky factors,
    over blocks of points (memory O(block·D)).
    """
    K, D = gmm.mu.shape
    L = lingauss.cholesky(gmm.sigma)                                     # (K, D, D)
    L_inv = np.stack([solve_triangular(L[k], np.eye(D), lower=True) for k in range(K)])
    c = np.einsum("kij,kj->ki", L_inv, gmm.mu)                           # L_k⁻¹ μ_k
    maha = np.empty((K, data.shape[0]))
    for start in range(0, data.shape[0], block):
        y = data[start:start + block]
        for k in range(K):
            z = y @ L_inv[k].T
            z -= c[k]
            maha[k, start:start + block] = np.einsum("ij,ij->i", z, z)
    logdet = 2 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return (gmm.logmass[:, None] - 0.5 * (maha + logdet[:, None] + D * np.log(2 * np.pi))).T


def responsibilities(data, gmm):
    """p(k | y_i) for data (N, D): (N, K), and the mean log-likelihood."""
    logobs = _log_obs(data, gmm)
    lse = logsumexp(logobs, axis=1, keepdims=True)
    return np.exp(logobs - lse), float(np.mean(lse))


def _m_step(data, resp, reg, K):
    """Weighted means and covariances (+ reg·I); clusters of mass < 1e-4/K restart on all data."""
    N, D = data.shape
    mass = resp.sum(axis=0)                                              # (K,)
    dead = mass / N < 1e-4 / K
    resp = np.where(dead[None, :], 1.0 / N, resp / np.where(dead, 1.0, mass)[None, :])
    mu = resp.T @ data                                                   # (K, D)
    diff = data[None] - mu[:, None]                                      # (K, N, D)
    sigma = np.swapaxes(diff * resp.T[:, :, None], 1, 2) @ diff + reg * np.eye(D)
    w = np.where(dead, 1.0 / K, mass / N)
    return GMM(mu=mu, sigma=_symmetrize(sigma), logmass=np.log(w / w.sum()))


def fit(rng, data, K, *, init=None, max_iterations=100, tol=1e-5, reg=1e-6):
    """EM for a K-component GMM on data (N, D) (docs/method.md (50)–(58)).

    Starts from ``init`` when it has K components (warm start), else from a random hard
    assignment (covariances + 2e-6·I). Stops when the log-likelihood decreases or changes by less
    than tol·|ll|.

    Returns
    -------
    gmm : GMM;  n_iterations : int
    """
    data = np.asarray(data, dtype=float)
    N, D = data.shape
    if not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    if init is not None and init.mu.shape == (K, D):
        gmm = init
    else:
        resp = np.eye(K)[rng.integers(0, K, size=N)]                     # (N, K) hard assignment
        gmm = _m_step(data, resp, 2e-6, K)
    prev_ll = -np.inf
    for it in range(max_iterations):
        resp, ll = responsibilities(data, gmm)
        if ll < prev_ll or abs(ll - prev_ll) < tol * abs(ll):
            break
        prev_ll = ll
        gmm = _m_step(data, resp, reg, K)
    return gmm, it + 1


def em(seed, points, init, cfg):
    """GMM of K = n_clusters(len(points)) components fitted by EM, warm-started from ``init``.

    seed : int;  points : (n, D);  init : GMM or None;  cfg : Config
    A warm start (``init`` with K components) runs at most ``cfg.em_warm_iterations``.
    """
    K = n_clusters(points.shape[0], cfg.max_clusters, cfg.min_samples_per_cluster)
    warm = init is not None and init.mu.shape == (K, points.shape[1])
    gmm, _ = fit(np.random.default_rng(seed), points, K, init=init,
                 max_iterations=cfg.em_warm_iterations if warm else cfg.em_iterations,
                 tol=cfg.em_tol, reg=cfg.em_reg)
    return gmm


def prior(gmm, points, n_pts, strength=1.0):
    """NIW prior (μ₀, Φ, m, n₀) for the points (…, N, D) of each time step (docs/method.md (50)–(58)).

    Returns μ₀ (…, D), Φ (…, D, D) and the scalars m, n₀.
    """
    lead, (N, D) = points.shape[:-2], points.shape[-2:]
    resp, _ = responsibilities(points.reshape(-1, D), gmm)
    w = resp.reshape(lead + (N, -1)).mean(axis=-2)                       # (…, K)
    w = w / w.sum(axis=-1, keepdims=True)
    mu0 = w @ gmm.mu                                                     # (…, D)
    diff = gmm.mu - mu0[..., None, :]                                    # (…, K, D)
    K = gmm.mu.shape[0]
    Phi_tilde = (w @ gmm.sigma.reshape(K, D * D)).reshape(lead + (D, D))     # Σ_k w_k Σ_k
    Phi_tilde += np.swapaxes(diff * w[..., None], -1, -2) @ diff        # + Σ_k w_k d_k d_kᵀ
    m = strength
    n0 = strength * (n_pts - 2 - D) / n_pts
    return mu0, m * _symmetrize(Phi_tilde), m, n0


def map_gaussian(points, mu0, Phi, m, n0):
    """MAP joint Gaussian of the points (…, N, D) under the NIW prior, weights 1/N (docs/method.md (50)–(58)).

    μ = mean_i y_i;  Σ = [N Ŝ + Φ + (N m / (N + m))(μ − μ₀)(μ − μ₀)ᵀ] / (N + n₀)
    mu0 (…, D), Phi (…, D, D)  ->  μ (…, D), Σ (…, D, D)
    """
    N = points.shape[-2]
    if not N + n0 > 0:
        raise ValueError(f"need N + n0 > 0 for a proper posterior, got N={N}, n0={n0}")
    mu = points.mean(axis=-2)
    diff = points - mu[..., None, :]
    dm = mu - mu0
    sigma = np.swapaxes(diff, -1, -2) @ diff                             # N·Ŝ
    sigma += Phi
    sigma += (N * m / (N + m)) * dm[..., :, None] * dm[..., None, :]
    sigma /= N + n0
    return mu, _symmetrize(sigma)


def condition(mu, sigma, n_in, *, reg=1e-3):
    """Linear-Gaussian map y_out | y_in ~ N(A y_in + a, W) from a joint Gaussian over [y_in; y_out].

    Σ[in, in] += reg·I;  A = (Σ[in,in]⁻¹ Σ[in,out])ᵀ;  a = μ_out − A μ_in;  W = Σ[out,out] − A Σ[in,in] Aᵀ.
    mu (…, D), sigma (…, D, D)  ->  A (…, D_out, n_in), a (…, D_out), W (…, D_out, D_out).
    """
    S_ii = sigma[..., :n_in, :n_in] + reg * np.eye(n_in)
    S_io = sigma[..., :n_in, n_in:]
    c = lingauss.cholesky(S_ii)
    A = np.swapaxes(np.linalg.solve(np.swapaxes(c, -1, -2), np.linalg.solve(c, S_io)), -1, -2)
    a = mu[..., n_in:] - np.einsum("...ij,...j->...i", A, mu[..., :n_in])
    W = sigma[..., n_in:, n_in:] - A @ S_ii @ np.swapaxes(A, -1, -2)
    return A, a, _symmetrize(W)


def fit_conditional(points, gmm, n_pts, n_in, *, strength=1.0, reg=1e-3):
    """Per-step linear-Gaussian fits y_out | y_in under the GMM's NIW prior (docs/method.md (50)–(58), (59)).

    points : (T, N, D) with y_in the first n_in entries  ->  A (T, D−n_in, n_in), a, W
    """
    mu, sigma = map_gaussian(points, *prior(gmm, points, n_pts, strength))
    return condition(mu, sigma, n_in, reg=reg)
