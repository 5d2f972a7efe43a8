"""Hand-engineered update formulas π as pure ``(init, step)`` pairs (docs/method.md §4).

An optimizer computes the step of Algorithm 1 (paper 1, §3.1); only ``rollout.run`` applies it::

    state = opt.init(x0)
    dx, state = opt.step(state, x, f, g)        # x, g, dx: (n, d); f: (n,)
    x = x + dx

Hyperparameters are scalars shared by the whole batch; norms and inner products are per problem
(row), squares and roots elementwise. The fixed-step CG and L-BFGS follow the authors' released
code (no line search), which is what lets them diverge on non-convex families.
"""
from typing import Callable, NamedTuple

import autograd.numpy as np

from lto_ref import features, policy as policy_lib

__all__ = [
    "Optimizer", "gd", "momentum", "conjugate_gradient", "lbfgs", "adam", "adagrad", "rmsprop",
    "learned", "by_name", "MomentumState", "CGState", "LBFGSState", "AdamState", "AccumState",
    "LearnedState",
]


class Optimizer(NamedTuple):
    """A pure update formula: ``init(x0) -> state``, ``step(state, x, f, g) -> (dx, state)``."""
    init: Callable
    step: Callable


class MomentumState(NamedTuple):
    v: np.ndarray  # (n, d) velocity, v_{-1} = 0


class CGState(NamedTuple):
    d: np.ndarray    # (n, d) previous search direction d_{t-1}, 0 before the first step
    gsq: np.ndarray  # (n,) ‖g_{t-1}‖², 0 before the first step


class LBFGSState(NamedTuple):
    S: np.ndarray       # (n, m, d) steps s_k = x_{k+1} − x_k, newest last
    Y: np.ndarray       # (n, m, d) gradient changes y_k = g_{k+1} − g_k, newest last
    x_prev: np.ndarray  # (n, d) x_{t-1}
    g_prev: np.ndarray  # (n, d) g_{t-1}
    t: np.ndarray       # () int64: steps taken so far


class AdamState(NamedTuple):
    m: np.ndarray  # (n, d) first moment
    v: np.ndarray  # (n, d) second moment
    t: np.ndarray  # () int64: steps taken so far


class AccumState(NamedTuple):
    s: np.ndarray  # (n, d) accumulated squared gradients (AdaGrad: sum; RMSprop: EMA)


class LearnedState(NamedTuple):
    hist: features.History  # history of x, f, g up to the previous step
    t: np.ndarray           # () int64: steps taken so far


def _positive(name, value):
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return float(value)


def _nonnegative(name, value):
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return float(value)


def _unit_interval(name, value, closed_left=True):
    ok = (0 <= value < 1) if closed_left else (0 < value < 1)
    if not ok:
        raise ValueError(f"{name} must be in {'[0' if closed_left else '(0'}, 1), got {value}")
    return float(value)


def _rowdot(a, b):
    """Per-problem inner products: (n, d), (n, d) -> (n,)."""
    return np.sum(a * b, axis=-1)


def gd(lr):
    """Gradient descent: Δx_t = −lr · g_t (docs/method.md (15))."""
    lr = _nonnegative("lr", lr)

    def step(state, x, f, g):
        del x, f
        return -lr * g, state

    return Optimizer(lambda x0: (), step)


def momentum(lr, mass=0.9):
    """Heavy-ball momentum: v_t = mass · v_{t−1} + g_t, v_{−1} = 0; Δx_t = −lr · v_t (docs/method.md (16)).

    Unrolled, Δx_t = −lr Σ_{j≤t} mass^{t−j} g_j (paper 1, Table 1, with α = mass).
    """
    lr, mass = _nonnegative("lr", lr), _unit_interval("mass", mass)

    def step(state, x, f, g):
        del x, f
        v = mass * state.v + g  # (n, d)
        return -lr * v, MomentumState(v=v)

    return Optimizer(lambda x0: MomentumState(v=np.zeros_like(x0, dtype=float)), step)


