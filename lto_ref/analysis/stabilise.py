"""Rest-stability projection of a trained policy: an addition to the papers (docs/method.md (100)).

Near a minimiser the reflection-odd policy is a fixed linear multi-step method whose spectral
radius ρ(M(A)) with the Hessian A decides whether it converges or is driven into a slow
oscillation (``stability``). GPS never sees that growth within its T = 40 steps, so a trained
policy can be unstable at rest on the training functions with the largest curvature. The
projection changes the policy as little as possible, measured on the observations of its own
T-step rollouts on the training functions, while pushing every eigenvalue of M(c·A_i) at their
minimisers inside the radius r::

    min_θ  mean_b ‖μ_θ(o_b) − μ_θ₀(o_b)‖² / mean_b ‖μ_θ₀(o_b)‖²
           + κ Σ_i Σ_j max(|λ_j(M(c·A_i))| − r, 0)²

c > 1 is a curvature margin for held-out functions curvier than the training ones. Summing over
every eigenvalue outside r (not only the largest) keeps the penalty differentiable where two
eigenvalues swap places. Solved by scipy's L-BFGS-B with the gradient written out: d|λ| from
λ's right and left eigenvectors (dλ = wᴴ dM v / wᴴv, all from one LAPACK eigen-decomposition
of M), ∂M/∂J by the companion structure, and ∂J/∂θ for J = W₂ᵀ diag(φ'(a₀)) Vᵀ, the policy's
Jacobian at o = 0.
"""
import functools
import warnings

import autograd
import numpy as np
import scipy.linalg
import scipy.optimize

from lto_ref import features, policy as policy_lib
from lto_ref.analysis import stability
from lto_ref.gps import environment, sstep

__all__ = ["rest_hessians", "jacobian_and_vjp", "excess_and_grad", "project", "stabilise"]


def rest_hessians(family, problems, x0, *, maxiter=5000):
    """Minimisers (scipy L-BFGS-B from x0) and exact Hessians there: x* (M, d), A (M, d, d)."""
    x0 = np.asarray(x0, dtype=float)
    f_sum = lambda x: np.sum(family.loss(x, problems))  # noqa: E731
    g_sum = autograd.grad(f_sum)
    res = scipy.optimize.minimize(lambda z: f_sum(z.reshape(x0.shape)), x0.ravel(),
                                  jac=lambda z: g_sum(z.reshape(x0.shape)).ravel(),
                                  method="L-BFGS-B",
                                  options=dict(maxiter=maxiter, gtol=1e-12, ftol=1e-15))
    x_star = res.x.reshape(x0.shape)
    # the Hessian of Σ_m f_m is block diagonal; row j of every block from one pass over all m
    hvp = lambda v: autograd.grad(lambda x: np.sum(g_sum(x) * v))(x_star)  # noqa: E731
    A = np.stack([hvp(np.broadcast_to(np.eye(x0.shape[1])[j], x0.shape)) for j in
                  range(x0.shape[1])], axis=1)                              # (M, d, d)
    return x_star, 0.5 * (A + np.swapaxes(A, 1, 2))


def _check_odd(policy):
    if policy.reflect is None:
        raise ValueError("policy must be reflection-odd (policy.init(reflect=...)): the "
                         "analysis needs μ(0) = 0")


def _parts(policy):
    _check_odd(policy)
    (W1, _), (W2, _) = policy.net
    odd = (1.0 - policy.reflect) / 2                                  # 1 on g and Δ blocks
    _, a0 = policy_lib.first_layers(policy)[0]                        # first layer at o = 0
    s, ds = policy_lib.activation_slopes(a0, policy.activation)
    return W1, W2, (odd * policy.scale)[:, None], s, ds


def jacobian_and_vjp(policy):
    """J = ∂μ/∂o at o = 0 (dU, dO) and a function G ↦ ∂⟨G, J⟩/∂net in ``net``'s layout."""
    W1, W2, oscale, s, ds = _parts(policy)
    V = oscale * W1                                                   # (dO, h)
    J = np.dot(W2.T * s, V.T)

    def vjp(G):
        dV = np.dot(G.T, W2.T) * s                                    # (dO, h)
        da0 = np.einsum("ka,ab,bk->k", W2, G, V) * ds
        dW1 = oscale * dV + np.outer(policy.shift, da0)
        return [(dW1, da0), ((s[:, None] * V.T) @ G.T, np.zeros(W2.shape[1]))]
    return J, vjp


def excess_and_grad(J, A, H, r):
    """Σ_j max(|λ_j| − r, 0)² over the eigenvalues λ_j of M(A), and its gradient in J."""
    d = A.shape[0]
    M = stability.companion(*stability.blocks(J, d, H), A)
    lam, w, v = scipy.linalg.eig(M, left=True, right=True, check_finite=False)
    mod = np.abs(lam)
    out = mod > r
    if not out.any():
        return 0.0, np.zeros_like(J)
    lo, v, w = lam[out], v[:, out], w[:, out]                         # wᴴ M = λ wᴴ, M v = λ v
    coef = 2 * (mod[out] - r) * np.conj(lo) / mod[out] / np.sum(np.conj(w) * v, axis=0)
    dM = np.real(np.conj(w[:d]) @ (coef[:, None] * v.T))              # rows of block row 0
    return float(np.sum((mod[out] - r) ** 2)), _to_J(dM, A, J, H)


