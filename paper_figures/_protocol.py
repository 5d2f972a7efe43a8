"""The evaluation protocol shared by the figures (docs/method.md (23)–(24), (92)–8.2).

Baselines are tuned on the *training* functions (mean meta-loss over the test horizon,
the grids of docs/method.md (23)–(24)); every method then runs from the fixed starting points of the held-out test
functions for ``steps`` iterations; a learned optimizer acts with its deterministic mean.
"""
import functools
import warnings

import numpy as np

from lto_ref import metrics, objectives, optimizers, rollout
from paper_figures import _train

__all__ = ["BASELINES", "LABELS", "COLOURS", "tune_baselines", "run_methods", "diverged",
           "mean_curves", "learned_against_baselines", "check_config"]

BASELINES = ("gd", "momentum", "conjugate_gradient", "lbfgs")    # paper 1's comparison
LABELS = {"gd": "gradient descent", "momentum": "momentum", "conjugate_gradient":
          "conjugate gradient", "lbfgs": "L-BFGS", "learned": "predicted step descent",
          "supervised": "supervised (backprop) optimizer"}
COLOURS = {"gd": "tab:blue", "momentum": "tab:orange", "conjugate_gradient": "tab:green",
           "lbfgs": "tab:purple", "learned": "tab:red", "supervised": "tab:brown"}


def check_config(cfg, **minimum):
    """ValueError naming the first out-of-range setting of a figure's configuration: ``family``
    must be an ``objectives`` family, each field of ``minimum`` an integer >= its minimum."""
    if cfg.family not in objectives.FAMILIES:
        raise ValueError(f"family must be one of {', '.join(objectives.FAMILIES)}, "
                         f"got {cfg.family!r}")
    for name, low in minimum.items():
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def tune_baselines(family, problems, x0, steps, *, names=BASELINES, criterion="meta_loss",
                   map_fn=map):
    """{name: best hyperparameters} tuned on the training functions (docs/method.md (23)–(24)).

    Grid-edge notices are collected instead of printed: returns (best, notes).
    """
    objective = functools.partial(family.loss, problems=problems)
    best, notes = {}, []
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            best[name], _ = rollout.tune(functools.partial(optimizers.by_name, name),
                                         rollout.default_grid(name), objective, x0, steps,
                                         criterion=criterion, map_fn=map_fn)
        notes += [f"{name}: {w.message}" for w in caught]
    return best, notes


def learned_against_baselines(cfg, ctx, tune_steps, criterion="meta_loss", *,
                              split=objectives.TEST, n=None):
    """The paper-1 protocol for ``cfg`` (family, n_train, n_test, steps, gps, seed, stabilise):
    traces of the tuned baselines (``criterion`` over ``tune_steps``) and the GPS policy on the
    first n functions of ``split`` (default: the cfg.n_test test functions).

    Returns (traces {name: Trace}, x0 of those functions, tuned settings, grid notes, GPS log).
    """
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    test, x0_test = objectives.split_data(family, split, cfg.n_test if n is None else n)
    tuned, notes = tune_baselines(family, train, x0, tune_steps, criterion=criterion)
    pol, log = _train.gps_policy(family, train, x0, cfg.gps, cfg.seed, ctx,
                                 stabilised=cfg.stabilise)
    methods = {name: optimizers.by_name(name, **tuned[name]) for name in BASELINES}
    methods["learned"] = optimizers.learned(pol, H=cfg.gps.H)
    return run_methods(family, test, x0_test, methods, cfg.steps), x0_test, tuned, notes, log


def run_methods(family, problems, x0, methods, steps):
    """Traces of every method on the given functions: {name: rollout.Trace}.

    methods : {name: optimizers.Optimizer}
    """
    objective = functools.partial(family.loss, problems=problems)
    with np.errstate(all="ignore"):
        return {name: rollout.run(opt, objective, x0, steps) for name, opt in methods.items()}


diverged = metrics.diverged   # docs/method.md (92)


def mean_curves(curves):
    """F̄_a(i): mean over functions after replacing non-finite values (docs/method.md (94)).

    curves : {name: (T+1, n)}  ->  ({name: (T+1,)}, number of replaced values)
    """
    clean, n_replaced = metrics.sanitize(curves)
    return {k: v.mean(axis=-1) for k, v in clean.items()}, n_replaced
