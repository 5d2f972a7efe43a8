"""Trajectory optimisation of linear-Gaussian controllers: the C-step of GPS (docs/method.md (62)–(70), (71)–(73)).

Under fitted linear-Gaussian dynamics x_{t+1} ~ N(F_t z_t + f_t, W_t), z = [x; u], and a local
quadratic cost, the controller minimising

    E[ℓ − uᵀλ] − η E[log p̂] − ν_t E[log π̄] − (η + ν_t) H(p)

is a maximum-entropy LQR on the combined cost divided by (η + ν_t) (``badmm_cost``). ``backward``
solves it and ``forward`` propagates the state-action marginals; ``eta_search.solve_eta`` finds the
dual variable η for which the trust region KL(p_new ‖ p̂) meets its bound ε. Batched over the M
conditions (leading axis); plain numpy, index assignment only into arrays created here.
"""
from typing import NamedTuple

import numpy as np

from lto_ref.gps import lingauss

__all__ = ["CostTerms", "forward", "backward", "cost_terms", "normalised_cost", "badmm_cost",
           "take"]


def take(record, idx):
    """The conditions ``idx`` (sorted, unique) of a (Named)tuple whose fields have the leading axis M.

    When ``idx`` selects every condition the record itself is returned (no copies).
    """
    if len(idx) == len(record[0]):
        return record
    fields = [np.asarray(field)[idx] for field in record]
    return type(record)(*fields) if hasattr(record, "_fields") else tuple(fields)


def _mv(A, x):
    return np.einsum("...ij,...j->...i", A, x)


