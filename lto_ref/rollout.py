"""Algorithm 1 of paper 1: run an optimizer for a fixed number of steps; meta-loss; tuning.

    x_0 given;  for t = 0 … T−1:  Δx_t, state ← π(state, x_t, f(x_t), ∇f(x_t));  x_{t+1} = x_t + Δx_t

The stopping condition of Algorithm 1 is dropped: every run takes exactly ``steps`` steps
(docs/method.md (11)). All problems of a batch advance together; a problem whose iterate, objective or gradient
turns non-finite is frozen at its last finite iterate and flagged, the others are unaffected.
"""
import warnings
from typing import NamedTuple

import numpy as onp

from lto_ref.autodiff import value_and_grad

__all__ = ["Trace", "MinibatchTrace", "run", "run_minibatch", "meta_loss", "gps_cost", "tune",
           "tune_minibatch", "default_grid", "minibatch_grid", "LR_GRID", "MASS_GRID",
           "MINIBATCH_LR_GRID", "MINIBATCH_MASS_GRID"]

LR_GRID = tuple(10.0 ** (-3 + k / 3) for k in range(13))  # γ ∈ {1e-3, …, 10} (docs/method.md (24))
MASS_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)               # momentum μ (docs/method.md (24))
# paper 2's minibatch baselines (docs/method.md §12): γ ∈ {1e-4, 3e-4, …, 1, 3}
MINIBATCH_LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
MINIBATCH_MASS_GRID = (0.5, 0.9, 0.95, 0.99)


class Trace(NamedTuple):
    """Iterates of a run, time-major; index t is iteration t (t = 0 is the starting point)."""
    xs: onp.ndarray        # (T+1, n, d) iterates x_0 … x_T
    fs: onp.ndarray        # (T+1, n) objective values f(x_t)
    gs: onp.ndarray        # (T+1, n, d) gradients ∇f(x_t)
    diverged: onp.ndarray  # (n,) bool: f, ∇f or x became non-finite; frozen from then on


