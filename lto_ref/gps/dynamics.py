"""Fitting the local linear-Gaussian dynamics of each condition (docs/method.md §7.5, (50)–(58)).

Only the d + 1 unknown entries n_{t+1} = [δ_{t+1}; g_{t+1}] of the next state are regressed on
z_t = [x_t; u_t]; the other rows of the transition are exact (``environment.structure`` for paper 1's
state, ``coordinates.structure`` for paper 2's)::

    n_{t+1} ~ N(A_t z_t + a_t, W̃_t)   ⇒   Fm_t = S + E A_t,  fv_t = E a_t,  dyn_covar_t = E W̃_t Eᵀ

Per condition, a GMM on the points y = [x_t; u_t; n_{t+1}] of the recent trajectories (all t)
gives every step's fit a Normal-inverse-Wishart prior (``gmm.prior``, ``gmm.map_gaussian``,
``gmm.condition``). The per-condition work is a module-level function, so any executor's ``map``
can spread it (``map_fn``) with results identical to the builtin ``map``.
"""
import dataclasses
from typing import NamedTuple

import numpy as np

from lto_ref.gps import gmm as gmm_lib, lingauss

__all__ = ["Config", "Dynamics", "PriorState", "fit", "fit_condition", "initial_state"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Dynamics-fit settings: the GMM prior's, the trajectories it keeps, the x_0 variance floor."""
    prior: gmm_lib.Config = gmm_lib.Config()
    max_samples: int = 20          # the prior keeps the newest max_samples − 1 trajectories
    x0_var_floor: float = 1e-6

    def __post_init__(self):
        if not isinstance(self.max_samples, int) or self.max_samples < 2:
            raise ValueError(f"max_samples must be an integer >= 2, got {self.max_samples!r}")
        if not self.x0_var_floor > 0:
            raise ValueError(f"x0_var_floor must be > 0, got {self.x0_var_floor!r}")


class Dynamics(NamedTuple):
    """Linear-Gaussian dynamics per condition, x_{t+1} ~ N(Fm_t [x_t; u_t] + fv_t, dyn_covar_t)."""
    Fm: np.ndarray         # (M, T-1, dX, dX+dU)
    fv: np.ndarray         # (M, T-1, dX)
    dyn_covar: np.ndarray  # (M, T-1, dX, dX) W_t
    x0mu: np.ndarray       # (M, dX) μ_x0
    x0sigma: np.ndarray    # (M, dX, dX) Σ_x0


class PriorState(NamedTuple):
    """What the dynamics priors carry from iteration to iteration."""
    buffers: list  # M arrays (n_traj, T−1, D): the trajectories' points y the next fit still uses
    gmms: list     # the GMMs fitted last time (warm starts): M of them, or 1 when pooled


def initial_state(x0_points, cfg):
    """(μ_x0, Σ_x0) from the samples' initial states x0_points (N, dX).

    Σ_x0 = diag(max(var, floor)) + m₀ diag(var), m₀ = dX·strength: the prior is the
    buffered x_0 themselves, so its mean term vanishes. With deterministic x_0 (fixed
    starting point, zero histories) Σ_x0 = floor·I.
    """
    x0_points = np.ascontiguousarray(x0_points)   # same summation order, whatever the layout
    dX = x0_points.shape[1]
    var = x0_points.var(axis=0)
    m0 = dX * cfg.prior.strength
    sigma = np.diag(np.maximum(var, cfg.x0_var_floor)) + m0 * np.diag(var)
    return x0_points.mean(axis=0), lingauss.symmetrize(sigma)


def fit_condition(args):
    """Dynamics of one condition (docs/method.md (50)–(58)).

    args = (seed, X (N, T, dX), U (N, T, dU), new (N, T, r), buffer (n_traj, T−1, D),
    gmm, n_pts, init, S, E, cfg). With ``gmm`` None the condition fits its own GMM on its buffer,
    warm-started from ``init`` (a GMM or None). Returns (Fm, fv, dyn_covar, x0mu, x0sigma, gmm).
    """
    seed, X, U, new, buffer, gmm, n_pts, init, S, E, cfg = args
    N, T, dX = X.shape
    pts = np.concatenate([X[:, :-1], U[:, :-1], new[:, :-1]], axis=-1)   # (N, T−1, D)
    if gmm is None:
        flat = buffer.reshape(-1, buffer.shape[-1])
        gmm, n_pts = gmm_lib.em(seed, flat, init, cfg.prior), flat.shape[0]
    A, a, W = gmm_lib.fit_conditional(np.swapaxes(pts, 0, 1), gmm, n_pts, dX + U.shape[-1],
                                      strength=cfg.prior.strength, reg=cfg.prior.reg)  # all t
    x0mu, x0sigma = initial_state(X[:, 0], cfg)
    return S + E @ A, a @ E.T, E @ W @ E.T, x0mu, x0sigma, gmm


def fit(rng, samples, structure, state=None, cfg=Config(), *, map_fn=map):
    """Fit the dynamics of every condition from this iteration's samples (docs/method.md §7.4 step 2).

    Parameters
    ----------
    rng : np.random.Generator (all seeds are drawn from it before any map)
    samples : environment.Samples (M conditions; X, U and new are used)
    structure : (S (dX, dX+dU), E (dX, r)) with x_{t+1} = S z_t + E n_{t+1}, e.g.
        ``environment.structure(lay)`` (paper 1) or ``coordinates.structure()`` (paper 2)
    state : PriorState of the previous iteration, or None at the first
    map_fn : ``map`` or an executor's ``map``

    Returns
    -------
    Dynamics (M, …) and the new PriorState
    """
    M = samples.X.shape[0]
    S, E = structure
    seeds = rng.integers(0, 2**63 - 1, size=M + 1)
    pts = np.concatenate([samples.X[:, :, :-1], samples.U[:, :, :-1], samples.new[:, :, :-1]], -1)
    keep = cfg.max_samples - 1
    buffers = [(pts[m] if state is None else np.concatenate([state.buffers[m], pts[m]]))[-keep:]
               for m in range(M)]
    if cfg.prior.pooled:  # one GMM on a fixed-size subsample of all conditions (deviation)
        pool = np.concatenate([b.reshape(-1, b.shape[-1]) for b in buffers])
        pick = np.random.default_rng(seeds[M]).permutation(len(pool))[:cfg.prior.pooled_points]
        gmms = [gmm_lib.em(seeds[M], pool[np.sort(pick)], None if state is None else state.gmms[0],
                            cfg.prior)]
        per_condition = [(gmms[0], len(pick), None)] * M
    else:
        per_condition = [(None, None, None if state is None else state.gmms[m]) for m in range(M)]
    out = list(map_fn(fit_condition, [
        (int(seeds[m]), samples.X[m], samples.U[m], samples.new[m], buffers[m], *per_condition[m],
         S, E, cfg) for m in range(M)]))
    Fm, fv, W, x0mu, x0sigma = (np.stack([o[i] for o in out]) for i in range(5))
    gmms = gmms if cfg.prior.pooled else [o[5] for o in out]
    # the next fit keeps the newest `keep` of old + N new trajectories: carry only what it can use
    tail = max(keep - samples.X.shape[1], 0)
    carry = [b[len(b) - min(tail, len(b)):] for b in buffers]
    return Dynamics(Fm, fv, W, x0mu, x0sigma), PriorState(buffers=carry, gmms=gmms)
