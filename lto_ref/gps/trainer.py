"""``train``: guided policy search from its initial controllers to the trained policy.

    policy, log = train(family, problems, x0, config=Config(), seed=0, *, map_fn=map,
                        checkpoint_dir=None, callback=None)

With ``checkpoint_dir`` the trainer state and the log so far are written after every iteration
(``io.save_tree``: .npz + .json, atomic, no pickle); a run restarted with the same arguments
resumes from the last complete iteration and ends with the policy an uninterrupted run produces
(iteration i always draws from ``SeedSequence([seed, i])``). The checkpoint holds only what the
next iterations use and is deleted when the run completes. The library never prints: progress
goes through ``callback(iteration, log_row)``.
"""
import json
import os
from typing import NamedTuple

import numpy as np

from lto_ref import io, policy as policy_lib
from lto_ref.gps import cost, dynamics, gmm, lingauss, sstep
from lto_ref.gps.config import Config, config_record
from lto_ref.gps.iteration import GPSState, LogRow, init_state, iteration

__all__ = ["GPSLog", "train", "loop", "stack_rows", "TYPES"]

TYPES = {cls.__name__: cls for cls in (GPSState, LogRow, lingauss.LinGauss, policy_lib.Policy,
                                       sstep.AdamState, dynamics.PriorState, gmm.GMM,
                                       dynamics.Dynamics, cost.QuadCost)}


class GPSLog(NamedTuple):
    """Per-iteration arrays of a GPS run (I iterations, M conditions), fields of ``LogRow``."""
    controller_cost: np.ndarray  # (I,) mean Σ_{t<T} f(x_t) of the iteration's samples
    policy_cost: np.ndarray      # (I,) same for the policy's own (deterministic) rollouts
    kl: np.ndarray               # (I, M) KL(p_new ‖ p̂) of the last C-step
    eta: np.ndarray              # (I, M)
    step_mult: np.ndarray        # (I, M)
    nu: np.ndarray               # (I, M) mean over t
    sstep_loss: np.ndarray       # (I,) mean minibatch loss of the last S-step
    diverged: np.ndarray         # (I,) samples frozen after a non-finite value
    seconds: np.ndarray          # (I,)
    select_cost: np.ndarray      # (I,) the policy's selection score (nan without selection)


def stack_rows(rows):
    """GPSLog of a list of LogRows (an empty log when there are none)."""
    return GPSLog(*(np.array([getattr(r, f) for r in rows]) for f in LogRow._fields))


def _identity(family, x0, cfg, seed):
    """What a checkpoint must match to be resumed: JSON-able description of the run."""
    return {"family": family.name, "dim": family.dim, "M": int(x0.shape[0]), "seed": int(seed),
            "x0_sum": float(np.sum(x0)), "config": json.loads(json.dumps(config_record(cfg)))}


def _check(family, problems, x0):
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 2 or x0.shape[1] != family.dim:
        raise ValueError(f"x0 must have shape (M, {family.dim}), got {x0.shape}")
    n = {np.shape(field)[0] for field in problems}
    if n != {x0.shape[0]}:
        raise ValueError(f"problems must hold M = {x0.shape[0]} functions, got {sorted(n)}")
    return x0


def _resume(path, ident, types):
    """(state, rows) of a matching checkpoint at ``path``, (None, []) if there is none."""
    if path is None or not os.path.exists(io.paths(path)[1]):
        return None, []
    (state, rows), meta = io.load_tree(path, types)
    if meta.get("run") != ident:
        raise ValueError(f"{io.paths(path)[1]}: checkpoint of a different run; use another "
                         f"checkpoint_dir or delete it")
    return state, list(rows)


def loop(init, step, iterations, path, ident, types, callback=None):
    """The checkpointed iteration loop shared by the trainers: (final state, [LogRow]).

    init() -> the iteration-0 state (called only without a matching checkpoint);
    step(state) -> (state, LogRow); path : checkpoint file (``io.save_tree``) or None, written
    after every iteration but the last and removed at the end; ident : JSON-able description
    a checkpoint must match; types : ``io.load_tree``'s record types.
    """
    state, rows = _resume(path, ident, types)
    if state is None:
        state = init()
    for i in range(state.iteration, iterations):
        state, row = step(state)
        rows.append(row)
        if path is not None and i + 1 < iterations:
            io.save_tree(path, (state, rows), {"run": ident})
        if callback is not None:
            callback(i, row)
    if path is not None:
        for file in io.paths(path):
            if os.path.exists(file):
                os.remove(file)
    return state, rows


def train(family, problems, x0, config=Config(), seed=0, *, map_fn=map, checkpoint_dir=None,
          callback=None):
    """Train the policy by guided policy search on the M training functions (docs/method.md §7).

    Parameters
    ----------
    family : objectives.Family;  problems : its data for M functions;  x0 : (M, d)
    config : Config;  seed : int
    map_fn : ``map`` or an executor's ``map`` for the per-condition work (same result)
    checkpoint_dir : folder for the checkpoint (resumed when it matches this run), or None
    callback : optional ``callback(iteration, LogRow)`` after each iteration

    Returns
    -------
    policy : policy.Policy, usable with ``optimizers.learned(policy, H=config.H)``: the last
        iteration's, or with ``config.select_steps`` the one with the lowest ``log.select_cost``
    log : GPSLog, arrays indexed by iteration

    Raises
    ------
    ValueError : x0 or problems of the wrong shape; a checkpoint of a different run.
    """
    x0 = _check(family, problems, x0)
    ident = _identity(family, x0, config, seed)
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "gps_checkpoint")
    state, rows = loop(lambda: init_state(family, problems, x0, config, seed),
                       lambda st: iteration(st, family, problems, x0, config, seed,
                                            map_fn=map_fn),
                       config.iterations, path, ident, TYPES, callback)
    return (state.selected if config.select_steps else state.policy), stack_rows(rows)