def _check_run_args(x0, steps):
    x0 = onp.asarray(x0, dtype=float)
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, d), got {x0.shape}")
    if not onp.all(onp.isfinite(x0)):
        raise ValueError("x0 must be finite")
    if not isinstance(steps, (int, onp.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    return x0


def _finite_rows(x, f, g):
    """(n,) True where x, f and g are all finite."""
    return onp.isfinite(f) & onp.all(onp.isfinite(x), axis=1) & onp.all(onp.isfinite(g), axis=1)


def run(optimizer, objective, x0, steps, *, callback=None):
    """Run ``optimizer`` on a batch of objectives for ``steps`` steps (paper 1, Algorithm 1).

    Parameters
    ----------
    optimizer : optimizers.Optimizer
    objective : callable, x (n, d) -> f (n,), differentiable by autograd,
        e.g. ``functools.partial(family.loss, problems=problems)``
    x0 : (n, d) starting points
    steps : int >= 0, the horizon T
    callback : optional ``callback(t, x)`` after each step (progress reporting)

    Returns
    -------
    Trace with xs (T+1, n, d), fs (T+1, n), gs (T+1, n, d), diverged (n,)

    Raises
    ------
    ValueError : x0 not (n, d) or not finite; steps not an integer >= 0; objective not (n,)-valued.
    """
    x = _check_run_args(x0, steps)
    with onp.errstate(all="ignore"):  # non-finite rows are detected below, not warned about
        f, g = value_and_grad(objective, x)
        ok = _finite_rows(x, f, g)
        diverged = ~ok
        state = optimizer.init(x)
        xs, fs, gs = [x], [f], [g]
        for t in range(steps):
            dx, state = optimizer.step(state, x, f, g)
            x_new = x + onp.where(diverged[:, None], 0.0, dx)
            f_new, g_new = value_and_grad(objective, x_new)
            ok = ~diverged & _finite_rows(x_new, f_new, g_new)
            diverged = ~ok
            x = onp.where(ok[:, None], x_new, x)
            f = onp.where(ok, f_new, f)
            g = onp.where(ok[:, None], g_new, g)
            xs.append(x), fs.append(f), gs.append(g)
            if callback is not None:
                callback(t, x)
    return Trace(xs=onp.stack(xs), fs=onp.stack(fs), gs=onp.stack(gs), diverged=diverged)


class MinibatchTrace(NamedTuple):
    """A run on a minibatch stream: the true objective at recorded iterations, time-major."""
    its: onp.ndarray       # (K,) iterations recorded: 0, k, 2k, …, and T
    fs: onp.ndarray        # (K, n) true objective f(x_t) at those iterations
    fhat: onp.ndarray      # (T, n) minibatch objective f̂_t(x_t) the optimizer saw
    x: onp.ndarray         # (n, P) the last iterate x_T
    diverged: onp.ndarray  # (n,) bool: f̂, ∇f̂ or x became non-finite; frozen from then on
    stopped: onp.ndarray   # (n,) int: the step t whose f̂, ∇f̂ or x_{t+1} was non-finite (T if
                           # none), so a run of the first T' ≤ T steps diverged iff stopped < T'


def run_minibatch(optimizer, objective, batches, true_objective, x0, *, every=1):
    """Algorithm 1 on a minibatch stream: step t sees f̂_t and ∇f̂_t on ``batches[t]``.

    Parameters
    ----------
    optimizer : optimizers.Optimizer
    objective : (x (n, P), batch (B,) int) -> f̂ (n,), differentiable by autograd
    batches : (T, B) int, the minibatch stream (``nets.minibatches``), shared by every method
    true_objective : x (n, P) -> f (n,), recorded at t = 0, every ``every`` steps and at T
    x0 : (n, P) starting points

    Returns
    -------
    MinibatchTrace
    """
    x = _check_run_args(x0, len(batches))
    if not isinstance(every, (int, onp.integer)) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    T = len(batches)
    its = onp.unique(onp.append(onp.arange(0, T + 1, every), T))
    state, diverged, fs, fhat = optimizer.init(x), onp.zeros(len(x), dtype=bool), [], []
    stopped = onp.full(len(x), T)
    with onp.errstate(all="ignore"):
        for t in range(T + 1):
            if t in its:
                fs.append(onp.asarray(true_objective(x), dtype=float))
            if t == T:
                break
            f, g = value_and_grad(lambda z: objective(z, batches[t]), x)
            diverged |= ~_finite_rows(x, f, g)
            dx, state = optimizer.step(state, x, f, g)
            x_new = x + onp.where(diverged[:, None], 0.0, dx)
            diverged |= ~onp.all(onp.isfinite(x_new), axis=1)
            x = onp.where(diverged[:, None], x, x_new)
            stopped = onp.where(diverged & (stopped == T), t, stopped)
            fhat.append(f)
    return MinibatchTrace(its=its, fs=onp.stack(fs), fhat=onp.stack(fhat) if fhat else
                          onp.zeros((0, len(x))), x=x, diverged=diverged, stopped=stopped)


def _fvals(trace_or_fs):
    fs = trace_or_fs.fs if isinstance(trace_or_fs, Trace) else onp.asarray(trace_or_fs)
    if fs.ndim != 2 or fs.shape[0] < 1:
        raise ValueError(f"fs must have shape (T+1, n), got {fs.shape}")
    return fs


def meta_loss(trace):
    """Meta-loss L = Σ_{t=1}^{T} f(x_t) per problem (docs/method.md (12); paper 2, eq. 1).

    Parameters
    ----------
    trace : Trace, or its ``fs`` array (T+1, n)

    Returns
    -------
    (n,) -- f(x_0), common to every method, is excluded.
    """
    return _fvals(trace)[1:].sum(axis=0)


def gps_cost(trace):
    """The GPS trajectory cost C = Σ_{t=0}^{T−1} f(x_t) = f(x_0) + L − f(x_T), (n,) (docs/method.md (13)–(14))."""
    return _fvals(trace)[:-1].sum(axis=0)


def default_grid(name):
    """The tuning grid of baseline ``name`` (docs/method.md (24)): a list of hyperparameter dicts.

    γ ∈ {10^(−3+k/3) : k = 0..12}; momentum also μ ∈ MASS_GRID (γ-major order, 78 settings).
    """
    if name == "momentum":
        return [{"lr": lr, "mass": mass} for lr in LR_GRID for mass in MASS_GRID]
    if name in ("gd", "conjugate_gradient", "lbfgs", "adam", "adagrad", "rmsprop"):
        return [{"lr": lr} for lr in LR_GRID]
    raise ValueError(f"name must be a baseline name, got {name!r}")


def minibatch_grid(name):
    """The tuning grid of baseline ``name`` on paper 2's minibatch objectives: γ over
    MINIBATCH_LR_GRID; momentum also μ ∈ MINIBATCH_MASS_GRID; RMSprop with decay 0.9."""
    if name == "momentum":
        return [{"lr": lr, "mass": m} for lr in MINIBATCH_LR_GRID for m in MINIBATCH_MASS_GRID]
    if name == "rmsprop":
        return [{"lr": lr, "decay": 0.9} for lr in MINIBATCH_LR_GRID]
    if name in ("gd", "conjugate_gradient", "lbfgs", "adam", "adagrad"):
        return [{"lr": lr} for lr in MINIBATCH_LR_GRID]
    raise ValueError(f"name must be a baseline name, got {name!r}")


def _score(args):
    """Score (23) of one setting, or with criterion "final" the mean final objective (23b); +inf
    if any problem diverged (module level: picklable)."""
    make_optimizer, params, objective, x0, steps, criterion = args
    trace = run(make_optimizer(**params), objective, x0, steps)
    if trace.diverged.any():
        return float("inf")
    return float(trace.fs[-1].mean() if criterion == "final" else meta_loss(trace).mean())


def tune(make_optimizer, grid, objective, x0, steps=100, *, criterion="meta_loss", map_fn=map):
    """Grid search of a baseline's hyperparameters by mean meta-loss (docs/method.md (23)–(24)).

    Parameters
    ----------
    make_optimizer : factory, e.g. ``optimizers.momentum``
    grid : non-empty list of keyword dicts, e.g. ``default_grid("momentum")``
    objective, x0 : the *training* problems, as in ``run``
    steps : horizon of the score (the test horizon, 100 by default)
    criterion : "meta_loss" (23) or "final" (23b), the mean f(x_steps); either way a setting
        with a diverged (non-finite) run scores +inf
    map_fn : ``map`` or an executor's ``map`` (arguments must then be picklable)

    Returns
    -------
    best : dict, the first setting with the lowest score (a diverged run scores +inf)
    table : list of (params, score) in grid order

    Warns when the best value of a tuned hyperparameter lies on the edge of its grid.
    """
    grid = list(grid)
    if not grid:
        raise ValueError("grid must contain at least one setting")
    if criterion not in ("meta_loss", "final"):
        raise ValueError(f"criterion must be 'meta_loss' or 'final', got {criterion!r}")
    scores = list(map_fn(_score, [(make_optimizer, p, objective, x0, steps, criterion)
                                  for p in grid]))
    return _select(grid, scores)


def _select(grid, scores):
    """(best setting, table): the first minimum, with warnings for a diverged or edge choice."""
    best_i = int(onp.argmin(scores))  # first minimum: ties go to grid order
    if not onp.isfinite(scores[best_i]):
        warnings.warn("every setting of the grid diverged; returning the first", RuntimeWarning)
    best = dict(grid[best_i])
    for key in best:
        values = sorted({p[key] for p in grid})
        if len(values) > 1 and best[key] in (values[0], values[-1]):
            warnings.warn(f"tuned {key}={best[key]} lies on the edge of its grid", RuntimeWarning)
    return best, list(zip(grid, scores))


def _score_minibatch(args):
    """Mean true objective over iterations ≥ 1 of one setting; +inf if any run diverged."""
    make_optimizer, params, objective, batches, true_objective, x0, every = args
    trace = run_minibatch(make_optimizer(**params), objective, batches, true_objective, x0,
                          every=every)
    if trace.diverged.any() or not onp.all(onp.isfinite(trace.fs)):
        return float("inf")
    return float(trace.fs[1:].mean())


def tune_minibatch(make_optimizer, grid, objective, batches, true_objective, x0, *, every=1,
                   map_fn=map):
    """Grid search on a minibatch stream by the mean true objective over the run (its AUC).

    Arguments as ``run_minibatch`` and ``tune``; returns (best setting, [(setting, score)]).
    """
    grid = list(grid)
    if not grid:
        raise ValueError("grid must contain at least one setting")
    scores = list(map_fn(_score_minibatch, [(make_optimizer, p, objective, batches,
                                             true_objective, x0, every) for p in grid]))
    return _select(grid, scores)
