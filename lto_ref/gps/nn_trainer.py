"""``train``: paper 2's meta-training of the coordinate-wise LSTM optimizer by guided policy
search on one net's training objective (docs/method.md §13).

    policy, log = train(net, data, x0, config=coordinatewise.Config(), seed=0, *, map_fn=map,
                        checkpoint_dir=None, callback=None)

The first controllers step along the normalised average gradient (docs/method.md (122)) with
γ per group and step fitted to ``config.teacher``'s steps (``fit_gains``), or else the γ of
``tune_gamma`` over ``config.gamma_grid`` (``config.init_gamma`` if the grid is empty); each
iteration is ``coordinatewise.iteration_step``. With
``checkpoint_dir`` the state and log are written after every iteration (``io.save_tree``) and a
restarted run resumes from the last complete iteration with the result an uninterrupted run
gives; the checkpoint is removed at the end. Progress goes through ``callback(i, LogRow)``.

The policy returned is, with ``config.keep == "best"``, that of the iteration with the lowest
``log.policy_cost`` (Σ_t f of the policy on that iteration's training minibatches; its S-steps
are noisy from one iteration to the next), or with ``config.select_runs`` > 0 the lowest
``log.select_cost`` (the mean over that many runs from fresh x⁽⁰⁾ and streams,
``coordinatewise.select_cost``); with "last" the final one.
"""
import functools
import hashlib
import json
import os

from typing import NamedTuple

import numpy as np

from lto_ref import autodiff, lstm_policy, nets, nn_features, optimizers
from lto_ref.gps import coordinates, coordinatewise, cost, dynamics, gmm, lingauss, trainer
from lto_ref.gps.config import config_record
from lto_ref.gps.iteration import GPSState, LogRow

__all__ = ["Tracked", "tune_gamma", "fit_gains", "fit_teacher", "first_controllers", "train",
           "TYPES"]


class Tracked(NamedTuple):
    """The trainer's state: the GPS state and the policy of the lowest logged policy cost."""
    iteration: int
    gps: GPSState
    best: object              # lstm_policy.Policy, or None before the first iteration
    best_cost: object         # float, or None

TYPES = {cls.__name__: cls for cls in (Tracked, GPSState, LogRow, lingauss.LinGauss, lstm_policy.Policy,
                                       optimizers.AdamState, dynamics.PriorState, gmm.GMM,
                                       dynamics.Dynamics, cost.QuadCost)}


def tune_gamma(net, data, x0, cfg, seed, grid):
    """(best γ, final true objectives (len(grid),)): the noise-free first controllers
    u = −γ s[PHI2_NOW] (docs/method.md (122)) with each γ of the grid for cfg.T steps from x0 on
    one minibatch stream (``SeedSequence([seed, 2**31 + 1])``); the best ends lowest."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or len(grid) == 0 or not np.all((grid > 0) & np.isfinite(grid)):
        raise ValueError(f"grid must be a non-empty sequence of finite values > 0, got {grid}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 1]))
    batches = nets.minibatches(rng, len(data[1]), cfg.batch, cfg.T + 1)
    picks = coordinates.pick(rng, lstm_policy.ranges(net), len(grid), 1)

    def act(t, s, psi, carry):
        return -grid[:, None] * s[..., coordinates.PHI2_NOW], carry

    with np.errstate(all="ignore"):                 # (no cost model: its derivatives on 1 point)
        runs = coordinates.simulate(net, data, x0, act, None, batches, picks,
                                    with_phi3=cfg.with_phi3, cost_rows=np.arange(1),
                                    features=cfg.features)
    final = np.where(np.isfinite(runs.fs[:, -1]), runs.fs[:, -1], np.inf)
    return float(grid[np.argmin(final)]), runs.fs[:, -1]


def fit_gains(net, data, x0, cfg, seed):
    """γ (G, T) of the first controllers (122), one per group and step, fitted to the steps of
    the hand-designed optimizer ``cfg.teacher`` (learning rate ``cfg.teacher_lr``): the teacher
    runs noise-free for cfg.T steps from x0 (P,) on ``tune_gamma``'s minibatch stream, and
    γ_t^k = −Σ_j u_j φ_j / Σ_j φ_j² over group k's coordinates, u_t the teacher's step and φ_t its
    state's Φ2 entry s[PHI2_NOW] (115) in the form ``cfg.features``. ``ValueError`` if the
    teacher's run is not finite."""
    return fit_teacher(net, data, x0, cfg, seed)[0]