def forward(dyn, lg):
    """State-action marginals z_t ~ N(mu_t, sigma_t) of controller ``lg`` under ``dyn`` (docs/method.md (69)).

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
    """Maximum-entropy LQR backward pass on normalised costs (docs/method.md (62)–(70)).

    Q = Q̃_t + r_t Fᵀ V_{t+1} F,  q = q̃_t + r_t Fᵀ(v_{t+1} + V_{t+1} f);
    K_t = −Q_uu⁻¹ Q_ux,  k_t = −Q_uu⁻¹ q_u,  G_t = Q_uu⁻¹;  V_t = Q_xx + Q_xu K_t,  v_t = q_x + Q_xu k_t.

    Parameters
    ----------
    dyn : Dynamics;  Q_tilde : (M, T, dXU, dXU);  q_tilde : (M, T, dXU)
    r : (M, T-1) scale converting V from step t+1's normalisation to step t's (1 if None)

    Returns
    -------
    lg : LinGauss (conditions that failed hold an arbitrary PD placeholder)
    ok : (M,) bool, False where Q_uu was not positive definite (or Q not finite) at some step
    """
    M, T, dXU = q_tilde.shape
    dX = dyn.x0mu.shape[-1]
    dU = dXU - dX
    K, k, G = np.zeros((M, T, dU, dX)), np.zeros((M, T, dU)), np.zeros((M, T, dU, dU))
    ok = np.ones(M, dtype=bool)
    V, v = np.zeros((M, dX, dX)), np.zeros((M, dX))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught: ok = False
        for t in range(T - 1, -1, -1):
            Q, q = Q_tilde[:, t], q_tilde[:, t]
            if t < T - 1:
                F, f = dyn.Fm[:, t], dyn.fv[:, t]
                s = np.ones(M) if r is None else r[:, t]
                Ft = np.swapaxes(F, -1, -2)
                Q = Q + s[:, None, None] * (Ft @ V @ F)
                q = q + s[:, None] * _mv(Ft, v + _mv(V, f))
            Q = lingauss.symmetrize(Q)
            finite = np.all(np.isfinite(Q), axis=(-2, -1)) & np.all(np.isfinite(q), axis=-1)
            Q, q = np.where(finite[:, None, None], Q, 0.0), np.where(finite[:, None], q, 0.0)
            Quu, Qux, qu = Q[:, dX:, dX:], Q[:, dX:, :dX], q[:, dX:]
            safe = np.where(finite[:, None, None], Quu, np.eye(dU))
            pd = finite & (np.linalg.eigvalsh(safe)[:, 0] > 0)   # overflow counts as not PD
            ok &= pd
            Quu = np.where(pd[:, None, None], Quu, np.eye(dU))  # placeholder keeps the batch going
            G[:, t] = lingauss.spd_inverse(np.linalg.cholesky(Quu))
            K[:, t] = -G[:, t] @ Qux
            k[:, t] = -_mv(G[:, t], qu)
            Qxu = np.swapaxes(Qux, -1, -2)
            V = lingauss.symmetrize(Q[:, :dX, :dX] + Qxu @ K[:, t])
            v = q[:, :dX] + _mv(Qxu, k[:, t])
    return lingauss.make(K, k, G), ok


class CostTerms(NamedTuple):
    """η-independent parts of the C-step cost: Q̃ = (A + η B)/(η + ν), q̃ = (a + η b)/(η + ν)."""
    A: np.ndarray   # (M, T, dXU, dXU) Cm' + ν_t M(K̄, S̄)
    a: np.ndarray   # (M, T, dXU) cv' + ν_t v(K̄, k̄, S̄)
    B: np.ndarray   # (M, T, dXU, dXU) M(K̂, Ĝ) of the trust-region centre
    b: np.ndarray   # (M, T, dXU) v(K̂, k̂, Ĝ)
    nu: np.ndarray  # (M, T) ν_t (zeros: MDGPS, max_ent_traj = 0)


def cost_terms(cost, prev, *, nu=None, pi_bar=None, lam_k=None):
    """The terms of the BADMM C-step cost (docs/method.md (62)–(70)), or of MDGPS with ``nu=None``.

    cv'[u] = cv[u] − λ_k;  A = Cm + ν_t M(K̄, S̄),  a = cv' + ν_t v(K̄, k̄, S̄),  B = M(K̂, Ĝ),
    b = v(K̂, k̂, Ĝ). The dual on the gains, λ_K, is always zero (its rate is 0) and is omitted.

    Parameters
    ----------
    cost : QuadCost;  prev : LinGauss, the trust-region centre p̂ (π̄ for MDGPS)
    nu : (M, T) BADMM weights, with pi_bar : LinGauss (K̄, k̄, S̄) and the duals lam_k (M, T, dU);
        all None for MDGPS
    """
    Cm, cv = cost.Cm, cost.cv
    dX = prev.K.shape[-1]
    if lam_k is not None:
        cv = cv - np.concatenate([np.zeros(cv.shape[:-1] + (dX,)), lam_k], axis=-1)
    Mp, vp, _ = lingauss.quadratic_form(prev.K, prev.k, prev.inv)
    if nu is None:
        return CostTerms(Cm, cv, Mp, vp, np.zeros(cv.shape[:2]))
    Mb, vb, _ = lingauss.quadratic_form(pi_bar.K, pi_bar.k, pi_bar.inv)
    return CostTerms(Cm + nu[..., None, None] * Mb, cv + nu[..., None] * vb, Mp, vp, nu)


def normalised_cost(terms, eta):
    """Q̃_t = (A_t + η B_t)/(η + ν_t), q̃_t likewise, r_t = (ν_{t+1} + η)/(ν_t + η) (docs/method.md (62)–(70)).

    terms : CostTerms (M conditions);  eta : (M,)  ->  Q̃ (M, T, dXU, dXU), q̃ (M, T, dXU), r (M, T−1)
    """
    w = eta[:, None] + terms.nu                                           # (M, T)
    Q = terms.B * eta[:, None, None, None]
    Q += terms.A
    Q /= w[..., None, None]
    q = (terms.a + eta[:, None, None] * terms.b) / w[..., None]
    return Q, q, w[:, 1:] / w[:, :-1]


def badmm_cost(cost, eta, prev, *, nu=None, pi_bar=None, lam_k=None):
    """Normalised per-step cost of the BADMM C-step (docs/method.md (62)–(70)), or of MDGPS with ``nu=None``.

    Q̃_t = (Cm + η M(K̂, Ĝ) + ν_t M(K̄, S̄)) / (η + ν_t),  q̃_t likewise with v(·) and cv';
    ``normalised_cost(cost_terms(...), eta)``. Returns Q̃ (M, T, dXU, dXU), q̃ (M, T, dXU), r (M, T−1).
    """
    return normalised_cost(cost_terms(cost, prev, nu=nu, pi_bar=pi_bar, lam_k=lam_k), eta)
