"""S-step for paper 2's coordinate-wise LSTM policy (docs/method.md §13, (121)).

The policy is regressed onto the controllers' mean actions on windows of their samples. Each
group's samples are blocks (``coordinates.run_blocks``): observations Ψ (G, M, T, 3), targets μ̃
(G, M, T) and precisions P̃ (G, M, T), M = N runs × K coordinates. A window is L consecutive
steps of one sample starting at a multiple of L; its LSTM state at the start comes from a forward
pass of the current policy from t = 0 without gradients (``start_states``). Adam minimises

    (1/2GB) Σ_windows Σ_{t in window} P̃_t (μ_θ(Ψ_t | h_start) − μ̃_t)²                (121)

over ``batch`` = B windows per group and step, the G groups' windows in one sum.
"""
import dataclasses
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.misc.flatten import flatten

from lto_ref import lstm, lstm_policy, optimizers
from lto_ref.gps import iteration

__all__ = ["Config", "start_states", "window_loss", "regress", "policy_variance", "ops"]


@dataclasses.dataclass(frozen=True)
class Config:
    """S-step settings (docs/method.md (121); our defaults)."""
    window: int = 20      # L, steps per window
    batch: int = 128      # windows per group and Adam step
    steps: int = 200      # Adam steps per S-step
    lr: float = 1e-3
    dtype: str = "float32"  # the LSTM's arithmetic in the windows (θ stays float64)

    def __post_init__(self):
        for name in ("window", "batch", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 < self.lr < float("inf") or self.dtype not in ("float32", "float64"):
            raise ValueError(f"lr must be finite and > 0 and dtype 'float32' or 'float64', got "
                             f"{self.lr}, {self.dtype!r}")


class Starts(NamedTuple):
    """The LSTM state of every sample at t = 0, L, 2L, …: h and c (G, M, T // L, H)."""
    h: onp.ndarray
    c: onp.ndarray


def start_states(policy, O, window):
    """Forward pass of the policy over the blocks' observations O (G, M, T, 3), keeping the state
    at the start of each window (no gradients)."""
    G, M, T, _ = O.shape
    hs, cs = [], []
    for g in range(G):
        cell = policy.cells[g % len(policy.cells)]
        zero = onp.zeros((M, onp.shape(cell[1])[0] // 4), dtype=cell[0].dtype)
        state = lstm.LSTMState(zero, zero)
        h_g, c_g = [], []
        for t in range(0, T - window + 1, window):
            h_g.append(state.h), c_g.append(state.c)
            for k in range(t, t + window):
                _, state = lstm.cell(cell, O[g, :, k], state)
        hs.append(onp.stack(h_g, 1)), cs.append(onp.stack(c_g, 1))
    return Starts(onp.stack(hs), onp.stack(cs))


def window_loss(cells, outs, O_w, h0, c0, target, prec, n_groups):
    """(121) on a batch of windows: O_w (L, G·B, 3), h0 and c0 (G·B, H), target and prec
    (L, G·B), group g's windows in columns g·B … (g + 1)·B − 1. Differentiable in cells, outs."""
    B = np.shape(O_w)[1] // n_groups
    groups = [(g * B, (g + 1) * B) for g in range(n_groups)]
    mu = lstm_policy.means(cells, outs, groups, O_w[:, None], h0[None], c0[None])[:, 0]
    return 0.5 * np.sum(prec * (mu - target) ** 2) / np.shape(O_w)[1]


def _draw(rng, starts, O, target, prec, cfg):
    """One batch of windows per group: (O_w, h0, c0, target_w, prec_w)."""
    G, M, T, _ = O.shape
    L, B = cfg.window, cfg.batch
    m = rng.integers(0, M, (G, B))
    w = rng.integers(0, starts.h.shape[2], (G, B))
    g = onp.repeat(onp.arange(G), B).reshape(G, B)
    steps = w[..., None] * L + onp.arange(L)                              # (G, B, L)
    pick = lambda a: onp.moveaxis(a[g[..., None], m[..., None], steps], 2, 0).reshape(  # noqa
        (L, G * B) + a.shape[3:])
    return (pick(O), starts.h[g, m, w].reshape(G * B, -1), starts.c[g, m, w].reshape(G * B, -1),
            pick(target), pick(prec))


def regress(rng, policy, O, target, prec, cfg=Config(), adam_state=None):
    """Adam on (121): returns (policy with new cells and outs, Adam state, losses (steps,)).

    O (G, M, T, 3), target and prec (G, M, T); the policy's variances are left to the caller
    (``policy_variance``).
    """
    G, M, T, _ = O.shape
    if T < cfg.window or target.shape != (G, M, T) or prec.shape != (G, M, T):
        raise ValueError(f"O must be (G, M, T >= window = {cfg.window}, 3) with target and prec "
                         f"(G, M, T); got {O.shape}, {target.shape}, {prec.shape}")
    dt = cfg.dtype
    single = policy._replace(cells=[tuple(a.astype(dt) for a in c) for c in policy.cells])
    O, target, prec = (onp.asarray(a, dtype=dt) for a in (O, target, prec))
    starts = start_states(single, O, cfg.window)
    flat, unflatten = flatten((policy.cells, policy.outs))
    adam = optimizers.adam(cfg.lr)
    state = adam.init(flat[None]) if adam_state is None else adam_state

    def loss(p, *batch):                           # θ in float64, the windows in ``dt``
        cells, outs = unflatten(p)
        cast = lambda pairs: [tuple(a.astype(dt) for a in pair) for pair in pairs]  # noqa
        return window_loss(cast(cells), cast(outs), *batch, G)
    objective = value_and_grad(loss)
    losses = onp.zeros(cfg.steps)
    for i in range(cfg.steps):
        losses[i], grad = objective(flat, *_draw(rng, starts, O, target, prec, cfg))
        step, state = adam.step(state, flat[None], None, onp.asarray(grad, dtype=float)[None])
        flat = flat + step[0]
    cells, outs = unflatten(flat)
    return policy._replace(cells=list(cells), outs=list(outs)), state, losses


def policy_variance(prec, w):
    """σ_k² = Σ w / Σ w P over each group's samples and steps, the inverse weighted mean
    precision, as ``sstep.policy_variance`` per group: (G,) from prec and w (G, M, T)."""
    G = len(prec)
    return w.reshape(G, -1).sum(axis=1) / (w * prec).reshape(G, -1).sum(axis=1)


def ops(cfg=Config()):
    """The LSTM policy's ``iteration.PolicyOps`` on blocks (``coordinates.run_blocks``): its mean
    actions from a forward pass over each sample's observations (in ``cfg.dtype``), and this
    S-step with the BADMM weights w folded into the precisions."""
    def mean(policy, samples):
        G, M, T, _ = samples.O.shape
        groups = [(g * M, (g + 1) * M) for g in range(G)]
        dt = cfg.dtype
        zero = onp.zeros((1, G * M, onp.shape(policy.outs[0][0])[0]), dtype=dt)
        obs = onp.moveaxis(samples.O, 2, 0).reshape(T, 1, G * M, -1).astype(dt)
        cast = lambda pairs: [tuple(a.astype(dt) for a in pair) for pair in pairs]  # noqa
        mu = lstm_policy.means(cast(policy.cells), cast(policy.outs), groups, obs, zero, zero)
        return onp.moveaxis(mu.reshape(T, G, M), 0, 2)[..., None].astype(float)   # (G, M, T, 1)

    def s_step(rng, st, samples, target, prec, w):
        P = onp.broadcast_to(prec[:, None, :, 0, 0], w.shape)                  # (G, M, T)
        pol, adam, losses = regress(rng, st.policy, samples.O, target[..., 0], P * w, cfg,
                                    st.adam)
        return pol._replace(var=policy_variance(P, w)), True, adam, float(losses.mean())

    return iteration.PolicyOps(mean=mean, s_step=s_step, variance=lambda pol: pol.var[:, None])
