"""scipy line-search references: CG and L-BFGS-B with every evaluation logged (docs/method.md §4).

The fixed-step baselines spend one (f, g) evaluation per iteration; a line-search method spends
several per iteration. To compare them per unit of work, every (f, g) call scipy makes is one
"iteration" here::

    xs[k] = k-th point scipy evaluated (xs[0] = x0),  fs[k] = f(xs[k]),  k = 0..evals

scipy runs per problem with tolerances ≈ 0 and is cut off after ``evals + 1`` evaluations; a run
that stops earlier holds its last evaluated point and value. ``best_fs`` is the running minimum.
Supplementary figure only; these curves are not part of the margin of victory or win fraction.
"""
from typing import NamedTuple

import numpy as np
from autograd import value_and_grad
from scipy.optimize import minimize

from lto_ref.objectives import subset

__all__ = ["ReferenceTrace", "scipy_trace", "METHODS"]

METHODS = ("CG", "L-BFGS-B")


class ReferenceTrace(NamedTuple):
    """Logged evaluations of a scipy reference run, time-major."""
    xs: np.ndarray       # (evals+1, n, d) evaluated points, xs[0] = x0; held after an early stop
    fs: np.ndarray       # (evals+1, n) f(xs[k]); held after an early stop
    best_fs: np.ndarray  # (evals+1, n) running minimum of fs (NaN ignored)
    n_evals: np.ndarray  # (n,) int, evaluations scipy actually made, <= evals + 1


class _Enough(Exception):
    """Raised from the objective once evals + 1 evaluations are logged, to stop scipy."""


def _options(method, evals, gtol, ftol, maxcor):
    """scipy options with ≈ 0 tolerances; the iteration caps only back up the _Enough cut-off."""
    if method == "CG":  # each iteration costs >= 1 evaluation, so this cap never binds first
        return {"gtol": gtol, "maxiter": evals + 1}
    return {"gtol": gtol, "ftol": ftol, "maxcor": maxcor, "maxiter": evals + 1,
            "maxfun": evals + 1}  # L-BFGS-B checks maxfun only between iterations


def _run_one(method, family_loss, problem, x0_1, evals, options):
    """Points (k, d) and values (k,) of the first k <= evals + 1 evaluations on one problem."""
    f_and_g = value_and_grad(lambda x: family_loss(x[None, :], problem)[0])  # (d,) -> (), (d,)
    xs, fs = [], []

    def fun(x):
        f, g = f_and_g(x)
        xs.append(np.array(x, dtype=np.float64))  # copy: never keep a buffer scipy may reuse
        fs.append(float(f))
        if len(fs) == evals + 1:
            raise _Enough
        return float(f), np.asarray(g, dtype=np.float64)

    try:
        minimize(fun, x0_1, jac=True, method=method, options=options)
    except _Enough:
        pass
    return np.stack(xs), np.array(fs)


def _hold(a, length):
    """a (k, ...) padded to (length, ...) by repeating its last row."""
    return np.concatenate([a, np.repeat(a[-1:], length - a.shape[0], axis=0)])


def _validate(method, family_loss, problems, x0, evals):
    """x0 as float64 (n, d), after checking every argument against the others."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(evals, bool) or not isinstance(evals, (int, np.integer)) or evals < 0:
        raise ValueError(f"evals must be an integer >= 0, got {evals!r}")
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n, d) with n >= 1, got {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 must be finite")
    n_problems = {np.shape(field)[0] for field in problems}
    if n_problems != {x0.shape[0]}:
        raise ValueError(f"x0 must have one row per problem, n = {sorted(n_problems)}, "
                         f"got {x0.shape[0]}")
    try:  # the loss knows d; ask it once, so a mismatch is reported against x0
        family_loss(x0, problems)
    except ValueError as err:
        raise ValueError(f"x0 of shape {x0.shape} does not fit family_loss: {err}") from err
    return x0


def scipy_trace(method, family_loss, problems, x0, evals, *, gtol=1e-12, ftol=0.0, maxcor=10):
    """Run scipy's CG or L-BFGS-B on each problem and log every (f, g) evaluation (docs/method.md §4).

    Per problem i, ``minimize(fun, x0[i], jac=True, method=method)``, fun = (f_i, ∇f_i) by autograd;
    evaluation k is iteration k (xs[0] = x0), cut off after evals + 1 evaluations, held after.

    Parameters
    ----------
    method : {"CG", "L-BFGS-B"}
        Polak–Ribière CG with a Wolfe line search, or L-BFGS-B without bounds.
    family_loss : callable (x (n, d), problems) -> f (n,)
        A ``Family.loss``; problem i's loss depends only on row i of x.
    problems : NamedTuple of arrays with leading axis n
        The family data, e.g. from ``objectives.split_data``.
    x0 : array_like (n, d)
        Starting points.
    evals : int
        T_test, the number of evaluations after x0 (>= 0).
    gtol, ftol, maxcor : keyword-only
        Tolerances ≈ 0 (ftol: L-BFGS-B only), so the budget decides the stop; L-BFGS-B memory m.

    Returns
    -------
    ReferenceTrace
        xs (evals+1, n, d), fs (evals+1, n), best_fs (evals+1, n), n_evals (n,).

    Raises
    ------
    ValueError
        For an unknown method, evals not an int >= 0, or x0 not finite (n, d) fitting the problems.
    """
    x0 = _validate(method, family_loss, problems, x0, evals)
    options = _options(method, evals, gtol, ftol, maxcor)
    runs = [_run_one(method, family_loss, subset(problems, [i]), x0[i], evals, options)
            for i in range(x0.shape[0])]                    # scipy is per problem (docs/method.md §4)
    xs = np.stack([_hold(x, evals + 1) for x, _ in runs], axis=1)        # (evals+1, n, d)
    fs = np.stack([_hold(f, evals + 1) for _, f in runs], axis=1)        # (evals+1, n)
    return ReferenceTrace(xs=xs, fs=fs, best_fs=np.fmin.accumulate(fs, axis=0),
                          n_evals=np.array([f.shape[0] for _, f in runs]))
