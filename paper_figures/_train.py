"""Meta-training for the figures, cached: GPS and supervised policies as .npz + .json files.

A trained policy is stored under ``<cache>/policies/<name>`` with its training log; a GPS run
checkpoints every iteration under ``<cache>/checkpoints/<name>`` (``gps_train.train``), so an
interrupted figure run resumes where it stopped. The file name carries a hash of everything the
result depends on (family, training functions, configuration, seed).
"""
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from typing import NamedTuple

import numpy as np

from lto_ref import gps as gps_lib, gps_train, io, policy as policy_lib, supervised

__all__ = ["Context", "gps_policy", "supervised_policy", "run_job"]


class Context(NamedTuple):
    """Where and how figures compute: cache folder, --retrain, the trainers' map_fn, progress."""
    cache: str
    retrain: bool = False
    map_fn: object = map
    progress: bool = True


def _name(kind, family, x0, cfg, seed):
    record = json.dumps({"kind": kind, "family": family.name, "x0": np.round(x0, 12).tolist(),
                         "config": gps_lib.config_record(cfg), "seed": seed}, sort_keys=True)
    return f"{kind}_{family.name}_{x0.shape[0]}_{hashlib.sha256(record.encode()).hexdigest()[:10]}"


def _load(path):
    """(policy, log arrays) of a finished training, or None."""
    if not os.path.exists(io.paths(path)[1]) or not os.path.exists(io.paths(path + "_log")[1]):
        return None
    try:
        pol, _ = policy_lib.load(path)
        log, _ = io.load_arrays(path + "_log")
    except ValueError:
        return None
    return pol, log


def gps_policy(family, problems, x0, cfg, seed, ctx):
    """The GPS-trained policy of these training functions: (Policy, {log field: array})."""
    name = _name("gps", family, x0, cfg, seed)
    path = os.path.join(ctx.cache, "policies", name)
    checkpoint = os.path.join(ctx.cache, "checkpoints", name)
    if ctx.retrain:
        shutil.rmtree(checkpoint, ignore_errors=True)
    elif (found := _load(path)) is not None:
        return found
    if ctx.progress:
        print(f"  GPS ({cfg.algorithm}) on {x0.shape[0]} {family.name} functions, "
              f"{cfg.iterations} iterations", file=sys.stderr, flush=True)
    pol, log = gps_train.train(family, problems, x0, cfg, seed=seed, map_fn=ctx.map_fn,
                               checkpoint_dir=checkpoint, progress=ctx.progress)
    arrays = {k: np.asarray(v, dtype=float) for k, v in log._asdict().items()}
    io.save_arrays(path + "_log", arrays, {"kind": "gps_log"})
    policy_lib.save(path, pol, family=family.name, method=f"gps-{cfg.algorithm}", seed=seed,
                    H=cfg.H)
    return pol, arrays


def supervised_policy(family, problems, x0, steps, iterations, cfg, seed, ctx):
    """The supervised (backprop-through-the-unroll) policy: (Policy, {log field: array})."""
    name = _name("sl", family, x0, dataclasses.replace(cfg), seed) + f"_{steps}_{iterations}"
    path = os.path.join(ctx.cache, "policies", name)
    if not ctx.retrain and (found := _load(path)) is not None:
        return found
    start = time.perf_counter()

    def report(i, J, grad_norm, skipped):
        if ctx.progress and ((i + 1) % 100 == 0 or i + 1 == iterations):
            left = (time.perf_counter() - start) / (i + 1) * (iterations - i - 1)
            print(f"  supervised {i + 1}/{iterations}: J {J:.4f} (about {left:.0f} s left)",
                  file=sys.stderr, flush=True)
    pol, log = supervised.train(family, problems, x0, steps=steps, iterations=iterations,
                                seed=seed, config=cfg, callback=report)
    arrays = {"J": np.asarray(log.J, dtype=float), "grad_norm": np.asarray(log.grad_norm, float),
              "skipped": np.asarray(log.skipped, dtype=float)}
    io.save_arrays(path + "_log", arrays, {"kind": "supervised_log",
                                           "best_iteration": int(log.best_iteration),
                                           "aborted": bool(log.aborted)})
    policy_lib.save(path, pol, family=family.name, method="supervised", seed=seed, H=cfg.H)
    return pol, arrays


def run_job(job):
    """Train one policy into the cache: job = ("gps" | "sl", ctx, family name, n_train, *args).

    Module level and picklable, so independent trainings can run in a process pool.
    """
    from lto_ref import objectives
    kind, ctx, family_name, n_train, *args = job
    family = objectives.family_by_name(family_name)
    train, x0 = objectives.split_data(family, objectives.TRAIN, n_train)
    if kind == "gps":
        gps_policy(family, train, x0, *args, ctx)
    else:
        supervised_policy(family, train, x0, *args, ctx)
    return kind, family_name
