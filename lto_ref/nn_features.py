"""Paper 2's per-coordinate features (docs/method.md §13): the observation Ψ that the learned
optimizer reads, and the state Φ that GPS's local controllers see (never the policy).

Everything is element-wise: coordinate j of x sees only its own iterates and gradients and the
problem's (minibatch) objective values. With f̂_t, ∇f̂_t the objective and gradient on minibatch t
and d_k = x_{k+1} − x_k the steps (docs/method.md (110)–(112))::

    Ψ1_t = (f̂_t − f̂_{t−1}) / f̂_{t−1}                      relative change, shared by all j
    Ψ2_t = ∇f̂_t / (|∇f̂_{max(t−1,0)}| + 1)                 gradient over the previous one
    Ψ3_t = |d_{max(t−2,0)} / (|d_{t−1}| + 0.1)|              previous step over the current one

with Ψ1_0 = Ψ3_0 = 0. The state uses plain 3-step averages x̄, ḡ, f̄ (x̄_i = mean of x_{max(i−2,0)} …
x_i) at stride 5 over 25 lags, zero for negative times (docs/method.md (113)–(116))::

    Φ1 = {(f̄_{t−5i} − f̄_{t−5(i+1)}) / f̄_{t−5(i+1)}}_{i<25}          25, shared (0 where f̄ = 0)
    Φ2 = {ḡ_{t−5i} / (|ḡ_{max(t−5(i+1), t mod 5)}| + 1)}_{i≤25}     26 per coordinate
    Φ3 = {|(x̄_a − x̄_b) / (|x̄_{t−5i} − x̄_{t−5(i+1)}| + 0.1)|}_{i<25}  25 per coordinate,
         a = max(t−5(i+1), t mod 5), b = max(t−5(i+2), t mod 5)

and the per-coordinate state s_t^j = [x_t^j; Φ1; Φ2^j; Φ3^j] has 77 entries (52 without Φ3).
Φ3's formula is illegible in the paper; ours is built by analogy with Ψ3 and can be left out
(``with_phi3=False``; docs/deviations.md).

``Features`` selects other forms (docs/method.md §13, "scale-free features"); its default is the
paper's. With ``gradient="adagrad"`` the gradient entries are divided by the coordinate's
accumulated gradient norm instead, S_t = Σ_{k≤t} (∇f̂_k)², so they do not scale with the gradient::

    Ψ2_t = ∇f̂_t / (√S_t + ε)          Φ2_i = ḡ_{t−5i} / (√S_t + ε),  i ≤ 25

(a gain on Ψ2 is then AdaGrad's step); ``psi1="clip"`` clips Ψ1 to [−1, 1]; ``psi3="ratio"``
replaces Ψ3 by the bounded step ratio |d_{t−2}| / (|d_{t−1}| + |d_{t−2}| + ε).
"""
import dataclasses
from typing import NamedTuple

import numpy as onp

__all__ = ["Features", "PAPER", "SCALE_FREE", "PsiState", "psi_terms", "psi", "psi_init", "psi_step", "averages", "phi",
           "PhiState", "phi_init", "phi_step", "PSI_DIM", "STRIDE", "LAGS", "RING", "state_dim"]

PSI_DIM = 3     # Ψ1, Ψ2, Ψ3
STRIDE = 5      # Φ's stride between lags
LAGS = 25       # Φ1 and Φ3 have LAGS entries, Φ2 LAGS + 1


EPS = 1e-10     # ε of the scale-free forms (AdaGrad's)


