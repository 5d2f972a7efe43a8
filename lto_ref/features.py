"""State features of the learned optimizer: history of iterates, objective values and gradients
(paper 1, §3.6; docs/method.md §5).

A ``History`` holds the current (x_t, f_t, g_t) and the H previous values, newest last. ``push``
is a shift: after H pushes nothing of the initial content is left. ``observe`` turns a history
into the state X and the policy's observation O = X without the current location x_t.

Released-code state (``variant="code"``, default; docs/method.md (25)–(29)), blocks oldest first::

    X = [ x_t (d) | δ_{t−H+1} … δ_t (H) | g_{t−H} … g_{t−1} (H·d) | g_t (d) | Δ_{t−H+1} … Δ_t (H·d) ]
    δ_k = (f_k − f_{k−1}) / den(f_{k−1}),  Δ_k = x_k − x_{k−1},  dX = d(2H + 2) + H

Paper-text state (``variant="paper"``; docs/method.md (30)–(31))::

    X = [ x_t (d) | D_H … D_1 (H) | g_{t−H} … g_{t−1} (H·d) ] (+ g_t if include_current_grad)
    D_j = f_t − f_{t−j}, divided by den(f_{t−j}) when ``relative``

Out-of-range time indices give zeros. den(f) = sgn(f)·max(|f|, eps_f) with sgn(0) = +1 keeps
the relative changes finite when f is 0 or tiny (no clipping). Every array may carry any leading
batch shape (n,) — features act on the trailing axes only.
"""
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp

__all__ = ["History", "Offsets", "init", "push", "observe", "state_dim", "obs_dim", "offsets",
           "reflection", "observe_trace", "VARIANTS"]

VARIANTS = ("code", "paper")


class History(NamedTuple):
    """Current values and the H previous ones, newest last (time runs along axis −1 or −2)."""
    x: np.ndarray       # (n, d) x_t
    f: np.ndarray       # (n,) f_t
    g: np.ndarray       # (n, d) g_t
    fs: np.ndarray      # (n, H) f_{t−H} … f_{t−1}
    gs: np.ndarray      # (n, H, d) g_{t−H} … g_{t−1}
    dxs: np.ndarray     # (n, H, d) Δ_{t−H+1} … Δ_t
    filled: np.ndarray  # (n, H) 1.0 where the entry of fs is a real past value, 0.0 for padding


def _shift(buf, new, axis):
    """Drop the oldest entry along ``axis`` (−1 or −2) and append ``new`` as the newest."""
    new = np.expand_dims(new, axis)
    old = buf[..., 1:] if axis == -1 else buf[..., 1:, :]
    return np.concatenate([old, new], axis=axis)


def init(x, f, g, H=25):
    """A history at t = 0: the current values, zero padding for every past entry.

    x : (n, d), f : (n,), g : (n, d); H : history length >= 1.
    """
    if not isinstance(H, int) or H < 1:
        raise ValueError(f"H must be an integer >= 1, got {H!r}")
    if np.shape(x) != np.shape(g) or np.shape(f) != np.shape(x)[:-1]:
        raise ValueError(f"x, f, g must have shapes (n, d), (n,), (n, d); got "
                         f"{np.shape(x)}, {np.shape(f)}, {np.shape(g)}")
    lead, d = np.shape(f), np.shape(x)[-1]
    zeros_f, zeros_g = np.zeros(lead + (H,)), np.zeros(lead + (H, d))
    return History(x=x, f=f, g=g, fs=zeros_f, gs=zeros_g, dxs=zeros_g, filled=zeros_f)


def push(hist, x, f, g):
    """The history one step later: (x, f, g) become current, the old current values past.

    Pure and autograd-differentiable (built by concatenation, never in place).
    """
    return History(x=x, f=f, g=g,
                   fs=_shift(hist.fs, hist.f, -1),
                   gs=_shift(hist.gs, hist.g, -2),
                   dxs=_shift(hist.dxs, x - hist.x, -2),
                   filled=_shift(hist.filled, np.ones_like(hist.f), -1))


def _den(f, eps_f):
    """sgn(f)·max(|f|, eps_f), sgn(0) = +1: the guarded denominator of relative changes."""
    return np.where(f < 0, -1.0, 1.0) * np.maximum(np.abs(f), eps_f)


