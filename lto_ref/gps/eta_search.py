"""The η dual search of the C-step: KL(p_new ‖ p̂) ≈ ε per condition (docs/method.md (70)–(73)).

KL(η) falls monotonically from the unconstrained LQR solution (η → 0) to 0 (η → ∞, the previous
controller). Each trial is a backward and a forward pass of every condition still searching.
Two proposal rules, both keeping the bracket [η_lo, η_hi] of docs/method.md (71)–(73) and its stopping test
|KL − ε| < tol·ε:

- ``"bracket"`` (released code): the released code's step, η = max(√(lo·hi), 0.1·hi) when KL < ε and
  min(√(lo·hi), 10·lo) otherwise — geometric bisection, at most a factor 10 per trial;
- ``"secant"`` [I, default]: interpolation in (log η, log KL) — regula falsi between the bracket
  ends once KL is known on both sides (bisection when one end moves twice in a row), otherwise a
  secant step through the last two trials (slope −1 at the first). Same solutions, fewer trials
  (docs/deviations.md).
"""
import warnings

import numpy as np

from lto_ref.gps import lingauss
from lto_ref.gps.lqr import backward, forward, take

__all__ = ["solve_eta", "METHODS"]

METHODS = ("secant", "bracket")


def _backward_pd(dyn, cost_fn, eta, *, delta0=1e-4, eta_max=1e16):
    """Backward pass that raises η where Q_uu is not PD: η ← η₀ + δ, δ ← 2δ (docs/method.md (62)–(70))."""
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


def _bracket_step(eta, lo, hi, too_small):
    """The released rule (docs/method.md (71)): geometric mean of the bracket, at most a factor
    10 from its end."""
    return np.where(too_small, np.maximum(np.sqrt(lo * hi), 0.1 * hi),
                    np.minimum(np.sqrt(lo * hi), 10 * lo))


def _secant_step(eta, kl, eps, lo, hi, kl_lo, kl_hi, prev, repeat):
    """Interpolation in (log η, log KL); every argument (m,), prev = (η, KL) of the last trial.

    Bracketed (KL known at both ends): regula falsi, kept 5 % inside the bracket, bisection when
    ``repeat`` (the same end moved twice in a row). Otherwise a secant step, slope clipped to
    [−4, −0.1], at most a factor 10⁴, inside [lo, hi].
    """
    log = lambda v: np.log(np.maximum(v, 1e-300))  # noqa: E731
    frac = np.clip((log(kl_lo) - log(eps)) / (log(kl_lo) - log(kl_hi)), 0.05, 0.95)
    frac = np.where(repeat, 0.5, frac)
    bracketed = np.isfinite(kl_lo) & np.isfinite(kl_hi) & (kl_lo > 0)
    inside = np.exp(log(lo) + frac * (log(hi) - log(lo)))
    d_eta = log(eta) - log(prev[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(np.isfinite(prev[0]) & (np.abs(d_eta) > 1e-12),
                         (log(kl) - log(prev[1])) / d_eta, -1.0)
    slope = np.clip(np.nan_to_num(slope, nan=-1.0), -4.0, -0.1)
    step = np.clip((log(eps) - log(kl)) / slope, -np.log(1e4), np.log(1e4))
    outside = np.clip(eta * np.exp(step), lo, hi)
    return np.where(bracketed, inside, outside)


def _propose(method, eta, kl, eps, lo, hi, kl_lo, kl_hi, prev, repeat, small):
    """The next η of every condition still searching (all arguments (m,))."""
    if method == "bracket":
        return _bracket_step(eta, lo, hi, small)
    with np.errstate(all="ignore"):
        proposal = _secant_step(eta, kl, eps, lo, hi, kl_lo, kl_hi, prev, repeat)
    return np.where(np.isfinite(kl) & np.isfinite(proposal), proposal,
                    _bracket_step(eta, lo, hi, small))


def solve_eta(dyn, cost_fn, kl_fn, eps, eta, *, eta_min=1e-4, eta_max=1e16, iterations=50,
              tol=0.1, method="secant"):
    """Dual search for η so that KL(p_new ‖ p̂) ≈ ε per condition (docs/method.md (71)–(73)).

    Parameters
    ----------
    dyn : Dynamics (M conditions)
    cost_fn : (eta (m,), idx (m,)) -> (Q_tilde, q_tilde, r) for the conditions idx
    kl_fn : (lg, mu, sigma, idx) -> (m,) KL of the new controllers of conditions idx
    eps : (M,) KL bounds;  eta : (M,) starting values
    method : "secant" (default) or "bracket" (the released code's rule)

    Returns
    -------
    lg : LinGauss, eta : (M,) of that solution, kl : (M,), converged : (M,) bool (also True
    where η reached the end of its bracket, or where the smallest η with a positive-definite
    backward pass already keeps KL below ε: smaller η are infeasible, so the bound cannot be met)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    M = eps.shape[0]
    eta, lo, hi = eta.astype(float).copy(), np.full(M, eta_min), np.full(M, eta_max)
    kl_lo, kl_hi = np.full(M, np.nan), np.full(M, np.nan)
    prev = (np.full(M, np.nan), np.full(M, np.nan))             # (η, KL) of the last trial
    side = np.zeros(M)
    done, kl_out, result = np.zeros(M, dtype=bool), np.full(M, np.nan), None
    eta_sol = eta.copy()
    for _ in range(iterations):
        idx = np.flatnonzero(~done)
        sub = take(dyn, idx)
        lg, eta_used = _backward_pd(sub, lambda e, i: cost_fn(e, idx[i]), eta[idx])
        with np.errstate(all="ignore"):
            kl = kl_fn(lg, *forward(sub, lg), idx)
        kl = np.where(np.isfinite(kl), kl, np.inf)      # an overflowed forward pass: KL too big
        result = lg if result is None else lingauss.LinGauss(
            *(_scatter(a, idx, b) for a, b in zip(result, lg)))
        eta_sol[idx], kl_out[idx] = eta_used, kl
        con = kl - eps[idx]
        raised = eta_used > eta[idx] * (1 + 1e-9)          # the non-PD fix had to raise η
        at_bound = (((con < 0) & ((eta_used <= eta_min * (1 + 1e-9)) | raised))
                    | ((con > 0) & (eta_used >= eta_max * (1 - 1e-9))))
        conv = (np.abs(con) < tol * eps[idx]) | at_bound   # the bracket allows no better
        done[idx[conv]] = True
        small = con < 0                                    # KL too small: η too large
        hi[idx] = np.where(small, eta_used, hi[idx])
        kl_hi[idx] = np.where(small, kl, kl_hi[idx])
        lo[idx] = np.where(small, lo[idx], eta_used)
        kl_lo[idx] = np.where(small, kl_lo[idx], kl)
        new_side = np.where(small, -1.0, 1.0)
        eta[idx] = _propose(method, eta_used, kl, eps[idx], lo[idx], hi[idx], kl_lo[idx],
                            kl_hi[idx], (prev[0][idx], prev[1][idx]), side[idx] == new_side, small)
        side[idx] = new_side
        prev[0][idx], prev[1][idx] = eta_used, kl
        if done.all():
            break
    if not done.all():
        warnings.warn(f"eta search did not converge for {int((~done).sum())} condition(s) in "
                      f"{iterations} iterations; keeping the last solution", RuntimeWarning)
    return result, eta_sol, kl_out, done