def _to_J(dM, A, J, H):
    """∂/∂J from ∂/∂(top block row of M) (d, d(H+1)), by the companion structure."""
    d = A.shape[0]
    o = features.offsets(d, H)                                        # observation: minus d
    Gk = dM.reshape(d, H + 1, d).transpose(1, 0, 2)                   # block k of row 0
    dP = (Gk @ A.T)[::-1]                                             # P_{H−k} multiplies A
    dQ = Gk[H - 1::-1] - Gk[H:0:-1]                                   # Q_i: +block H−1−i, −H−i
    G = np.zeros_like(J)
    G[:, o.past_grads - d:o.steps - d] = dP.transpose(1, 0, 2).reshape(d, -1)
    G[:, o.steps - d:] = dQ.transpose(1, 0, 2).reshape(d, -1)
    return G


def _objective(flat, policy, O, mu0, A, H, r, kappa):
    net = sstep.unflatten(flat, policy.net)
    pol = policy._replace(net=net)
    prec = np.broadcast_to(np.eye(mu0.shape[1]) * 2.0 / np.mean(np.sum(mu0 ** 2, -1)),
                           (O.shape[0],) + (mu0.shape[1],) * 2)
    fit, grads = sstep.loss_and_grad(pol, O, mu0, prec)
    J, vjp = jacobian_and_vjp(pol)
    G, pen = np.zeros_like(J), 0.0
    for a in A:
        p_i, g_i = excess_and_grad(J, a, H, r)
        pen += p_i
        G += g_i
    g_flat = sstep.flatten(grads) + kappa * sstep.flatten(vjp(G))
    return fit + kappa * pen, g_flat


def project(policy, O, A, H, *, r=0.99, kappa=10.0, maxiter=100, band=0.05, rounds=3):
    """The policy nearest ``policy`` on observations O with ρ(M(A_i)) ≤ r (module docstring).

    policy : reflection-odd Policy;  O : (B, dO) observations;  A : (n, d, d) Hessians
    Only the Hessians with ρ > r − band enter the objective; if the result leaves another above
    r − band, it joins and the optimisation continues (at most ``rounds`` times, ``maxiter``
    L-BFGS iterations in all). Returns (Policy, info: rho_before, rho_after (n,), active,
    nit, nfev, message); warns (RuntimeWarning) if some ρ stays above r + 0.01.
    """
    _check_odd(policy)
    if not 0 < r <= 1 or not kappa > 0:
        raise ValueError(f"need 0 < r <= 1 and kappa > 0, got r = {r!r}, kappa = {kappa!r}")
    A = np.asarray(A, dtype=float)
    d = np.shape(policy.net[1][0])[1]
    if A.ndim != 3 or A.shape[1:] != (d, d):
        raise ValueError(f"A must have shape (n, {d}, {d}), got {A.shape}")
    rho = lambda p: stability.spectral_radius(*stability.jacobian_at_rest(p, d, H), A)  # noqa
    mu0 = policy_lib.mean(policy, O)
    rho_before = rho(policy)
    flat, new, rho_now, nit, nfev, message = sstep.flatten(policy.net), policy, rho_before, 0, 0, ""
    active = np.zeros(len(A), dtype=bool)
    for _ in range(rounds):                      # active set: only Hessians near the bound
        grow = (rho_now > r - band) & ~active
        if not grow.any() or nit >= maxiter:
            break
        active |= grow
        fun = functools.partial(_objective, policy=policy, O=O, mu0=mu0, A=A[active], H=H,
                                r=r, kappa=kappa)
        res = scipy.optimize.minimize(fun, flat, jac=True, method="L-BFGS-B",
                                      options=dict(maxiter=maxiter - nit))
        flat, nit, nfev, message = res.x, nit + int(res.nit), nfev + int(res.nfev), res.message
        new = policy._replace(net=[(W.copy(), b.copy()) for W, b in sstep.unflatten(flat, policy.net)])
        rho_now = rho(new)
    if np.any(rho_now > r + 0.01):
        n_left = int(np.sum(rho_now > r + 0.01))
        warnings.warn(f"rest-stability projection left ρ > {r} + 0.01 at {n_left} of {len(A)}"
                      f" Hessians (max {np.max(rho_now):.3f}; L-BFGS: {message}); a larger kappa "
                      f"or maxiter may help",
                      RuntimeWarning)
    return new, dict(rho_before=rho_before, rho_after=rho_now, active=int(active.sum()),
                     nit=nit, nfev=nfev, message=str(message))


def stabilise(policy, family, problems, x0, *, H=25, h=5, T=40, margin=1.25, r=0.99,
              kappa=10.0, maxiter=100):
    """``project`` with the observations of the policy's own T-step rollouts on the training
    functions and their Hessians at the minimisers scaled by ``margin``: (Policy, info)."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    lay = environment.layout(family.dim, H, h)
    with np.errstate(all="ignore"):
        sim = environment.simulate(family, problems, x0, lambda t, X, O: policy_lib.mean(
            policy, O), T, 1, lay)
    O = sim.O.reshape(-1, features.obs_dim(family.dim, H))
    O = O[np.all(np.isfinite(O), axis=1)]
    _, A = rest_hessians(family, problems, x0)
    new, info = project(policy, O, margin * A, H, r=r, kappa=kappa, maxiter=maxiter)
    return new, dict(info, r=r, margin=margin)
