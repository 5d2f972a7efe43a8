"""Trajectory optimisation of linear-Gaussian controllers: the C-step of GPS (SPEC §6.8, §6.9).

Under fitted linear-Gaussian dynamics x_{t+1} ~ N(F_t z_t + f_t, W_t), z = [x; u], and a local
quadratic cost, the controller minimising

    E[ℓ − uᵀλ] − η E[log p̂] − ν_t E[log π̄] − (η + ν_t) H(p)

is a maximum-entropy LQR on the combined cost divided by (η + ν_t) (``badmm_cost``). ``backward``
solves it, ``forward`` propagates the state-action marginals, and ``solve_eta`` finds the dual
variable η for which the trust region KL(p_new ‖ p̂) meets its bound ε. Batched over the M
conditions (leading axis); plain numpy, index assignment only into arrays created here.
"""
import warnings
from typing import NamedTuple

import numpy as np

from lto_ref import lingauss

__all__ = ["Dynamics", "QuadCost", "forward", "backward", "badmm_cost", "solve_eta", "take"]


class Dynamics(NamedTuple):
    """Linear-Gaussian dynamics per condition, x_{t+1} ~ N(Fm_t [x_t; u_t] + fv_t, dyn_covar_t)."""
    Fm: np.ndarray         # (M, T-1, dX, dX+dU)
    fv: np.ndarray         # (M, T-1, dX)
    dyn_covar: np.ndarray  # (M, T-1, dX, dX) W_t
    x0mu: np.ndarray       # (M, dX) μ_x0
    x0sigma: np.ndarray    # (M, dX, dX) Σ_x0


class QuadCost(NamedTuple):
    """Local quadratic cost ℓ(z) ≈ ½ zᵀ Cm z + zᵀ cv + cc per condition and step (SPEC §6.6)."""
    Cm: np.ndarray  # (M, T, dX+dU, dX+dU)
    cv: np.ndarray  # (M, T, dX+dU)
    cc: np.ndarray  # (M, T)


def take(record, idx):
    """The conditions ``idx`` of a (Named)tuple whose fields all have the leading axis M."""
    fields = [np.asarray(field)[idx] for field in record]
    return type(record)(*fields) if hasattr(record, "_fields") else tuple(fields)


def _mv(A, x):
    return np.einsum("...ij,...j->...i", A, x)


def forward(dyn, lg):
    """State-action marginals z_t ~ N(mu_t, sigma_t) of controller ``lg`` under ``dyn`` (§6.8).

    Returns mu : (M, T, dX+dU), sigma : (M, T, dX+dU, dX+dU), both symmetrised.
    """
    T = lg.K.shape[1]
    mu_x, sig_x = dyn.x0mu, dyn.x0sigma
    mus, sigmas = [], []
    for t in range(T):
        K = lg.K[:, t]                                                   # (M, dU, dX)
        mu = np.concatenate([mu_x, _mv(K, mu_x) + lg.k[:, t]], axis=-1)
        SKt = sig_x @ np.swapaxes(K, -1, -2)                            # (M, dX, dU)
        sigma = np.concatenate([
            np.concatenate([sig_x, SKt], axis=-1),
            np.concatenate([np.swapaxes(SKt, -1, -2), K @ SKt + lg.pol_covar[:, t]], axis=-1)],
            axis=-2)
        sigma = lingauss.symmetrize(sigma)
        mus.append(mu), sigmas.append(sigma)
        if t < T - 1:
            F = dyn.Fm[:, t]
            mu_x = _mv(F, mu) + dyn.fv[:, t]
            sig_x = lingauss.symmetrize(F @ sigma @ np.swapaxes(F, -1, -2) + dyn.dyn_covar[:, t])
    return np.stack(mus, axis=1), np.stack(sigmas, axis=1)


