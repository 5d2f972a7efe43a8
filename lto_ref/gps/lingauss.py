"""Time-varying linear-Gaussian controllers p(u_t | x_t) = N(K_t x_t + k_t, G_t) (docs/method.md (41)–(43), (74)–(76)).

The local controllers of guided policy search: one per condition (training function) m, batched on
a leading axis M. With P = G⁻¹ and z = [x; u] (docs/method.md (41)–(43))::

    −log N(u; Kx + k, G) = ½ zᵀ M z + zᵀ v + c + ½ log|2πG|
    M = [[KᵀPK, −KᵀP], [−PK, P]],   v = [KᵀPk; −Pk],   c = ½ kᵀPk

``quadratic_form`` returns (M, v, c); it serves the trust-region term, the BADMM term and the
trajectory KL. Plain numpy (not differentiated); arrays are never modified in place.
"""
import warnings
from typing import NamedTuple

import numpy as np

__all__ = ["LinGauss", "make", "cholesky", "spd_inverse", "quadratic_form", "act", "logdet",
           "symmetrize", "expected_nll", "traj_kl", "policy_kl", "sample_kl"]


class LinGauss(NamedTuple):
    """Linear-Gaussian controllers u_t = K_t x_t + k_t + chol_t ξ_t, ξ_t ~ N(0, I)."""
    K: np.ndarray          # (M, T, dU, dX) gains
    k: np.ndarray          # (M, T, dU) offsets
    pol_covar: np.ndarray  # (M, T, dU, dU) G_t
    chol: np.ndarray       # (M, T, dU, dU) lower Cholesky factor, chol cholᵀ = G_t
    inv: np.ndarray        # (M, T, dU, dU) precision P_t = G_t⁻¹


def symmetrize(A):
    """½ (A + Aᵀ) over the last two axes."""
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def cholesky(A, *, jitter=1e-9, tries=8):
    """Lower Cholesky factors of the SPD matrices A (…, k, k), with jitter if a factorisation fails.

    On failure, jitter·mean(diag A)·I is added to every matrix of the batch, ×10 per retry, and
    a RuntimeWarning says how much; LinAlgError after ``tries`` retries.
    """
    try:
        return np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        pass
    scale = np.mean(np.abs(np.diagonal(A, axis1=-2, axis2=-1)), axis=-1)[..., None, None]
    eye = np.eye(A.shape[-1])
    for i in range(tries):
        amount = jitter * 10.0 ** i
        try:
            L = np.linalg.cholesky(A + amount * np.maximum(scale, 1e-300) * eye)
        except np.linalg.LinAlgError:
            continue
        warnings.warn(f"Cholesky factorisation failed; added {amount:g}·mean(diag)·I jitter",
                      RuntimeWarning)
        return L
    raise np.linalg.LinAlgError(f"not positive definite even with {amount:g}·mean(diag)·I jitter")


def spd_inverse(L):
    """G⁻¹ = L⁻ᵀ L⁻¹ from the lower Cholesky factor, batched over leading axes."""
    eye = np.broadcast_to(np.eye(L.shape[-1]), L.shape)
    Linv = np.linalg.solve(L, eye)
    return symmetrize(np.swapaxes(Linv, -1, -2) @ Linv)


def make(K, k, pol_covar):
    """Controllers from gains K (…, dU, dX), offsets k (…, dU), covariances G (…, dU, dU).

    Raises ValueError when the shapes disagree or a covariance is not positive definite.
    """
    # C order whatever the inputs' layout: an executor's pickling makes arrays C-contiguous, and
    # matrix products of another layout sum in another order (results would differ in the last bits)
    K, k, G = (np.ascontiguousarray(a, dtype=float) for a in (K, k, pol_covar))
    dU = K.shape[-2]
    if k.shape != K.shape[:-1] or G.shape != K.shape[:-2] + (dU, dU):
        raise ValueError(f"need K (..., dU, dX), k (..., dU), pol_covar (..., dU, dU) with equal "
                         f"leading axes; got {K.shape}, {k.shape}, {G.shape}")
    G = symmetrize(G)
    try:
        L = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        raise ValueError("pol_covar must be symmetric positive definite") from None
    return LinGauss(K=K, k=k, pol_covar=G, chol=L, inv=spd_inverse(L))


def logdet(lg):
    """log|G_t| = 2 Σ log diag(chol_t): (M, T)."""
    return 2.0 * np.sum(np.log(np.diagonal(lg.chol, axis1=-2, axis2=-1)), axis=-1)


def quadratic_form(K, k, P):
    """(M, v, c) of −log N(u; Kx + k, P⁻¹) in z = [x; u], up to ½ log|2πG| (docs/method.md (41)–(43)).

    K (…, dU, dX), k (…, dU), P (…, dU, dU)  ->  M (…, dX+dU, dX+dU), v (…, dX+dU), c (…)
    """
    Kt = np.swapaxes(K, -1, -2)                                  # (…, dX, dU)
    PK = P @ K                                                   # (…, dU, dX)
    Pk = np.einsum("...ij,...j->...i", P, k)                     # (…, dU)
    top = np.concatenate([Kt @ PK, -np.swapaxes(PK, -1, -2)], axis=-1)
    bottom = np.concatenate([-PK, P], axis=-1)
    M = symmetrize(np.concatenate([top, bottom], axis=-2))
    v = np.concatenate([np.einsum("...ij,...j->...i", Kt, Pk), -Pk], axis=-1)
    return M, v, 0.5 * np.sum(k * Pk, axis=-1)


