"""How a baseline's behaviour depends on its step size: divergence share and final objective.

Paper 1 reports that CG and L-BFGS diverge on robust regression and the neural net. Whether they
do depends on the step size the tuning picks: scoring a setting under which any training run
turns non-finite as +∞ (docs/method.md (23)) picks the largest step that never diverges there,
while scoring by the final objective at the training horizon (23b, the released code's
criterion) may pick one that diverges later. This module runs a baseline at every step size of
its grid on a set of functions, so a reader can see where along the grid divergence begins.
"""
import functools
from typing import NamedTuple

import numpy as np

from lto_ref import metrics, optimizers, rollout

__all__ = ["Sensitivity", "sweep"]


class Sensitivity(NamedTuple):
    """One baseline over its step-size grid, on n functions."""
    lr: np.ndarray           # (K,) step sizes γ, ascending
    diverged: np.ndarray     # (K,) share of functions whose run diverged (docs/method.md (92))
    final_mean: np.ndarray   # (K,) mean f(x_T) over the functions that did not diverge (nan if none)
    final_median: np.ndarray  # (K,) median f(x_T) over all functions (a diverged run counts +∞)


def sweep(name, objective, x0, steps, *, lrs=rollout.LR_GRID, fixed=None, map_fn=map):
    """Run baseline ``name`` at every step size γ in ``lrs`` (other settings ``fixed``).

    Parameters
    ----------
    name : a baseline of ``optimizers.by_name`` ("gd", "momentum", "conjugate_gradient", …)
    objective : x (n, d) -> (n,);  x0 : (n, d) starting points;  steps : horizon T >= 1
    lrs : step sizes (default: the tuning grid of docs/method.md (24));  fixed : other keyword
        settings, e.g. {"mass": 0.9} for momentum;  map_fn : ``map`` or an executor's map

    Returns
    -------
    Sensitivity, rows in the order of ascending γ

    Raises
    ------
    ValueError : empty or non-positive ``lrs``; ``fixed`` setting the step size.
    """
    lrs = np.sort(np.asarray(lrs, dtype=float).ravel())
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"lrs must be non-empty and positive, got {lrs}")
    fixed = dict(fixed or {})
    if "lr" in fixed:
        raise ValueError("fixed must not set lr: the sweep varies it")
    x0 = np.asarray(x0, dtype=float)
    rows = list(map_fn(_one, [(name, float(lr), fixed, objective, x0, steps) for lr in lrs]))
    return Sensitivity(lr=lrs, **{k: np.array([r[k] for r in rows]) for k in
                                  ("diverged", "final_mean", "final_median")})


def _one(args):
    """Diverged share, mean and median final objective of one step size (picklable)."""
    name, lr, fixed, objective, x0, steps = args
    with np.errstate(all="ignore"):
        trace = rollout.run(optimizers.by_name(name, lr=lr, **fixed), objective, x0, steps)
    div = metrics.diverged(trace, x0)
    final = trace.fs[-1]
    return {"diverged": float(np.mean(div)),
            "final_mean": float(np.mean(final[~div])) if np.any(~div) else float("nan"),
            "final_median": float(np.median(np.where(div, np.inf, final)))}


def sweep_family(family, problems, x0, steps, tuned, *, names, map_fn=map):
    """``sweep`` of each baseline in ``names`` on these functions, its other settings as tuned.

    tuned : {name: tuned settings} (the mass of momentum is kept);  returns {name: Sensitivity}
    """
    objective = functools.partial(family.loss, problems=problems)
    return {n: sweep(n, objective, x0, steps, map_fn=map_fn,
                     fixed={k: v for k, v in tuned[n].items() if k != "lr"}) for n in names}