def backward(dyn, Q_tilde, q_tilde, r=None):
    """Maximum-entropy LQR backward pass on normalised costs (SPEC §6.8).

    Q = Q̃_t + r_t Fᵀ V_{t+1} F,  q = q̃_t + r_t Fᵀ(v_{t+1} + V_{t+1} f);
    K_t = −Q_uu⁻¹ Q_ux,  k_t = −Q_uu⁻¹ q_u,  G_t = Q_uu⁻¹;  V_t = Q_xx + Q_xu K_t,  v_t = q_x + Q_xu k_t.

    Parameters
    ----------
    dyn : Dynamics;  Q_tilde : (M, T, dXU, dXU);  q_tilde : (M, T, dXU)
    r : (M, T-1) scale converting V from step t+1's normalisation to step t's (1 if None)

    Returns
    -------
    lg : LinGauss (conditions that failed hold an arbitrary PD placeholder)
    ok : (M,) bool, False where Q_uu was not positive definite at some step
    """
    M, T, dXU = q_tilde.shape
    dX = dyn.x0mu.shape[-1]
    dU = dXU - dX
    K, k, G = np.zeros((M, T, dU, dX)), np.zeros((M, T, dU)), np.zeros((M, T, dU, dU))
    ok = np.ones(M, dtype=bool)
    V, v = np.zeros((M, dX, dX)), np.zeros((M, dX))
    for t in range(T - 1, -1, -1):
        Q, q = Q_tilde[:, t], q_tilde[:, t]
        if t < T - 1:
            F, f = dyn.Fm[:, t], dyn.fv[:, t]
            s = np.ones(M) if r is None else r[:, t]
            Ft = np.swapaxes(F, -1, -2)
            Q = Q + s[:, None, None] * (Ft @ V @ F)
            q = q + s[:, None] * _mv(Ft, v + _mv(V, f))
        Q = lingauss.symmetrize(Q)
        Quu, Qux, qu = Q[:, dX:, dX:], Q[:, dX:, :dX], q[:, dX:]
        pd = np.linalg.eigvalsh(Quu)[:, 0] > 0
        ok &= pd
        Quu = np.where(pd[:, None, None], Quu, np.eye(dU))  # placeholder keeps the batch going
        G[:, t] = lingauss.spd_inverse(np.linalg.cholesky(Quu))
        K[:, t] = -G[:, t] @ Qux
        k[:, t] = -_mv(G[:, t], qu)
        Qxu = np.swapaxes(Qux, -1, -2)
        V = lingauss.symmetrize(Q[:, :dX, :dX] + Qxu @ K[:, t])
        v = q[:, :dX] + _mv(Qxu, k[:, t])
    return lingauss.make(K, k, G), ok


def badmm_cost(cost, eta, prev, *, nu=None, pi_bar=None, lam_K=None, lam_k=None, forms=None):
    """Normalised per-step cost of the BADMM C-step (SPEC §6.8), or of MDGPS with ``nu=None``.

    Q̃_t = (Cm' + η M(K̂, Ĝ) + ν_t M(K̄, S̄)) / (η + ν_t),  q̃_t likewise with v(·);
    Cm'[u, x] = Cm[u, x] − λ_K,  cv'[u] = cv[u] − λ_k;  r_t = (ν_{t+1} + η) / (ν_t + η).

    Parameters
    ----------
    cost : QuadCost;  eta : (M,);  prev : LinGauss, the trust-region centre p̂ (π̄ for MDGPS)
    nu : (M, T) BADMM weights, with pi_bar : LinGauss (K̄, k̄, S̄) and duals lam_K (M, T, dU, dX),
        lam_k (M, T, dU); all None for MDGPS (max_ent_traj = 0, r = 1)
    forms : optional precomputed ``(quadratic_form(prev), quadratic_form(pi_bar))`` (they do not
        depend on η, so an η search computes them once)

    Returns
    -------
    Q_tilde (M, T, dXU, dXU), q_tilde (M, T, dXU), r (M, T-1)
    """
    Cm, cv = cost.Cm, cost.cv
    dX = prev.K.shape[-1]
    if lam_K is not None:
        lam_pad = np.zeros_like(Cm)
        lam_pad[..., dX:, :dX] = lam_K
        Cm = Cm - lam_pad - np.swapaxes(lam_pad, -1, -2)
    if lam_k is not None:
        cv = cv - np.concatenate([np.zeros(cv.shape[:-1] + (dX,)), lam_k], axis=-1)
    if forms is None:
        forms = (lingauss.quadratic_form(prev.K, prev.k, prev.inv),
                 None if nu is None else lingauss.quadratic_form(pi_bar.K, pi_bar.k, pi_bar.inv))
    (Mp, vp, _), bar = forms
    e = eta[:, None]
    if nu is None:
        return ((Cm + e[..., None, None] * Mp) / e[..., None, None],
                (cv + e[..., None] * vp) / e[..., None],
                np.ones((eta.shape[0], Cm.shape[1] - 1)))
    Mb, vb, _ = bar
    w = e + nu                                                            # (M, T)
    Q = (Cm + e[..., None, None] * Mp + nu[..., None, None] * Mb) / w[..., None, None]
    q = (cv + e[..., None] * vp + nu[..., None] * vb) / w[..., None]
    return Q, q, w[:, 1:] / w[:, :-1]


