"""The learning-to-optimize MDP as GPS sees it (paper 1, §3.4; docs/method.md §7.1).

State x_t = features of the history (``features.observe``, released-code layout), action u_t = Δx,
cost f(x_t). The transition is mostly known: every history block of x_{t+1} is an exact shift of
x_t, CUR_LOC' = CUR_LOC + u, and only the newest objective change and the new gradient
(r = d + 1 entries) depend on the unknown f. With z = [x; u]::

    x_{t+1} = S z_t + E n_{t+1},     n_{t+1} = [δ_{t+1}; g_{t+1}]  (unknown, r = d + 1)

``structure`` builds S (dX, dX+dU) and E (dX, r); the dynamics fit regresses only n_{t+1}.

The controllers' state may keep fewer lags than the policy's observation: ``Layout(d, H, h)``
selects the newest h ≤ H lags of each history block from the full H-lag state (h = H is the
released code's state; a smaller h is this project's speed option, docs/method.md §7.1). The policy always
sees the full H-lag observation O.
"""
import functools
from typing import NamedTuple

import numpy as onp

from lto_ref import autodiff, features, objectives

__all__ = ["Layout", "layout", "structure", "unknown_rows", "Samples", "simulate"]


class Layout(NamedTuple):
    d: int             # optimisation variables = dU
    H: int             # lags in the policy's observation
    h: int             # lags in the controllers' state
    index: onp.ndarray  # (dX,) positions of the controllers' state inside the full H-lag state


def layout(d, H=25, h=None):
    """Index of the h-lag state [x | δ (h) | g_{t−h..t−1} | g_t | Δ (h)] inside the H-lag one."""
    h = H if h is None else h
    if not (isinstance(h, int) and 1 <= h <= H):
        raise ValueError(f"h must be an integer in [1, H={H}], got {h!r}")
    full = features.offsets(d, H)
    index = onp.concatenate([
        onp.arange(d), full.delta + onp.arange(H - h, H),
        full.past_grads + onp.arange((H - h) * d, H * d), full.grad + onp.arange(d),
        full.steps + onp.arange((H - h) * d, H * d)])
    return Layout(d=d, H=H, h=h, index=index)


def unknown_rows(lay):
    """Rows of the newest objective change δ_{t+1} and of g_{t+1} in the h-lag state: (d + 1,)."""
    o = features.offsets(lay.d, lay.h)
    return onp.concatenate([[o.delta + lay.h - 1], o.grad + onp.arange(lay.d)])


def structure(lay):
    """S (dX, dX+dU) and E (dX, d+1) with x_{t+1} = S [x_t; u_t] + E n_{t+1} exactly."""
    d, h = lay.d, lay.h
    o = features.offsets(d, h)
    S = onp.zeros((o.dim, o.dim + d))
    u = o.dim + onp.arange(d)
    S[onp.arange(d), onp.arange(d)] = 1.0                            # x' = x + u
    S[onp.arange(d), u] = 1.0
    S[o.delta + onp.arange(h - 1), o.delta + 1 + onp.arange(h - 1)] = 1.0  # δ shifts
    S[o.past_grads + onp.arange((h - 1) * d), o.past_grads + d + onp.arange((h - 1) * d)] = 1.0
    S[o.past_grads + (h - 1) * d + onp.arange(d), o.grad + onp.arange(d)] = 1.0  # g_t → past
    S[o.steps + onp.arange((h - 1) * d), o.steps + d + onp.arange((h - 1) * d)] = 1.0
    S[o.steps + (h - 1) * d + onp.arange(d), u] = 1.0                # Δ_{t+1} = u_t
    E = onp.zeros((o.dim, d + 1))
    E[unknown_rows(lay), onp.arange(d + 1)] = 1.0
    return S, E


class Samples(NamedTuple):
    """Trajectories of M conditions × N samples, time-major within each sample."""
    X: onp.ndarray         # (M, N, T, dX) controllers' state x_t
    U: onp.ndarray         # (M, N, T, dU) actions u_t
    O: onp.ndarray         # (M, N, T, dO) policy observations o_t
    fs: onp.ndarray        # (M, N, T+1) f(x_t), t = 0..T
    new: onp.ndarray       # (M, N, T, d+1) n_{t+1} = [δ_{t+1}; g_{t+1}], t = 0..T−1
    diverged: onp.ndarray  # (M, N) bool: frozen after a non-finite f or g


def simulate(family, problems, x0, act_fn, T, N, lay):
    """Roll out N samples per condition for T steps: u_t = act_fn(t, X_t, O_t).

    Parameters
    ----------
    family : objectives.Family;  problems : data of M functions;  x0 : (M, d)
    act_fn : (t, X (M, N, dX), O (M, N, dO)) -> U (M, N, dU)
    T : horizon;  N : samples per condition;  lay : Layout

    A sample whose objective or gradient turns non-finite is frozen at its last finite iterate
    (its actions are recorded as zero from then on) and flagged.
    """
    M, d = x0.shape
    rows = onp.repeat(onp.arange(M), N)
    objective = functools.partial(family.loss, problems=objectives.subset(problems, rows))
    x = onp.repeat(x0, N, axis=0)                                        # (M·N, d)
    f, g = autodiff.value_and_grad(objective, x)
    hist = features.init(x, f, g, lay.H)
    diverged = ~(onp.isfinite(f) & onp.all(onp.isfinite(g), axis=1))
    Xs, Us, Os, fs = [], [], [], [f]
    for t in range(T):
        X_full, O = features.observe(hist)
        X = X_full[:, lay.index]
        U = onp.asarray(act_fn(t, X.reshape(M, N, -1), O.reshape(M, N, -1))).reshape(M * N, d)
        U = onp.where(diverged[:, None], 0.0, U)
        with onp.errstate(all="ignore"):
            f_new, g_new = autodiff.value_and_grad(objective, x + U)
        ok = ~diverged & onp.isfinite(f_new) & onp.all(onp.isfinite(g_new) & onp.isfinite(U), 1)
        diverged = ~ok
        U = onp.where(ok[:, None], U, 0.0)
        x, f = onp.where(ok[:, None], x + U, x), onp.where(ok, f_new, f)
        g = onp.where(ok[:, None], g_new, g)
        hist = features.push(hist, x, f, g)
        Xs.append(X), Us.append(U), Os.append(O), fs.append(f)
    X_last = features.observe(hist)[0][:, lay.index]
    Xs_next = onp.stack(Xs[1:] + [X_last], axis=1)                      # (M·N, T, dX)
    shape = (M, N, T)
    return Samples(X=onp.stack(Xs, 1).reshape(shape + (-1,)), U=onp.stack(Us, 1).reshape(shape + (d,)),
                   O=onp.stack(Os, 1).reshape(shape + (-1,)), fs=onp.stack(fs, 1).reshape(M, N, T + 1),
                   new=Xs_next[..., unknown_rows(lay)].reshape(shape + (d + 1,)),
                   diverged=diverged.reshape(M, N))
