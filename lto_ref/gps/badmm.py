"""BADMM dual updates and trust-region step adaptation of GPS (docs/method.md (77)–(78), (79)–(80), (88)–(89)).

Pure functions of arrays, batched over the M conditions. ``model_cost`` is the Laplace estimate
of a controller's cost (plus the BADMM policy-KL term) under one iteration's dynamics, cost and
policy linearisation; the step multiplier compares the improvement it predicted with the one the
next iteration's model measures (Levine & Abbeel 2014).
"""
import numpy as np

from lto_ref.gps import cost as cost_lib, lingauss, lqr

__all__ = ["model_cost", "step_multiplier", "update_lambda", "update_nu", "dual_gain"]


def model_cost(lg, dyn, cost, pi_bar=None, nu=None):
    """J(p; model) + Σ_t ν_t KL_t(p ‖ π̄) with the marginals of p under ``dyn``: (M,)."""
    mu, sigma = lqr.forward(dyn, lg)
    J = cost_lib.expected_cost(cost, mu, sigma)
    if pi_bar is None:
        return J
    dX = lg.K.shape[-1]
    kl = lingauss.policy_kl(mu[..., :dX], sigma[..., :dX, :dX], lg, pi_bar.K, pi_bar.k,
                            pi_bar.pol_covar)
    return J + np.sum(nu * kl, axis=-1)


def step_multiplier(step_mult, predicted, actual, *, clip=(0.1, 5.0), bounds=(0.01, 10.0)):
    """step_mult ← clip(mult·step_mult), mult = clip(predicted / (2 max(1e-4, predicted − actual))).

    All arguments (M,); returns the new (M,) multipliers (docs/method.md (77)–(78)).
    """
    mult = np.clip(predicted / (2.0 * np.maximum(1e-4, predicted - actual)), *clip)
    return np.clip(mult * step_mult, *bounds)


def update_lambda(lam_k, nu, lg, X, mu_pol, alpha=0.2):
    """λ_k,t ← λ_k,t + α ν_t P_t (mean_n μ_θ(o_{n,t}) − mean_n (K_t x_{n,t} + k_t)) (docs/method.md (79)–(80)).

    lam_k (M, T, dU), nu (M, T), X (M, N, T, dX), mu_pol (M, N, T, dU)  ->  (M, T, dU)
    """
    u_lg = np.einsum("mtij,mntj->mnti", lg.K, X) + lg.k[:, None]
    gap = mu_pol.mean(axis=1) - u_lg.mean(axis=1)                       # (M, T, dU)
    return lam_k + alpha * nu[..., None] * np.einsum("mtij,mtj->mti", lg.inv, gap)


def update_nu(nu, kl):
    """Halve ν_t where KL_t < mean − std, double where KL_t ≥ mean + std/2 (docs/method.md (79)–(80)).

    nu, kl : (M, T), statistics over t per condition  ->  (M, T)
    """
    mean, std = kl.mean(axis=1, keepdims=True), kl.std(axis=1, keepdims=True)
    return np.where(kl < mean - std, 0.5 * nu, np.where(kl >= mean + 0.5 * std, 2.0 * nu, nu))


def dual_gain(nu, alpha=0.2, form="code"):
    """α ν_t s_t, s = ν_t (code-form S-step target −ν G λ) or 1/ν_t (derivation, −G λ / ν).

    After an S-step that fits its target exactly, the λ update multiplies the policy/controller
    gap's dual by 1 − gain (``sstep.targets``; docs/method.md (79)–(87)), so the ascent diverges where
    gain > 2. The code form's gain α ν² passes 2 at ν > 3.2, which ν's doubling (from 0.01)
    reaches after about 9 iterations; the derivation's gain is α. nu (M, T) -> (M, T).
    """
    if form not in ("code", "derivation"):
        raise ValueError(f"form must be 'code' or 'derivation', got {form!r}")
    nu = np.asarray(nu, dtype=float)
    return alpha * nu * nu if form == "code" else np.full_like(nu, alpha)