def _backward_pd(dyn, cost_fn, eta, *, delta0=1e-4, eta_max=1e16):
    """Backward pass that raises η where Q_uu is not PD: η ← η₀ + δ, δ ← 2δ (SPEC §6.8)."""
    lg, ok = backward(dyn, *cost_fn(eta, np.arange(eta.shape[0])))
    eta, delta = eta.copy(), delta0
    eta0 = eta.copy()
    while not ok.all():
        bad = np.flatnonzero(~ok)
        eta[bad] = eta0[bad] + delta
        if np.any(eta[bad] >= eta_max):
            raise RuntimeError(f"no positive-definite Q_uu for conditions {bad.tolist()} up to "
                               f"eta = {eta_max:g}; non-finite dynamics? "
                               f"{not np.all(np.isfinite(dyn.Fm[bad]))}")
        lg_bad, ok_bad = backward(take(dyn, bad), *cost_fn(eta[bad], bad))
        lg = lingauss.LinGauss(*(_scatter(a, bad, b) for a, b in zip(lg, lg_bad)))
        ok[bad] = ok_bad
        delta *= 2
    return lg, eta


def _scatter(full, idx, part):
    out = full.copy()
    out[idx] = part
    return out


def solve_eta(dyn, cost_fn, kl_fn, eps, eta, *, eta_min=1e-4, eta_max=1e16, iterations=50,
              tol=0.1):
    """Dual search for η so that KL(p_new ‖ p̂) ≈ ε per condition (SPEC §6.9).

    Parameters
    ----------
    dyn : Dynamics (M conditions)
    cost_fn : (eta (m,), idx (m,)) -> (Q_tilde, q_tilde, r) for the conditions idx
    kl_fn : (lg, mu, sigma, idx) -> (m,) KL of the new controllers of conditions idx
    eps : (M,) KL bounds;  eta : (M,) starting values

    Returns
    -------
    lg : LinGauss, eta : (M,) of that solution, kl : (M,), converged : (M,) bool (also True
    where η reached the end of its bracket, so that the bound cannot be met)
    """
    M = eps.shape[0]
    eta, lo, hi = eta.astype(float).copy(), np.full(M, eta_min), np.full(M, eta_max)
    done, kl_out, result = np.zeros(M, dtype=bool), np.full(M, np.nan), None
    eta_sol = eta.copy()
    for _ in range(iterations):
        idx = np.flatnonzero(~done)
        sub = take(dyn, idx)
        lg, eta_used = _backward_pd(sub, lambda e, i: cost_fn(e, idx[i]), eta[idx])
        mu, sigma = forward(sub, lg)
        kl = kl_fn(lg, mu, sigma, idx)
        result = lg if result is None else lingauss.LinGauss(
            *(_scatter(a, idx, b) for a, b in zip(result, lg)))
        eta[idx], eta_sol[idx], kl_out[idx] = eta_used, eta_used, kl
        con = kl - eps[idx]
        at_bound = (((con < 0) & (eta_used <= eta_min * (1 + 1e-9)))      # rounding of √(lo·hi)
                    | ((con > 0) & (eta_used >= eta_max * (1 - 1e-9))))
        conv = (np.abs(con) < tol * eps[idx]) | at_bound   # the bracket allows no better
        done[idx[conv]] = True
        low = ~conv & (con < 0)                   # KL too small: η too large
        high = ~conv & (con >= 0)
        i_low, i_high = idx[low], idx[high]
        hi[i_low] = eta[i_low]
        eta[i_low] = np.maximum(np.sqrt(lo[i_low] * hi[i_low]), 0.1 * hi[i_low])
        lo[i_high] = eta[i_high]
        eta[i_high] = np.minimum(np.sqrt(lo[i_high] * hi[i_high]), 10 * lo[i_high])
        if done.all():
            break
    if not done.all():
        warnings.warn(f"eta search did not converge for {int((~done).sum())} condition(s) in "
                      f"{iterations} iterations; keeping the last solution", RuntimeWarning)
    return result, eta_sol, kl_out, done
