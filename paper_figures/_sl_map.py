"""The supervised learner's overfitting map, cell by cell (``python -m paper_figures.sl_map``).

A cell is the plain supervised learner (``supervised.Config()`` but for the horizon T and the
iteration cap: full feature gradients, the blog's description) trained on the first n_train
training functions of a family until ``supervised.plateaued`` (chunk, tol) or the cap, then run
from the starting points of its training functions and of the first n_val validation functions
(docs/method.md (10), split 2; never the test functions the figures report). At iterations T,
100 and 4T it gives the share of runs that *diverge* (docs/method.md (92)) and that *rise*
(``sl_vs_rl.shares``: f more than 10⁻³ above the best value within 0..T, or non-finite).
GPS's policy of a figure is read from the cache (``_train.gps_policy``), never trained here.
"""
import dataclasses
import time

import numpy as np

from lto_ref import objectives, optimizers, supervised
from paper_figures import _cache, _protocol, _train, sl_vs_rl

__all__ = ["HORIZONS", "Cell", "iteration", "horizon_shares", "cell_result", "run_cell",
           "gps_result", "gap"]

HORIZONS = ("T", "100", "4T")     # where the shares are read, in iterations of the test runs
SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the map: its training and evaluation settings (the cache key)."""
    family: str
    n_train: int
    sl: supervised.Config          # T is the cell's horizon, iterations the cap
    plateau: tuple = (100, 0.005)  # (chunk, tol) of supervised.plateaued
    n_val: int = 100
    seed: int = 0

    def __post_init__(self):
        _protocol.check_config(self, n_train=1, n_val=1, seed=0)
        if not isinstance(self.plateau, tuple) or len(self.plateau) != 2:
            raise ValueError(f"plateau must be (chunk, tol), got {self.plateau!r}")
        supervised.plateaued([], *self.plateau)        # ValueError for a bad chunk or tol

    @property
    def name(self):
        return f"sl_map_{self.family}_{self.n_train}_{self.sl.T}"


def iteration(label, T):
    """The iteration a horizon label of ``HORIZONS`` stands for (training horizon T)."""
    return {"T": T, "100": 100, "4T": 4 * T}[label]


def horizon_shares(family, problems, x0, opt, T):
    """{label: {"diverged", "rising"}} of ``opt`` run from x0 on these functions, for each label
    of ``HORIZONS``: the shares (in [0, 1]) of runs diverged (92) and rising at that iteration."""
    steps = {label: iteration(label, T) for label in HORIZONS}
    runs = {k: _protocol.run_methods(family, problems, x0, {"m": opt}, k)["m"]
            for k in sorted(set(steps.values()) | {T})}
    within = _protocol.diverged(runs[T], x0)
    out = {}
    for label, k in steps.items():
        s = sl_vs_rl.shares(runs[k].fs, within, _protocol.diverged(runs[k], x0), T)
        out[label] = {"diverged": s["diverged_end"], "rising": s["rising"]}
    return out


def _evaluate(family, opt, n_train, n_val, T):
    """{"train" | "validation": horizon_shares} on the n_train training functions and the n_val
    validation functions."""
    out = {}
    for split, which, n in (("train", objectives.TRAIN, n_train),
                            ("validation", objectives.VALIDATION, n_val)):
        problems, x0 = objectives.split_data(family, which, n)
        out[split] = horizon_shares(family, problems, x0, opt, T)
    return out


def _stopped(J, cell):
    """Why training ended: "plateau" (converged), "cap" (iterations used up) or "aborted"
    (``supervised.Config.max_skips`` non-finite iterations in a row)."""
    if supervised.plateaued(J, *cell.plateau):
        return "plateau"
    return "cap" if len(J) == cell.sl.iterations else "aborted"


def cell_result(cell, ctx):
    """Train (or load) the cell's policy and evaluate it: {"arrays": {"J"}, "meta": numbers}."""
    family = objectives.family_by_name(cell.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cell.n_train)
    start = time.perf_counter()
    pol, log = _train.supervised_policy(family, train, x0, cell.sl, cell.seed, ctx,
                                        plateau=cell.plateau)
    seconds = time.perf_counter() - start
    J = np.asarray(log["J"], dtype=float)
    finite = J[np.isfinite(J)]
    shares = _evaluate(family, optimizers.learned(pol, H=cell.sl.H), cell.n_train, cell.n_val,
                       cell.sl.T)
    meta = {"family": cell.family, "n_train": cell.n_train, "T": cell.sl.T,
            "at": {label: iteration(label, cell.sl.T) for label in HORIZONS},
            "iterations": int(J.size), "stopped": _stopped(J, cell),
            "J_final": float(finite[-1]) if finite.size else None,
            "train_seconds": round(seconds, 1), **shares}
    return {"arrays": {"J": J}, "meta": meta}


def run_cell(job):
    """(cell, ctx) -> (the cell's meta, whether it was read from the cache), cached under
    ``ctx.cache`` (``_cache.load_or_compute``). Module level and picklable, for a process pool."""
    cell, ctx = job
    result, cached = _cache.load_or_compute(ctx.cache, cell.name, cell,
                                            lambda c: cell_result(c, ctx), retrain=ctx.retrain)
    return result["meta"], cached


def gps_result(cfg, ctx, n_val):
    """A paper-1 figure's GPS policy (its ``cfg``, from the cache only) on its training
    functions and n_val validation functions, as ``cell_result``'s meta; None when the policy
    is not in ``ctx.cache``."""
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    try:
        pol, _ = _train.gps_policy(family, train, x0, cfg.gps, cfg.seed,
                                   ctx._replace(load_only=True, retrain=False),
                                   stabilised=cfg.stabilise)
    except _train.NotCached:
        return None
    T = cfg.gps.T
    shares = _evaluate(family, optimizers.learned(pol, H=cfg.gps.H), cfg.n_train, n_val, T)
    return {"family": cfg.family, "n_train": cfg.n_train, "T": T, "stabilised": cfg.stabilise,
            "at": {label: iteration(label, T) for label in HORIZONS}, **shares}


def gap(meta, label, measure="diverged"):
    """Validation minus training share of ``measure`` at horizon ``label`` of a cell's meta."""
    return meta["validation"][label][measure] - meta["train"][label][measure]