@dataclasses.dataclass(frozen=True)
class Features:
    """The form of each feature: "paper" is (110)–(116) as written."""
    gradient: str = "paper"     # Ψ2 and Φ2: "paper" (|·| + 1 denominators) or "adagrad" (√S_t)
    psi1: str = "paper"         # "paper" or "clip" (to [−1, 1])
    psi3: str = "paper"         # "paper" or "ratio" (bounded step ratio)

    def __post_init__(self):
        for name, allowed in (("gradient", ("paper", "adagrad")), ("psi1", ("paper", "clip")),
                              ("psi3", ("paper", "ratio"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


    def describe(self):
        """One phrase naming the forms, for figure titles and legends."""
        if self == Features():
            return "the paper's features (110)–(116)"
        parts = {"gradient": {"adagrad": "gradients over √Σg² (111a), (115a)"},
                 "psi1": {"clip": "Ψ1 clipped to [−1, 1]"},
                 "psi3": {"ratio": "Ψ3 a bounded step ratio"}}
        return "; ".join(parts[name][getattr(self, name)] for name in parts
                         if getattr(self, name) != "paper")


PAPER = Features()
SCALE_FREE = Features(gradient="adagrad", psi1="clip")   # paper 2's figures (docs/deviations.md)


def state_dim(with_phi3=True):
    """Entries of the per-coordinate state s^j: 1 + 25 + 26 (+ 25) = 77 (or 52)."""
    return 1 + LAGS + (LAGS + 1) + (LAGS if with_phi3 else 0)


def _relative(new, old):
    """(new − old) / old, 0 where old = 0 (a zero-padded or a perfect value)."""
    safe = onp.where(old == 0, 1.0, old)
    return onp.where(old == 0, 0.0, (new - safe) / safe)


def psi_terms(f, f_prev, g, g_prev, d, num, features=PAPER, sq=None):
    """Ψ (..., P, 3) from f̂_t, f̂_{t−1} (...), ∇f̂_t, ∇f̂_{t−1}, d = x_t − x_{t−1} and the numerator
    step num (..., P), by (110)–(112), in the forms ``features`` selects; sq (..., P) is S_t,
    needed for ``gradient="adagrad"``. The caller applies the conventions for t = 0 and 1."""
    rel = _relative(f, f_prev)
    if features.psi1 == "clip":
        rel = onp.clip(rel, -1.0, 1.0)
    rel = onp.broadcast_to(rel[..., None], onp.shape(g))
    den = onp.abs(g_prev) + 1.0 if features.gradient == "paper" else onp.sqrt(sq) + EPS
    if features.psi3 == "paper":
        step = onp.abs(num / (onp.abs(d) + 0.1))
    else:
        step = onp.abs(num) / (onp.abs(d) + onp.abs(num) + EPS)
    return onp.stack([rel, g / den, step], axis=-1)


def _check_history(fs, gs, xs):
    fs, gs, xs = (onp.asarray(a, dtype=float) for a in (fs, gs, xs))
    if gs.ndim < 2 or xs.shape != gs.shape or fs.shape != gs.shape[:-1] or len(fs) < 1:
        raise ValueError(f"fs, gs, xs must have shapes (T + 1, n), (T + 1, n, P), (T + 1, n, P); "
                         f"got {fs.shape}, {gs.shape}, {xs.shape}")
    return fs, gs, xs


def psi(fs, gs, xs, features=PAPER):
    """Ψ_t for t = 0 … T of recorded runs: fs (T + 1, n), gs and xs (T + 1, n, P) -> (T + 1, n, P, 3)."""
    fs, gs, xs = _check_history(fs, gs, xs)
    prev = onp.maximum(onp.arange(len(fs)) - 1, 0)                  # max(t − 1, 0)
    d = xs - xs[prev]                                                # d_{t−1}; 0 at t = 0
    num = d[onp.maximum(onp.arange(len(fs)) - 1, 1)] if len(fs) > 1 else onp.zeros_like(d)
    num = onp.where(onp.arange(len(fs))[:, None, None] == 0, 0.0, num)   # d_{max(t−2, 0)}
    return psi_terms(fs, fs[prev], gs, gs[prev], d, num, features, onp.cumsum(gs ** 2, axis=0))


class PsiState(NamedTuple):
    """What Ψ needs from the past, before step t."""
    x: onp.ndarray  # (n, P) x_{t−1}
    f: onp.ndarray  # (n,) f̂_{t−1}
    g: onp.ndarray  # (n, P) ∇f̂_{t−1}
    d: onp.ndarray  # (n, P) d_{t−2} (the numerator of Ψ3 from t = 2 on)
    t: int          # steps seen so far
    sq: object = None   # (n, P) S_{t−1} = Σ_{k<t} (∇f̂_k)², for the scale-free forms


def psi_init(x0):
    """The state before t = 0, for iterates shaped like x0 (n, P)."""
    zeros = onp.zeros_like(onp.asarray(x0, dtype=float))
    return PsiState(x=zeros, f=onp.zeros(zeros.shape[:-1]), g=zeros, d=zeros, t=0, sq=zeros)


def psi_step(state, x, f, g, features=PAPER):
    """Ψ_t (n, P, 3) and the next state from x_t (n, P), f̂_t (n,), ∇f̂_t (n, P): ``psi``, one step
    at a time (the learned optimizer's recursion)."""
    sq = (onp.zeros_like(g) if state.sq is None else state.sq) + g ** 2
    if state.t == 0:
        zeros = onp.zeros_like(x)
        out = psi_terms(f, f, g, g, zeros, zeros, features, sq)
        return out, PsiState(x=x, f=f, g=g, d=zeros, t=1, sq=sq)
    d = x - state.x
    out = psi_terms(f, state.f, g, state.g, d, d if state.t == 1 else state.d, features, sq)
    return out, PsiState(x=x, f=f, g=g, d=d, t=state.t + 1, sq=sq)


def averages(a):
    """Plain 3-step averages along axis 0: ā_i = mean(a_{max(i−2,0)} … a_i), same shape as a."""
    a = onp.asarray(a, dtype=float)
    c = onp.cumsum(a, axis=0)
    lagged = onp.concatenate([onp.zeros((3,) + a.shape[1:]), c[:-3]], axis=0)[:len(a)]
    count = onp.minimum(onp.arange(1, len(a) + 1), 3).reshape((-1,) + (1,) * (a.ndim - 1))
    return (c - lagged) / count


def _phi(bar, t, xs, with_phi3, sq=None):
    """States at the times t (m,) with iterates xs (m, n, P); ``bar(k)`` gives the averages
    (f̄, ḡ, x̄) at the times k (m, L), each (m, L, n[, P]), zero where k < 0 (113)–(116);
    sq (m, n, P): S_t for the scale-free Φ2, or None for the paper's."""
    t, i = t[:, None], onp.arange(LAGS + 1)[None, :]
    floor = lambda k: onp.maximum(k, t % STRIDE)  # noqa: E731
    j = i[:, :-1]
    (f_new, g_new, x_new), (f_old, _, x_old) = bar(t - STRIDE * i), bar(t - STRIDE * (i + 1))
    phi1 = _relative(f_new[:, :-1], f_old[:, :-1])                           # (m, 25, n)
    den = (onp.abs(bar(floor(t - STRIDE * (i + 1)))[1]) + 1.0 if sq is None
           else onp.sqrt(sq)[:, None] + EPS)
    phi2 = g_new / den                                                       # (m, 26, n, P)
    parts = [xs[..., None], onp.moveaxis(phi1, 1, -1)[:, :, None, :]
             * onp.ones((1, 1, xs.shape[-1], 1)), onp.moveaxis(phi2, 1, -1)]
    if with_phi3:
        num = bar(floor(t - STRIDE * (j + 1)))[2] - bar(floor(t - STRIDE * (j + 2)))[2]
        den = onp.abs(x_new[:, :-1] - x_old[:, :-1]) + 0.1
        parts.append(onp.moveaxis(onp.abs(num / den), 1, -1))
    return onp.concatenate(parts, axis=-1)


def phi(fs, gs, xs, *, with_phi3=True, features=PAPER):
    """The per-coordinate GPS states s_t^j for t = 0 … T: (T + 1, n, P, 77), or 52 without Φ3.

    fs (T + 1, n), gs and xs (T + 1, n, P): a recorded run's minibatch objectives, gradients and
    iterates. The output holds T + 1 × n × P × 77 numbers: pass only the coordinates needed, or
    use ``phi_step`` during a run.
    """
    fs, gs, xs = _check_history(fs, gs, xs)
    pad = STRIDE * (LAGS + 1)                   # row k + pad holds time k; zeros before time 0
    padded = [onp.concatenate([onp.zeros((pad,) + a.shape[1:]), averages(a)]) for a in (fs, gs, xs)]
    sq = None if features.gradient == "paper" else onp.cumsum(gs ** 2, axis=0)
    return _phi(lambda k: tuple(a[k + pad] for a in padded), onp.arange(len(fs)), xs, with_phi3,
                sq)


RING = STRIDE * (LAGS + 1) + 1   # 131: the oldest average a state uses is 130 steps back


class PhiState(NamedTuple):
    """What Φ needs from the past: the averages (f̄ (n,), ḡ (n, P), x̄ (n, P)) of the last RING
    times, oldest first, and the raw values of the two steps before the next. A tuple of
    arrays, so a step shares the unchanged rows with the previous state instead of copying."""
    bars: tuple          # ((f̄, ḡ, x̄) at t − len(bars), …, at t − 1)
    raw: tuple           # ((f, g, x) at t − 1, (f, g, x) at t − 2), None before they exist
    t: int               # steps seen so far
    sq: object = None    # (n, P) S_{t−1} = Σ_{k<t} (∇f̂_k)², for the scale-free Φ2


def phi_init(x0):
    """The state before t = 0, for iterates shaped like x0 (n, P)."""
    if onp.ndim(x0) != 2:
        raise ValueError(f"x0 must have shape (n, P), got {onp.shape(x0)}")
    return PhiState((), (None, None), 0)


def phi_step(state, x, f, g, *, with_phi3=True, features=PAPER):
    """s_t (n, P, 77) and the next state from x_t (n, P), f̂_t (n,), ∇f̂_t (n, P): ``phi`` one
    step at a time, in O(RING · n · P) memory (GPS's controllers act on every coordinate)."""
    t, (prev, prev2) = state.t, state.raw
    values = [(f, g, x)] + [r for r in (prev, prev2) if r is not None]
    newest = tuple(sum(v[k] for v in values) / len(values) for k in range(3))
    bars = (state.bars + (newest,))[-RING:]
    first = t + 1 - len(bars)                                  # the time of bars[0]

    def bar(k):
        rows = [bars[kk - first] if kk >= 0 else None for kk in k[0]]
        return tuple(onp.stack([r[c] if r is not None else onp.zeros_like(newest[c])
                                for r in rows])[None] for c in range(3))

    sq = (0.0 if state.sq is None else state.sq) + onp.asarray(g) ** 2
    out = _phi(bar, onp.array([t]), onp.asarray(x)[None], with_phi3,
               None if features.gradient == "paper" else sq[None])[0]
    return out, PhiState(bars, ((f, g, x), prev), t + 1, sq)
