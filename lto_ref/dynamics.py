"""Fitting the local linear-Gaussian dynamics of each condition (SPEC §6.5, option 2 of §6.16).

Only the d + 1 unknown entries n_{t+1} = [δ_{t+1}; g_{t+1}] of the next state are regressed on
z_t = [x_t; u_t]; the other rows of the transition are the exact shift of ``environment.structure``::

    n_{t+1} ~ N(A_t z_t + a_t, W̃_t)   ⇒   Fm_t = S + E A_t,  fv_t = E a_t,  dyn_covar_t = E W̃_t Eᵀ

Per condition, a GMM on the points y = [x_t; u_t; n_{t+1}] of the recent trajectories (all t)
gives every step's fit a Normal-inverse-Wishart prior (``gmm.prior``, ``gmm.map_gaussian``,
``gmm.condition``). The per-condition work is a module-level function, so any executor's ``map``
can spread it (``map_fn``) with results identical to the builtin ``map``.
"""
import dataclasses
from typing import NamedTuple

import numpy as np

from lto_ref import environment, gmm as gmm_lib, lingauss
from lto_ref.lqr import Dynamics

__all__ = ["Config", "PriorState", "fit", "fit_condition", "initial_state", "em"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Dynamics-fit settings; defaults from SPEC §6.14 except ``pooled`` (SPEC §6.16, option 1)."""
    max_clusters: int = 10
    min_samples_per_cluster: int = 20
    max_samples: int = 20          # the prior keeps the newest max_samples − 1 trajectories
    strength: float = 1.0
    em_iterations: int = 100
    em_warm_iterations: int = 10   # cap for a warm-started refit (SPEC §6.16 option 3; deviation)
    em_tol: float = 1e-5
    em_reg: float = 1e-6
    reg: float = 1e-3              # added to Σ[xu, xu] before conditioning
    x0_var_floor: float = 1e-6
    pooled: bool = True            # one GMM on points pooled over conditions (deviation) …
    pooled_points: int = 2000      # … subsampled to this many; False: one GMM per condition [C]

    def __post_init__(self):
        for name in ("max_clusters", "min_samples_per_cluster", "max_samples", "em_iterations",
                     "em_warm_iterations", "pooled_points"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("strength", "em_tol", "em_reg", "reg", "x0_var_floor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class PriorState(NamedTuple):
    """What the dynamics priors carry from iteration to iteration."""
    buffers: list  # M arrays (n_traj, T−1, D): points y of each condition's newest trajectories
    gmms: list     # the GMMs fitted last time (warm starts): M of them, or 1 when pooled


def initial_state(x0_points, cfg):
    """(μ_x0, Σ_x0) from the samples' initial states x0_points (N, dX) (SPEC §6.5).

    With deterministic x_0 (fixed starting point, zero histories) Σ_x0 = floor·I.
    """
    x0_points = np.ascontiguousarray(x0_points)   # same summation order, whatever the layout
    N, dX = x0_points.shape
    mu = x0_points.mean(axis=0)
    var = x0_points.var(axis=0)
    m0 = dX * cfg.strength
    mu00, v0 = mu, var           # prior from the same buffered x_0 (one iteration buffered)
    dm = mu - mu00
    sigma = (np.diag(np.maximum(var, cfg.x0_var_floor)) + m0 * np.diag(v0)
             + (N * m0 / (N + m0)) * np.outer(dm, dm) / (N + m0))
    return mu, lingauss.symmetrize(sigma)


def em(seed, points, init, cfg):
    """GMM of K = n_clusters(len(points)) components fitted by EM, warm-started from ``init``.

    A warm start (``init`` with K components) runs at most ``cfg.em_warm_iterations``.
    """
    K = gmm_lib.n_clusters(points.shape[0], cfg.max_clusters, cfg.min_samples_per_cluster)
    warm = init is not None and init.mu.shape == (K, points.shape[1])
    gmm, _ = gmm_lib.fit(np.random.default_rng(seed), points, K, init=init,
                         max_iterations=cfg.em_warm_iterations if warm else cfg.em_iterations,
                         tol=cfg.em_tol, reg=cfg.em_reg)
    return gmm


def fit_condition(args):
    """Dynamics of one condition (SPEC §6.5).

    args = (seed, X (N, T, dX), U (N, T, dU), new (N, T, r), buffer (n_traj, T−1, D),
    gmm, n_pts, init, S, E, cfg). With ``gmm`` None the condition fits its own GMM on its buffer,
    warm-started from ``init`` (a GMM or None). Returns (Fm, fv, dyn_covar, x0mu, x0sigma, gmm).
    """
    seed, X, U, new, buffer, gmm, n_pts, init, S, E, cfg = args
    N, T, dX = X.shape
    pts = np.concatenate([X[:, :-1], U[:, :-1], new[:, :-1]], axis=-1)   # (N, T−1, D)
    if gmm is None:
        flat = buffer.reshape(-1, buffer.shape[-1])
        gmm, n_pts = em(seed, flat, init, cfg), flat.shape[0]
    A, a, W = gmm_lib.fit_conditional(np.swapaxes(pts, 0, 1), gmm, n_pts, dX + U.shape[-1],
                                      strength=cfg.strength, reg=cfg.reg)  # all t at once
    x0mu, x0sigma = initial_state(X[:, 0], cfg)
    return S + E @ A, a @ E.T, E @ W @ E.T, x0mu, x0sigma, gmm


def fit(rng, samples, lay, state=None, cfg=Config(), *, map_fn=map):
    """Fit the dynamics of every condition from this iteration's samples (SPEC §6.4 step 2).

    Parameters
    ----------
    rng : np.random.Generator (all seeds are drawn from it before any map)
    samples : environment.Samples (M conditions);  lay : environment.Layout
    state : PriorState of the previous iteration, or None at the first
    map_fn : ``map`` or an executor's ``map``

    Returns
    -------
    Dynamics (M, …) and the new PriorState
    """
    M = samples.X.shape[0]
    S, E = environment.structure(lay)
    seeds = rng.integers(0, 2**63 - 1, size=M + 1)
    pts = np.concatenate([samples.X[:, :, :-1], samples.U[:, :, :-1], samples.new[:, :, :-1]], -1)
    keep = cfg.max_samples - 1
    buffers = [(pts[m] if state is None else np.concatenate([state.buffers[m], pts[m]]))[-keep:]
               for m in range(M)]
    if cfg.pooled:  # SPEC §6.16 option 1: one GMM on a fixed-size subsample of all conditions
        pool = np.concatenate([b.reshape(-1, b.shape[-1]) for b in buffers])
        pick = np.random.default_rng(seeds[M]).permutation(len(pool))[:cfg.pooled_points]
        gmms = [em(seeds[M], pool[np.sort(pick)], None if state is None else state.gmms[0], cfg)]
        per_condition = [(gmms[0], len(pick), None)] * M
    else:
        per_condition = [(None, None, None if state is None else state.gmms[m]) for m in range(M)]
    out = list(map_fn(fit_condition, [
        (int(seeds[m]), samples.X[m], samples.U[m], samples.new[m], buffers[m], *per_condition[m],
         S, E, cfg) for m in range(M)]))
    Fm, fv, W, x0mu, x0sigma = (np.stack([o[i] for o in out]) for i in range(5))
    gmms = gmms if cfg.pooled else [o[5] for o in out]
    return Dynamics(Fm, fv, W, x0mu, x0sigma), PriorState(buffers=buffers, gmms=gmms)
