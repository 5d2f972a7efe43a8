"""Initial linear-Gaussian controllers: momentum tuned per training function (docs/method.md (44)–(47)).

Paper 1 starts GPS from momentum "tuned per function"; the released code searches a grid of
(γ, μ) per function, scoring each by the objective after T noiseless steps. A controller
u_t = K x_t + k_t implements heavy-ball momentum on the controllers' state in one of two forms:

- ``"recursive"`` (default here): u_t = μ Δ_t − γ g_t, with Δ_t = u_{t−1} the newest step in the
  state — exact heavy ball, whatever the number of lags h;
- ``"truncated"`` (released code): u_t = −γ Σ_{j=0}^{h} μ^j g_{t−j} over the gradient lags in the state.

k_t = 0 (the paper's "mean equals the momentum step"; ``offset="zero"``) or, as in the released
code, k_t = K x_0 with x_0 the initial state (``offset="x0"``: a constant extra −γ g_0 in every
step, also during the grid search); G_t = 0.01·I (released code).
"""
import numpy as np

from lto_ref import autodiff, features, objectives, rollout
from lto_ref.gps import environment, lingauss

__all__ = ["GAMMAS", "MASSES", "WIDE_GAMMAS", "WIDE_MASSES", "grid", "momentum_gain",
           "initial_controllers"]

GAMMAS = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)      # (released code)
MASSES = (0.82, 0.84, 0.86, 0.88, 0.90, 0.92)        # (released code)
# ... and with the baselines' tuning grid (24) in it: γ up to 10, μ from 0.5
WIDE_GAMMAS = tuple(sorted(set(GAMMAS) | set(rollout.LR_GRID)))
WIDE_MASSES = tuple(sorted(set(MASSES) | set(rollout.MASS_GRID)))


def grid(name):
    """(γ values, μ values) of the initial controllers' search: "released" (the released
    code's grid) or "wide" (it and the baselines' grid (24))."""
    if name == "released":
        return GAMMAS, MASSES
    if name == "wide":
        return WIDE_GAMMAS, WIDE_MASSES
    raise ValueError(f"init grid must be 'released' or 'wide', got {name!r}")


def momentum_gain(lay, gamma, mass, form="recursive"):
    """K (dU, dX) of heavy-ball momentum on the h-lag state of ``lay``."""
    d, h = lay.d, lay.h
    o = features.offsets(d, h)
    K = np.zeros((d, o.dim))
    K[:, o.grad:o.grad + d] = -gamma * np.eye(d)
    if form == "recursive":
        K[:, o.steps + (h - 1) * d:o.steps + h * d] = mass * np.eye(d)     # newest step Δ_t
    elif form == "truncated":
        for j in range(1, h + 1):                                          # g_{t−j}: block h − j
            K[:, o.past_grads + (h - j) * d:o.past_grads + (h - j + 1) * d] = (
                -gamma * mass ** j * np.eye(d))
    else:
        raise ValueError(f"form must be 'recursive' or 'truncated', got {form!r}")
    return K


def initial_states(family, problems, x0, lay):
    """The controllers' state at t = 0 of every condition: (M, dX)."""
    f, g = autodiff.value_and_grad(lambda x: family.loss(x, problems), x0)
    return features.observe(features.init(x0, f, g, lay.H))[0][:, lay.index]


def initial_controllers(family, problems, x0, T, lay, *, form="recursive", init_var=0.01,
                        offset="zero", gammas=GAMMAS, masses=MASSES):
    """Per-condition grid search of momentum controllers; returns (LinGauss (M, T, …), choice).

    All M·|grid| noiseless rollouts of T steps run as one batch; the criterion is f(x_T),
    non-finite counts as +inf, ties go to the first setting in γ-major order. ``choice`` is an
    (M, 2) array of the chosen (γ, μ).
    """
    if offset not in ("zero", "x0"):
        raise ValueError(f"offset must be 'zero' or 'x0', got {offset!r}")
    grid = [(g, m) for g in gammas for m in masses]
    Ks = np.stack([momentum_gain(lay, g, m, form) for g, m in grid])    # (S, dU, dX)
    M, S = x0.shape[0], len(grid)
    rows = np.repeat(np.arange(M), S)                                    # condition-major
    K_all = np.tile(Ks, (M, 1, 1))                                       # (M·S, dU, dX)
    X0 = initial_states(family, problems, x0, lay)                       # (M, dX)
    k_all = (np.einsum("bij,bj->bi", K_all, X0[rows]) if offset == "x0"
             else np.zeros(K_all.shape[:2]))

    def act(t, X, O):
        return np.einsum("bij,bnj->bni", K_all, X) + k_all[:, None]
    with np.errstate(all="ignore"):
        sim = environment.simulate(family, objectives.subset(problems, rows), x0[rows], act, T,
                                   1, lay)
    final = np.where(sim.diverged[:, 0], np.inf, sim.fs[:, 0, T]).reshape(M, S)
    final = np.where(np.isfinite(final), final, np.inf)
    best = np.argmin(final, axis=1)                                      # first minimum
    K = np.broadcast_to(Ks[best][:, None], (M, T) + Ks.shape[1:]).copy()
    k = np.broadcast_to(k_all.reshape(M, S, -1)[np.arange(M), best][:, None], K.shape[:3]).copy()
    dU = lay.d
    G = np.broadcast_to(init_var * np.eye(dU), (M, T, dU, dU))
    return lingauss.make(K, k, G), np.array(grid)[best]