def act(lg, t, x, noise):
    """u = K_t x + k_t + chol_t ξ for every condition and sample.

    x : (M, N, dX), noise ξ : (M, N, dU) pre-drawn standard normal  ->  u : (M, N, dU)
    """
    return (np.einsum("mij,mnj->mni", lg.K[:, t], x) + lg.k[:, t, None, :]
            + np.einsum("mij,mnj->mni", lg.chol[:, t], noise))


def expected_nll(mu, sigma, lg):
    """E_z[−log N(u; K_t x + k_t, G_t)] + const under z = [x; u] ~ N(mu_t, sigma_t): (M, T).

    = ½[δᵀPδ + tr(P C)] + ½ log|G|,  δ = μ_u − K μ_x − k,  C = Cov(u − K x)
    = Σ_uu − K Σ_xu − Σ_ux Kᵀ + K Σ_xx Kᵀ, the constant ½ dU log 2π left out. The same as the
    expectation of the quadratic form (M, v, c) of ``quadratic_form``, without building M.
    """
    dX = lg.K.shape[-1]
    K, Kt = lg.K, np.swapaxes(lg.K, -1, -2)
    delta = mu[..., dX:] - np.einsum("...ij,...j->...i", K, mu[..., :dX]) - lg.k
    K_Sxu = K @ sigma[..., :dX, dX:]                                  # (…, dU, dU)
    C = sigma[..., dX:, dX:] - K_Sxu - np.swapaxes(K_Sxu, -1, -2) + K @ sigma[..., :dX, :dX] @ Kt
    quad = np.einsum("...i,...ij,...j->...", delta, lg.inv, delta)
    return 0.5 * (quad + np.einsum("...ij,...ji->...", lg.inv, C) + logdet(lg))


def traj_kl(mu, sigma, new, prev):
    """Trust-region KL(p_new ‖ p_prev) under p_new's state-action marginals (docs/method.md (74)–(76)).

    Σ_t max(0, E_z[log p_new(u|x) − log p_prev(u|x)]), z ~ N(mu_t, sigma_t).

    mu : (M, T, dX+dU), sigma : (M, T, dX+dU, dX+dU); new, prev : LinGauss  ->  (M,)
    """
    kl_t = expected_nll(mu, sigma, prev) - expected_nll(mu, sigma, new)
    return np.sum(np.maximum(kl_t, 0.0), axis=-1)


def policy_kl(mu_x, sigma_x, lg, K_bar, k_bar, S_bar):
    """Laplace KL_t(p ‖ π̄) per step under state marginals N(mu_x, sigma_x) (docs/method.md (74)–(76), (77)–(78)).

    ½[δᵀS̄⁻¹δ + tr(S̄⁻¹G) + tr(Σ^x K̃ᵀS̄⁻¹K̃) − dU + log|S̄| − log|G|], K̃ = K − K̄,
    δ = K̃ μ^x + k − k̄.  mu_x (M, T, dX), sigma_x (M, T, dX, dX), K̄ … as LinGauss  ->  (M, T)
    """
    dU = lg.K.shape[-2]
    L_S = cholesky(S_bar)
    S_inv = spd_inverse(L_S)
    Kd = lg.K - K_bar                                                   # (M, T, dU, dX)
    delta = np.einsum("...ij,...j->...i", Kd, mu_x) + lg.k - k_bar      # (M, T, dU)
    quad = np.einsum("...i,...ij,...j->...", delta, S_inv, delta)
    tr_G = np.einsum("...ij,...ji->...", S_inv, lg.pol_covar)
    tr_K = np.sum((Kd @ sigma_x) * (S_inv @ Kd), axis=(-2, -1))      # tr(Σ^x K̃ᵀ S̄⁻¹ K̃)
    logdet_S = 2.0 * np.sum(np.log(np.diagonal(L_S, axis1=-2, axis2=-1)), -1)
    return 0.5 * (quad + tr_G + tr_K - dU + logdet_S - logdet(lg))


def sample_kl(X, mu_pol, lg, pol_var):
    """BADMM monitor: mean over samples of KL(N(K_t x + k_t, G_t) ‖ N(μ_θ(o), diag(pol_var))).

    X : (M, N, T, dX), mu_pol : (M, N, T, dU), pol_var : (dU,) shared, or (M, dU) one per
    condition  ->  (M, T)   (docs/method.md (74)–(76))
    """
    dU = lg.K.shape[-2]
    var = np.asarray(pol_var, dtype=float).reshape(-1, 1, dU)          # (M or 1, 1, dU)
    u_lg = np.einsum("mtij,mntj->mnti", lg.K, X) + lg.k[:, None]       # (M, N, T, dU)
    delta = mu_pol - u_lg
    quad = np.mean(np.sum(delta ** 2 / var[:, None], axis=-1), axis=1)  # (M, T)
    tr = np.sum(np.diagonal(lg.pol_covar, axis1=-2, axis2=-1) / var, axis=-1)
    return 0.5 * (tr + quad - dU + np.sum(np.log(var), axis=-1) - logdet(lg))