def conjugate_gradient(lr):
    """Fletcher–Reeves conjugate gradient with a fixed step, no restarts (docs/method.md (17)).

    d_0 = −g_0;  d_t = −g_t + β_t d_{t−1},  β_t = ‖g_t‖² / ‖g_{t−1}‖² (0 where ‖g_{t−1}‖ = 0);
    Δx_t = lr · d_t.
    """
    lr = _nonnegative("lr", lr)

    def init(x0):
        return CGState(d=np.zeros_like(x0, dtype=float), gsq=np.zeros(np.shape(x0)[0]))

    def step(state, x, f, g):
        del x, f
        gsq = _rowdot(g, g)                                            # (n,)
        has_prev = state.gsq > 0
        beta = np.where(has_prev, gsq / np.where(has_prev, state.gsq, 1.0), 0.0)  # (n,)
        d = -g + beta[:, None] * state.d                               # (n, d)
        return lr * d, CGState(d=d, gsq=gsq)

    return Optimizer(init, step)


def _two_loop(g, S, Y, offset):
    """L-BFGS two-loop recursion r ≈ H g over the pairs (S, Y) (n, k, d), newest last (docs/method.md (18)–(19))."""
    k = S.shape[1]
    rho = [1.0 / (_rowdot(Y[:, i], S[:, i]) + offset) for i in range(k)]  # each (n,)
    q, alpha = g, [None] * k
    for i in reversed(range(k)):                                           # newest -> oldest
        alpha[i] = rho[i] * _rowdot(S[:, i], q)
        q = q - alpha[i][:, None] * Y[:, i]
    s_new, y_new = S[:, -1], Y[:, -1]
    yy = _rowdot(y_new, y_new)
    h = np.where(yy > 0, _rowdot(s_new, y_new) / np.where(yy > 0, yy, 1.0), 1.0)  # (n,)
    r = h[:, None] * q
    for i in range(k):                                                     # oldest -> newest
        beta = rho[i] * _rowdot(Y[:, i], r)
        r = r + (alpha[i] - beta)[:, None] * S[:, i]
    return r


def lbfgs(lr, memory=10, *, offset=1e-8):
    """L-BFGS with a fixed step and no line search (docs/method.md (18)–(19); the authors' released code).

    Pairs s_k = x_{k+1} − x_k, y_k = g_{k+1} − g_k, the newest ``memory`` kept; ρ_k =
    1 / (y_kᵀ s_k + offset); initial scaling h = sᵀy / yᵀy of the newest pair (1 where yᵀy = 0).
    Δx_0 = −lr · g_0; afterwards Δx_t = −lr · r_t with r_t the two-loop recursion applied to g_t.
    Pairs with sᵀy ≤ 0 are kept, as in the released code. All problems advance in lockstep, so
    every problem stores min(t, memory) pairs.
    """
    lr = _nonnegative("lr", lr)
    if not isinstance(memory, int) or memory < 1:
        raise ValueError(f"memory must be an integer >= 1, got {memory!r}")
    offset = _nonnegative("offset", offset)

    def init(x0):
        n, d = np.shape(x0)
        zeros = np.zeros((n, memory, d))
        return LBFGSState(S=zeros, Y=zeros, x_prev=np.asarray(x0, dtype=float),
                          g_prev=np.zeros((n, d)), t=np.array(0))

    def step(state, x, f, g):
        del f
        t = int(state.t)
        S, Y = state.S, state.Y
        if t > 0:
            S = np.concatenate([S[:, 1:], (x - state.x_prev)[:, None]], axis=1)
            Y = np.concatenate([Y[:, 1:], (g - state.g_prev)[:, None]], axis=1)
        k = min(t, memory)
        r = _two_loop(g, S[:, memory - k:], Y[:, memory - k:], offset) if k else g
        return -lr * r, LBFGSState(S=S, Y=Y, x_prev=x, g_prev=g, t=np.array(t + 1))

    return Optimizer(init, step)


def adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015, Algorithm 1), bias-corrected, eps outside the root (docs/method.md (20)).

    With k = t + 1: m_t = b1 m_{t−1} + (1 − b1) g_t, v_t = b2 v_{t−1} + (1 − b2) g_t²,
    m̂ = m_t / (1 − b1^k), v̂ = v_t / (1 − b2^k), Δx_t = −lr · m̂ / (√v̂ + eps).
    """
    lr, eps = _nonnegative("lr", lr), _positive("eps", eps)
    b1, b2 = _unit_interval("b1", b1), _unit_interval("b2", b2)

    def init(x0):
        zeros = np.zeros_like(x0, dtype=float)
        return AdamState(m=zeros, v=zeros, t=np.array(0))

    def step(state, x, f, g):
        del x, f
        k = int(state.t) + 1
        m = b1 * state.m + (1 - b1) * g
        v = b2 * state.v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** k), v / (1 - b2 ** k)
        return -lr * m_hat / (np.sqrt(v_hat) + eps), AdamState(m=m, v=v, t=np.array(k))

    return Optimizer(init, step)


def adagrad(lr, eps=1e-10):
    """AdaGrad: G_t = G_{t−1} + g_t², G_{−1} = 0; Δx_t = −lr · g_t / (√G_t + eps) (docs/method.md (21))."""
    lr, eps = _nonnegative("lr", lr), _positive("eps", eps)

    def step(state, x, f, g):
        del x, f
        s = state.s + g ** 2
        return -lr * g / (np.sqrt(s) + eps), AccumState(s=s)

    return Optimizer(lambda x0: AccumState(s=np.zeros_like(x0, dtype=float)), step)


def rmsprop(lr, decay=0.99, eps=1e-8):
    """RMSprop: s_t = decay s_{t−1} + (1 − decay) g_t², s_{−1} = 0; Δx_t = −lr g_t / (√s_t + eps).

    No bias correction; decay 0.99 and eps 1e-8 are PyTorch's defaults (docs/method.md (22)).
    """
    lr, eps = _nonnegative("lr", lr), _positive("eps", eps)
    decay = _unit_interval("decay", decay)

    def step(state, x, f, g):
        del x, f
        s = decay * state.s + (1 - decay) * g ** 2
        return -lr * g / (np.sqrt(s) + eps), AccumState(s=s)

    return Optimizer(lambda x0: AccumState(s=np.zeros_like(x0, dtype=float)), step)


def learned(policy, *, H=25, variant="code", **feature_options):
    """Predicted step descent: Δx_t = μ_θ(o_t), the deterministic mean of the policy (docs/method.md §6).

    o_t is the observation of ``features.observe`` (variant, H, options as used in training)
    built from the history of iterates, objective values and gradients seen so far.
    """
    if not isinstance(policy, policy_lib.Policy):
        raise ValueError(f"policy must be a policy.Policy, got {type(policy).__name__}")

    def init(x0):
        n, d = np.shape(x0)
        return LearnedState(hist=features.init(x0, np.zeros(n), np.zeros((n, d)), H),
                            t=np.array(0))

    def step(state, x, f, g):
        t = int(state.t)
        hist = features.init(x, f, g, H) if t == 0 else features.push(state.hist, x, f, g)
        _, obs = features.observe(hist, variant, **feature_options)
        return policy_lib.mean(policy, obs), LearnedState(hist=hist, t=np.array(t + 1))

    return Optimizer(init, step)


_BASELINES = {"gd": gd, "momentum": momentum, "conjugate_gradient": conjugate_gradient,
              "lbfgs": lbfgs, "adam": adam, "adagrad": adagrad, "rmsprop": rmsprop}


def by_name(name, **hyperparameters):
    """The baseline called ``name`` built with ``hyperparameters``, e.g. ``by_name("gd", lr=0.1)``."""
    if name not in _BASELINES:
        raise ValueError(f"name must be one of {sorted(_BASELINES)}, got {name!r}")
    return _BASELINES[name](**hyperparameters)
