"""Linear stability of a learned optimizer near a minimiser (a diagnostic, not part of training).

Close to a minimiser x* of f with Hessian A, write e_t = x_t − x*. Then g_t = A e_t and
Δ_t = e_t − e_{t−1} exactly for a quadratic and to first order otherwise, while the relative
objective changes δ_k of the released-code observation (``features.observe``, docs/method.md (25)–(29)) are of
second order in e. A policy with μ(0) = 0 (the reflection-odd policy, ``policy.init``) then acts
to first order as a fixed linear multi-step method::

    e_{t+1} = e_t + Σ_{i=0}^{H} P_i A e_{t−H+i} + Σ_{i=0}^{H−1} Q_i (e_{t−H+1+i} − e_{t−H+i})

with P_i = ∂μ/∂g_{t−H+i} and Q_i = ∂μ/∂Δ_{t−H+1+i} at o = 0. Stacking E_t = [e_t, e_{t−1}, …,
e_{t−H}] gives E_{t+1} = M(A) E_t; the optimizer converges from every start close enough to x*
iff the spectral radius ρ(M(A)) < 1 and is driven away (the slow oscillation of docs/reproduction.md's
status) when ρ > 1. For heavy ball, u_t = −γ g_t + μ Δ_t, the eigenvalues are the roots of
z² − (1 + μ − γλ) z + μ for each eigenvalue λ of A (Polyak).
"""
import numpy as np

from lto_ref import features, policy as policy_lib

__all__ = ["jacobian_at_rest", "blocks", "companion", "spectral_radius"]


def jacobian_at_rest(policy, d, H=25):
    """The linear map of a policy at a stationary point (o = 0, released-code observation).

    Meaningful for policies with μ(0) = 0 (reflection-odd, ``policy.init(reflect=…)``); for the
    plain MLP o = 0 is not a fixed point of the optimizer and the analysis does not apply.

    Returns (P, Q): P (H+1, d, d), P[i] = ∂μ/∂g_{t−H+i} (P[H] acts on g_t);
    Q (H, d, d), Q[i] = ∂μ/∂Δ_{t−H+1+i} (Q[H−1] acts on the newest step Δ_t).
    """
    dO = features.obs_dim(d, H)
    if np.shape(policy.net[0][0])[0] != dO:
        raise ValueError(f"policy must take observations of dimension dO = {dO} (d = {d}, "
                         f"H = {H}), got {np.shape(policy.net[0][0])[0]}")
    _, J = policy_lib.linearize(policy, np.zeros((1, dO)))
    return blocks(J[0], d, H)


def blocks(J, d, H=25):
    """(P, Q) of ``jacobian_at_rest`` from a Jacobian J = ∂μ/∂o (d, dO) of the observation."""
    o = features.offsets(d, H)                                   # observation: minus d
    g_block = J[:, o.past_grads - d:o.steps - d]                 # g_{t−H} … g_{t−1}, g_t
    dx_block = J[:, o.steps - d:]                                # Δ_{t−H+1} … Δ_t
    P = g_block.reshape(d, H + 1, d).transpose(1, 0, 2)
    Q = dx_block.reshape(d, H, d).transpose(1, 0, 2)
    return P, Q


def companion(P, Q, A):
    """M(A): E_{t+1} = M E_t for E_t = [e_t, e_{t−1}, …, e_{t−H}] (module docstring).

    P : (H+1, d, d), Q : (H, d, d), A : (d, d)  ->  M : (d(H+1), d(H+1)).
    """
    P, Q, A = np.asarray(P, float), np.asarray(Q, float), np.asarray(A, float)
    if P.ndim != 3 or P.shape[1] != P.shape[2]:
        raise ValueError(f"P must have shape (H+1, d, d), got {P.shape}")
    H1, d = P.shape[0], P.shape[1]
    if Q.shape != (H1 - 1, d, d):
        raise ValueError(f"Q must have shape ({H1 - 1}, {d}, {d}), got {Q.shape}")
    if A.shape != (d, d):
        raise ValueError(f"A must have shape ({d}, {d}), got {A.shape}")
    n = d * H1
    M = np.zeros((n, n))
    top = M[:d]                                       # row block of e_{t+1}; column block k ↔ e_{t−k}
    top[:, :d] += np.eye(d)
    for i in range(H1):                               # P_i A e_{t−H+i}: column block H − i
        k = H1 - 1 - i
        top[:, k * d:(k + 1) * d] += P[i] @ A
    for i in range(H1 - 1):                           # Q_i (e_{t−k} − e_{t−k−1}), k = H − 1 − i
        k = H1 - 2 - i
        top[:, k * d:(k + 1) * d] += Q[i]
        top[:, (k + 1) * d:(k + 2) * d] -= Q[i]
    M[d:, :n - d] = np.eye(n - d)                     # shift: e_{t−k} moves to block k + 1
    return M


def spectral_radius(P, Q, A):
    """ρ(M(A)): < 1 means the linearised optimizer converges near x*, > 1 that it is driven away.

    A : (d, d) or a stack (n, d, d)  ->  float or (n,).
    """
    A = np.asarray(A, float)
    if A.ndim == 3:
        return np.array([spectral_radius(P, Q, a) for a in A])
    return float(np.max(np.abs(np.linalg.eigvals(companion(P, Q, A)))))
