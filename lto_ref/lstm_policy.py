"""Paper 2's learned optimizer: a coordinate-wise LSTM on the features Ψ (docs/method.md §13).

Coordinate j of group k (a weight matrix or bias vector of the net being trained) has its own
recurrent state and shares the parameters θ_k of its group (docs/method.md (117))::

    Ψ_t^j = nn_features.psi_step(…)                         (3,)
    h_t^j, c_t^j = LSTM_θk(Ψ_t^j, (h_{t−1}^j, c_{t−1}^j))      one layer of 128 cells, zero at t = 0
    μ_t^j = h_t^j w_k + β_k                                 read-out 128 → 1
    π(Δx^j | o_t) = N(μ_t^j, σ_k²)                          one variance per group

so the policy is invariant to permuting the coordinates of a group, and any net whose groups
follow the same order (W1, b1, W2, b2, …) can be trained by it. ``optimizer`` makes the mean step
an ``optimizers.Optimizer`` for ``rollout``; ``means`` runs it over recorded observations (GPS's
S-step). Groups are contiguous ranges of coordinates, ``nets.Net.groups``.
"""
import dataclasses
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp

from lto_ref import io, lstm, nn_features, optimizers

__all__ = ["Config", "Policy", "State", "init", "ranges", "step_means", "means", "optimizer",
           "zero_state", "save", "load"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of the policy; its parameters come from ``init``."""
    hidden: int = 128            # LSTM cells
    shared: bool = False         # one LSTM for every group instead of one per group
    init_scale: float = 0.1      # std of the fresh weights (forget bias 1, read-out bias 0)
    init_var: float = 1e-4       # σ_k² at initialisation

    def __post_init__(self):
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {self.hidden!r}")
        if not (0 <= self.init_scale < float("inf") and 0 < self.init_var < float("inf")):
            raise ValueError(f"init_scale must be finite and >= 0 and init_var > 0, got "
                             f"{self.init_scale}, {self.init_var}")


class Policy(NamedTuple):
    """θ: per group (or one, shared) LSTM (W (3 + H, 4H), b (4H,)) and read-out (w (H, 1), β (1,));
    var (G,) the action variance of each of the G groups."""
    cells: list    # [(W, b)], length G, or 1 when shared
    outs: list     # [(w, β)], same length
    var: onp.ndarray


class State(NamedTuple):
    """The optimizer's state: what Ψ needs, and the LSTM state of every coordinate."""
    psi: nn_features.PsiState
    h: onp.ndarray   # (n, P, H)
    c: onp.ndarray   # (n, P, H)


def ranges(net):
    """[(start, stop)] of each coordinate group of a ``nets.Net``, in order."""
    return [(start, start + int(onp.prod(shape))) for _, start, shape in net.groups]


def init(rng, n_groups, cfg=Config()):
    """A fresh Policy for ``n_groups`` groups: ``lstm.init`` weights, read-out N(0, init_scale²)."""
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    k = 1 if cfg.shared else n_groups
    rngs = rng.spawn(2 * k)
    cells = [lstm.init(r, nn_features.PSI_DIM, cfg.hidden, scale=cfg.init_scale) for r in rngs[:k]]
    outs = [(cfg.init_scale * r.standard_normal((cfg.hidden, 1)), onp.zeros(1)) for r in rngs[k:]]
    return Policy(cells, outs, onp.full(n_groups, cfg.init_var))


def _check(policy, groups):
    if len(policy.var) != len(groups) or len(policy.cells) not in (1, len(groups)):
        raise ValueError(f"the policy has {len(policy.var)} variances and {len(policy.cells)} "
                         f"cells; groups has {len(groups)} ranges")


def step_means(cells, outs, groups, psi, h, c, *, step=lstm.cell):
    """μ (n, P) and the next (h, c) from Ψ (n, P, 3) and h, c (n, P, H): each group's coordinates
    through its own (or the shared) LSTM; differentiable in cells and outs with ``step`` =
    ``lstm.cell``, values only (faster) with ``lstm.forward``."""
    mus, hs, cs = [], [], []
    for k, (start, stop) in enumerate(groups):
        cell, (w, beta) = cells[k % len(cells)], outs[k % len(outs)]
        h_k, state = step(cell, psi[:, start:stop], lstm.LSTMState(h[:, start:stop],
                                                                   c[:, start:stop]))
        mus.append(np.matmul(h_k, w)[..., 0] + beta)
        hs.append(h_k), cs.append(state.c)
    return (np.concatenate(mus, axis=1), np.concatenate(hs, axis=1),
            np.concatenate(cs, axis=1))


def zero_state(x0, hidden):
    """The state before t = 0 for iterates x0 (n, P)."""
    zeros = onp.zeros(onp.shape(x0) + (hidden,))
    return State(psi=nn_features.psi_init(x0), h=zeros, c=zeros)


def means(cells, outs, groups, psis, h0, c0):
    """μ_t (T, n, P) of recorded observations Ψ (T, n, P, 3) from the LSTM state (h0, c0)
    (n, P, H); differentiable in cells and outs (the S-step's forward pass over a window, each
    group through ``lstm.sequence``)."""
    mus = []
    for k, (start, stop) in enumerate(groups):
        cell, (w, beta) = cells[k % len(cells)], outs[k % len(outs)]
        hs = lstm.sequence(cell, psis[:, :, start:stop],
                           lstm.LSTMState(h0[:, start:stop], c0[:, start:stop]))
        mus.append(np.matmul(hs, w)[..., 0] + beta)                    # (T, n, P_k)
    return np.concatenate(mus, axis=2)


def optimizer(policy, groups, dtype="float64", features=nn_features.PAPER):
    """The policy's mean step as an ``optimizers.Optimizer`` on nets with these groups (contiguous
    (start, stop) ranges covering the P coordinates, ``ranges(net)``). ``dtype="float32"`` runs
    the LSTM and read-out in single precision (Ψ, x and the step stay float64); ``features``
    (``nn_features.Features``) is the form of Ψ the policy was trained on."""
    _check(policy, groups)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    hidden = onp.shape(policy.outs[0][0])[0]
    cells = [(W.astype(dtype), b.astype(dtype)) for W, b in policy.cells]
    outs = [(w.astype(dtype), beta.astype(dtype)) for w, beta in policy.outs]

    def init(x0):
        zero = zero_state(x0, hidden)
        return zero._replace(h=zero.h.astype(dtype), c=zero.c.astype(dtype))

    def step(state, x, f, g):
        psi, psi_state = nn_features.psi_step(state.psi, x, f, g, features)
        mu, h, c = step_means(cells, outs, groups, psi.astype(dtype), state.h, state.c,
                              step=lstm.forward)
        return mu.astype(onp.float64), State(psi=psi_state, h=h, c=c)

    return optimizers.Optimizer(init, step)


def save(path, policy, **meta):
    """Write the policy to ``path``.npz + .json (atomic, ``lto_ref.io``): arrays W_k, b_k, w_k,
    beta_k per cell and var; ``meta`` (JSON-serialisable) plus kind, cells, hidden, groups."""
    arrays = {"var": onp.asarray(policy.var, dtype=float)}
    for k, ((W, b), (w, beta)) in enumerate(zip(policy.cells, policy.outs)):
        arrays.update({f"W_{k}": W, f"b_{k}": b, f"w_{k}": w, f"beta_{k}": beta})
    record = dict(meta, kind="lstm_policy", cells=len(policy.cells), groups=len(policy.var),
                  hidden=int(onp.shape(policy.outs[0][0])[0]))
    return io.save_arrays(path, {k: onp.asarray(v, dtype=float) for k, v in arrays.items()},
                          record)


def load(path):
    """Read a policy written by ``save``: (Policy, meta). A malformed file raises ValueError."""
    arrays, meta = io.load_arrays(path)
    json_path = io.paths(path)[1]
    K, G, H = (meta.get(k) for k in ("cells", "groups", "hidden"))
    if (meta.get("kind") != "lstm_policy" or not all(type(v) is int and v >= 1 for v in (K, G, H))
            or K not in (1, G)):
        raise ValueError(f"{json_path}: not an LSTM policy file (kind 'lstm_policy', positive "
                         f"integers cells ∈ {{1, groups}}, groups, hidden; got {meta!r})")
    d = nn_features.PSI_DIM
    shapes = {"var": (G,)}
    for k in range(K):
        shapes.update({f"W_{k}": (d + H, 4 * H), f"b_{k}": (4 * H,), f"w_{k}": (H, 1),
                       f"beta_{k}": (1,)})
    found = {name: a.shape for name, a in arrays.items()}
    if found != shapes or not all(onp.isfinite(a).all() for a in arrays.values()):
        raise ValueError(f"{json_path}: arrays {found} must be finite with shapes {shapes}")
    if not onp.all(arrays["var"] > 0):
        raise ValueError(f"{json_path}: var must be positive")
    a = {name: v.astype(float) for name, v in arrays.items()}
    return Policy([(a[f"W_{k}"], a[f"b_{k}"]) for k in range(K)],
                  [(a[f"w_{k}"], a[f"beta_{k}"]) for k in range(K)], a["var"]), meta
