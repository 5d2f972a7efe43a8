"""``train``: the GPS driver with progress, parallel map and checkpoint/resume (SPEC §6).

    policy, log = train(family, problems, x0, config=Config(), seed=0, map_fn=map,
                        checkpoint_dir=None, progress=True)

With ``checkpoint_dir`` the whole trainer state and the log so far are written after every
iteration (``io.save_tree``: .npz + .json, atomic, no pickle); a run restarted with the same
arguments resumes from the last complete iteration and ends with the policy an uninterrupted run
produces (iteration i always draws from ``SeedSequence([seed, i])``).
"""
import json
import os
import sys
import time
from typing import NamedTuple

import numpy as np

from lto_ref import dynamics, gmm, io, lingauss, lqr, policy as policy_lib, sstep
from lto_ref import stabilise
from lto_ref.gps import Config, GPSState, LogRow, config_record, init_state, iteration

__all__ = ["GPSLog", "train", "TYPES"]

TYPES = {cls.__name__: cls for cls in (GPSState, LogRow, lingauss.LinGauss, policy_lib.Policy,
                                       sstep.AdamState, dynamics.PriorState, gmm.GMM,
                                       lqr.Dynamics, lqr.QuadCost)}


class GPSLog(NamedTuple):
    """Per-iteration arrays of a GPS run (I iterations, M conditions)."""
    controller_cost: np.ndarray  # (I,) mean Σ_{t<T} f(x_t) of the controllers' samples
    policy_cost: np.ndarray      # (I,) same for the policy's own rollouts
    kl: np.ndarray               # (I, M)
    eta: np.ndarray              # (I, M)
    step_mult: np.ndarray        # (I, M)
    nu: np.ndarray               # (I, M)
    sstep_loss: np.ndarray       # (I,)
    diverged: np.ndarray         # (I,)
    seconds: np.ndarray          # (I,)


def _stack(rows):
    return GPSLog(*(np.array([getattr(r, f) for r in rows]) for f in LogRow._fields))


def _identity(family, x0, cfg, seed):
    """What a checkpoint must match to be resumed: JSON-able description of the run."""
    return {"family": family.name, "dim": family.dim, "M": int(x0.shape[0]), "seed": int(seed),
            "x0_sum": float(np.sum(x0)), "config": json.loads(json.dumps(
                config_record(cfg)))}


def _progress(i, first, row, cfg, start):
    elapsed = time.perf_counter() - start
    eta_s = elapsed / (i + 1 - first) * (cfg.iterations - i - 1)
    print(f"GPS {i + 1}/{cfg.iterations}: controllers {row.controller_cost:.3f}, policy "
          f"{row.policy_cost:.3f}, mean KL {np.mean(row.kl):.2f}, {row.seconds:.1f} s "
          f"(about {eta_s:.0f} s left)", file=sys.stderr, flush=True)


def train(family, problems, x0, config=Config(), seed=0, map_fn=map, checkpoint_dir=None,
          progress=True, callback=None):
    """Train the policy by guided policy search on the M training functions (SPEC §6).

    Parameters
    ----------
    family : objectives.Family;  problems : its data for M functions;  x0 : (M, d)
    config : Config;  seed : int;  map_fn : ``map`` or an executor's ``map`` (per-condition work)
    checkpoint_dir : folder for the checkpoint (resumed when it matches this run), or None
    progress : print one line per iteration with an estimate of the time left (stderr)
    callback : optional ``callback(i, LogRow)``

    Returns
    -------
    policy : policy_lib.Policy, usable with ``optimizers.learned(policy, H=config.H)``; with
        ``config.stabilise`` the last iteration's policy after ``stabilise.stabilise``
    log : GPSLog (the policy costs are those of the GPS iterations, before any projection)
    """
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 2 or x0.shape[1] != family.dim:
        raise ValueError(f"x0 must have shape (M, {family.dim}), got {x0.shape}")
    n = {np.shape(field)[0] for field in problems}
    if n != {x0.shape[0]}:
        raise ValueError(f"problems must hold M = {x0.shape[0]} functions, got {sorted(n)}")
    if config.stabilise and not config.symmetric:
        raise ValueError("config.stabilise=True needs config.symmetric=True (a reflection-odd "
                         "policy, μ(0) = 0)")
    ident = _identity(family, x0, config, seed)
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "gps_checkpoint")
    state, rows = None, []
    if path is not None and os.path.exists(io.paths(path)[1]):
        (state, rows), meta = io.load_tree(path, TYPES)
        if meta.get("run") != ident:
            raise ValueError(f"{io.paths(path)[1]}: checkpoint of a different run; use another "
                             f"checkpoint_dir or delete it")
        rows = list(rows)
    if state is None:
        state = init_state(family, problems, x0, config, seed)
    start, first = time.perf_counter(), state.iteration
    for i in range(first, config.iterations):
        state, row = iteration(state, family, problems, x0, config, seed, map_fn=map_fn)
        rows.append(row)
        if path is not None:
            io.save_tree(path, (state, rows), {"run": ident})
        if progress:
            _progress(i, first, row, config, start)
        if callback is not None:
            callback(i, row)
    policy = state.policy
    if config.stabilise:                 # deterministic: a resumed run repeats it identically
        t0 = time.perf_counter()
        policy, info = stabilise.stabilise(policy, family, problems, x0, H=config.H, h=config.h,
                                           T=config.T)
        if progress:
            r = info["r"]
            print(f"rest-stability projection: ρ > {r} on {np.sum(info['rho_before'] > r)} → "
                  f"{np.sum(info['rho_after'] > r)} of {x0.shape[0]} training functions "
                  f"(Hessians × {info['margin']}), {info['nit']} L-BFGS iterations, "
                  f"{time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return policy, _stack(rows)
