"""The GPS cost: local quadratic models of ℓ = dU·f(x_loc) and its Laplace expectation (docs/method.md (60)–(61)).

The cost of a state is the objective at its current location (the first d entries, CUR_LOC). At
each sample ẑ its second-order expansion with the exact gradient g and Hessian H of f is::

    ℓ(z) ≈ ½ zᵀ Cm z + zᵀ cv + cc,   Cm[loc, loc] = s·H,  cv[loc] = s·(g − H ẑ_loc),
    cc = s·(f − gᵀẑ_loc + ½ ẑ_locᵀ H ẑ_loc),   s = ``scale`` (GPS passes dU, the GPS code's),

averaged over the N samples of each (condition, step). No action or cross terms.
"""
import functools
from typing import NamedTuple

import numpy as np

from lto_ref import autodiff, objectives

__all__ = ["QuadCost", "quadratize", "expected_cost"]


class QuadCost(NamedTuple):
    """Local quadratic cost ℓ(z) ≈ ½ zᵀ Cm z + zᵀ cv + cc per condition and step."""
    Cm: np.ndarray  # (M, T, dX+dU, dX+dU)
    cv: np.ndarray  # (M, T, dX+dU)
    cc: np.ndarray  # (M, T)


def quadratize(family, problems, X, dU, *, scale=1.0):
    """Local quadratic cost per condition and step, averaged over samples.

    Parameters
    ----------
    family : objectives.Family;  problems : data of the M conditions
    X : (M, N, T, dX) sampled states, CUR_LOC in the first d entries;  dU : action size
    scale : s, the cost ℓ = s·f (the released GPS code charges dU·f)

    Returns
    -------
    QuadCost with Cm (M, T, dX+dU, dX+dU), cv (M, T, dX+dU), cc (M, T), and the raw
    per-sample costs ℓ (M, N, T) for logging.
    """
    M, N, T, dX = X.shape
    d = family.dim
    x_loc = X[..., :d].reshape(-1, d)                                    # (M·N·T, d)
    rows = np.repeat(np.arange(M), N * T)
    sub = objectives.subset(problems, rows)
    objective = functools.partial(family.loss, problems=sub)
    f, g = autodiff.value_and_grad(objective, x_loc)
    H = (autodiff.hessians(objective, x_loc) if family.hessian is None       # (M·N·T, d, d)
         else family.hessian(x_loc, sub))
    s = float(scale)
    Hz = np.einsum("bij,bj->bi", H, x_loc)
    cc = s * (f - np.sum(g * x_loc, 1) + 0.5 * np.sum(x_loc * Hz, 1))
    Cm = np.zeros((M, T, dX + dU, dX + dU))
    cv = np.zeros((M, T, dX + dU))
    Cm[..., :d, :d] = s * H.reshape(M, N, T, d, d).mean(axis=1)
    cv[..., :d] = s * (g - Hz).reshape(M, N, T, d).mean(axis=1)
    return QuadCost(Cm=Cm, cv=cv, cc=cc.reshape(M, N, T).mean(axis=1)), s * f.reshape(M, N, T)


def expected_cost(cost, mu, sigma):
    """Laplace expected cost J = Σ_t [cc_t + ½ tr(Σ_t Cm_t) + ½ μ_tᵀ Cm_t μ_t + μ_tᵀ cv_t]: (M,).

    mu : (M, T, dX+dU), sigma : (M, T, dX+dU, dX+dU), the marginals of ``lqr.forward``.
    """
    return np.sum(cost.cc + 0.5 * np.einsum("...ij,...ji->...", sigma, cost.Cm)
                  + 0.5 * np.einsum("...i,...ij,...j->...", mu, cost.Cm, mu)
                  + np.sum(mu * cost.cv, axis=-1), axis=-1)