def fit_teacher(net, data, x0, cfg, seed):
    """(γ (G, T), r (G, T)): ``fit_gains``'s gains, and the root mean square of the teacher's
    step over each group's coordinates at each step, r_t^k = (Σ_j (u_t^j)² / n_k)^½ (the scale
    of the step-scaled exploration noise, ``coordinatewise.Config.noise``)."""
    if not cfg.teacher:
        raise ValueError("cfg.teacher must name an optimizer, got ''")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 1]))
    batches = nets.minibatches(rng, len(data[1]), cfg.batch, cfg.T + 1)
    teacher = optimizers.by_name(cfg.teacher, lr=cfg.teacher_lr)
    x = np.asarray(x0, dtype=float)[None]
    state, phi, groups = teacher.init(x), nn_features.phi_init(x), lstm_policy.ranges(net)
    gains, rms = np.zeros((len(groups), cfg.T)), np.zeros((len(groups), cfg.T))
    for t in range(cfg.T):
        f, g = autodiff.value_and_grad(
            functools.partial(nets.minibatch_loss, net, *data, batch=batches[t]), x)
        s, phi = nn_features.phi_step(phi, x, f, g, with_phi3=False, features=cfg.features)
        u, state = teacher.step(state, x, f, g)
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(s))):
            raise ValueError(f"the teacher {cfg.teacher!r} (lr {cfg.teacher_lr}) left the finite "
                             f"numbers at step {t}")
        for k, (start, stop) in enumerate(groups):
            u_k, phi_k = u[0, start:stop], s[0, start:stop, coordinates.PHI2_NOW]
            den = float(np.sum(phi_k ** 2))
            gains[k, t] = -float(np.sum(u_k * phi_k)) / den if den > 0 else 0.0
            rms[k, t] = float(np.sqrt(np.mean(u_k ** 2)))
        x = x + u
    return gains, rms


def first_controllers(net, data, x0, cfg, seed):
    """The first controllers (122) (G, T, 1, dX): gains fitted to ``cfg.teacher`` (or the γ of
    ``tune_gamma`` over ``cfg.gamma_grid`` without a teacher); noise variance ``cfg.init_var``,
    or with a teacher and ``cfg.noise`` > 0, (cfg.noise · r_t^k)², r the teacher's RMS step."""
    var = cfg.init_var
    if cfg.teacher:
        gamma, rms = fit_teacher(net, data, x0, cfg, seed)
        if cfg.noise > 0:
            var = np.maximum((cfg.noise * rms) ** 2, 1e-300)      # a zero step: no noise
    else:
        gamma = tune_gamma(net, data, x0, cfg, seed, cfg.gamma_grid)[0]
    return coordinates.initial_controllers(gamma, len(net.groups), cfg.T,
                                           nn_features.state_dim(cfg.with_phi3), var)


def _identity(net, data, x0, cfg, seed):
    inputs, labels = data
    digest = hashlib.sha256(np.ascontiguousarray(inputs, dtype=float).tobytes()
                            + np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()
    return {"sizes": list(net.sizes), "data": digest[:16], "x0_sum": float(np.sum(x0)),
            "seed": int(seed), "config": json.loads(json.dumps(config_record(cfg)))}


def train(net, data, x0, config=coordinatewise.Config(), seed=0, *, map_fn=map,
          checkpoint_dir=None, callback=None):
    """Meta-train the LSTM optimizer on the net's objective (docs/method.md §13).

    Parameters
    ----------
    net : nets.Net;  data : (inputs (N, d_in), labels (N,)) its training set;  x0 : (P,)
    config : coordinatewise.Config;  seed : int
    map_fn : ``map`` or an executor's ``map`` (the runs' slices, the per-group fits; same result)
    checkpoint_dir : folder for the checkpoint (resumed when it matches this run), or None
    callback : optional ``callback(iteration, LogRow)`` after each iteration

    Returns
    -------
    policy : lstm_policy.Policy, usable as ``lstm_policy.optimizer(policy, lstm_policy.ranges(net))``
    log : trainer.GPSLog, arrays indexed by iteration (M = the net's groups)
    """
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (net.dim,):
        raise ValueError(f"x0 must have shape ({net.dim},), got {x0.shape}")
    if len(data) != 2 or np.shape(data[0]) != (len(data[1]), net.sizes[0]):
        raise ValueError(f"data must be (inputs (N, {net.sizes[0]}), labels (N,)), got shapes "
                         f"{[np.shape(a) for a in data]}")
    ident = _identity(net, data, x0, config, seed)
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "lstm_gps_checkpoint")

    def init():
        st = coordinatewise.init_state(net, config, seed)
        if config.teacher or config.gamma_grid:
            st = st._replace(lg=first_controllers(net, data, x0, config, seed))
        return Tracked(0, st, None, None)

    def step(tracked):
        st, row = coordinatewise.iteration_step(tracked.gps, net, data, x0, config, seed,
                                                map_fn=map_fn)
        score = _score(row.policy_cost, row.select_cost, config)
        better = np.isfinite(score) and (tracked.best_cost is None or score < tracked.best_cost)
        best, best_cost = ((st.policy, float(score)) if better
                           else (tracked.best, tracked.best_cost))
        return Tracked(st.iteration, st, best, best_cost), row

    state, rows = trainer.loop(init, step, config.iterations, path, ident, TYPES, callback)
    if config.keep == "last" or state.best is None:
        return state.gps.policy, trainer.stack_rows(rows)
    return state.best, trainer.stack_rows(rows)


def _score(policy_cost, select_cost, config):
    """What "best" minimises: the selection runs' mean with ``config.select_runs``, else the
    logged run's Σ_t f."""
    return select_cost if config.select_runs else policy_cost


def kept_iteration(policy_cost, select_cost, config):
    """The iteration (0-based) whose policy ``train`` returned, from its log's policy_cost and
    select_cost (I,): the first lowest finite score, or the last iteration with
    ``keep="last"`` or when no score is finite."""
    score = np.asarray(_score(policy_cost, select_cost, config), dtype=float)
    if config.keep == "last" or not np.isfinite(score).any():
        return len(score) - 1
    return int(np.argmin(np.where(np.isfinite(score), score, np.inf)))