def _flat(a):
    """(…, H, d) -> (…, H·d), each lag's d entries contiguous, oldest lag first."""
    return np.reshape(a, np.shape(a)[:-2] + (-1,))


def state_dim(d, H=25, variant="code", *, include_current_grad=False):
    """dX: d(2H + 2) + H (code) or d + H + H·d (+ d with the current gradient) (paper)."""
    if variant == "code":
        return d * (2 * H + 2) + H
    if variant == "paper":
        return d + H + H * d + (d if include_current_grad else 0)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


class Offsets(NamedTuple):
    """Where each block of the released-code state X starts; in O = X[d:] subtract d."""
    delta: int       # δ_{t−H+1} … δ_t (H entries)
    past_grads: int  # g_{t−H} … g_{t−1} (H·d): lag j = 1..H starts at past_grads + (H − j)·d
    grad: int        # g_t (d)
    steps: int       # Δ_{t−H+1} … Δ_t (H·d): the newest step starts at steps + (H − 1)·d
    dim: int         # dX = d(2H + 2) + H


def offsets(d, H=25):
    """Block offsets of the released-code state [x_t | δ | past g | g_t | Δ] for d and H."""
    return Offsets(delta=d, past_grads=d + H, grad=d + H + H * d, steps=d + H + H * d + d,
                   dim=state_dim(d, H))


def obs_dim(d, H=25, variant="code", *, include_current_grad=False):
    """dO = dX − d: the observation is the state without the current location."""
    return state_dim(d, H, variant, include_current_grad=include_current_grad) - d


def reflection(d, H=25, variant="code", *, include_current_grad=False):
    """Signs R (dO,) of the observation of the mirrored problem f̃(x) = f(2c − x).

    Mirroring the problem and its starting point mirrors the whole trajectory: objective values
    (hence δ and D) are unchanged, every gradient and step changes sign, so O ↦ R·O with
    R = +1 on the objective-change block and −1 on the gradient and step blocks. A
    reflection-equivariant policy satisfies μ(R·o) = −μ(o) (``policy.init(..., reflect=R)``).
    """
    dO = obs_dim(d, H, variant, include_current_grad=include_current_grad)
    return onp.concatenate([onp.ones(H), -onp.ones(dO - H)])


def observe(hist, variant="code", *, relative=True, include_current_grad=False, eps_f=1e-8):
    """State X and observation O of a history (docs/method.md (25)–(29), (30)–(31)).

    Parameters
    ----------
    hist : History with x (n, d)
    variant : "code" (released code, default) or "paper" (paper text)
    relative, include_current_grad : options of the paper variant
    eps_f : floor of |f| in the denominator of relative changes

    Returns
    -------
    X : (n, dX) state; O : (n, dO) observation = X[:, d:]
    """
    if variant == "code":
        f_all = np.concatenate([hist.fs, hist.f[..., None]], axis=-1)            # (n, H+1)
        delta = (f_all[..., 1:] - f_all[..., :-1]) / _den(f_all[..., :-1], eps_f)  # δ, (n, H)
        delta = np.where(hist.filled > 0, delta, 0.0)
        blocks = [hist.x, delta, _flat(hist.gs), hist.g, _flat(hist.dxs)]
    elif variant == "paper":
        D = hist.f[..., None] - hist.fs                                            # D_H … D_1
        if relative:
            D = D / _den(hist.fs, eps_f)
        blocks = [hist.x, np.where(hist.filled > 0, D, 0.0), _flat(hist.gs)]
        blocks += [hist.g] if include_current_grad else []
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    X = np.concatenate(blocks, axis=-1)
    return X, X[..., np.shape(hist.x)[-1]:]


def observe_trace(xs, fs, gs, H=25, variant="code", **options):
    """States and observations along a trace: X (T+1, n, dX), O (T+1, n, dO).

    xs : (T+1, n, d), fs : (T+1, n), gs : (T+1, n, d), e.g. the fields of a ``rollout.Trace``.
    """
    hist = init(xs[0], fs[0], gs[0], H)
    Xs, Os = [], []
    for t in range(len(xs)):
        if t > 0:
            hist = push(hist, xs[t], fs[t], gs[t])
        X, O = observe(hist, variant, **options)
        Xs.append(X), Os.append(O)
    return np.stack(Xs), np.stack(Os)
