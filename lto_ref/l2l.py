"""L2LBGDBGD, the coordinate-wise LSTM optimizer of Andrychowicz et al. (2016), paper 2's learned
baseline, with the defaults of DeepMind's code (docs/method.md §12)::

    u_t = LogAndSign(∇f̂_t(x_t))                  (n·P, 2): every coordinate is a row
    h_t, state_{t+1} = LSTM_θ(u_t, state_t)        2 layers of 20 cells shared by all rows
    Δx_t = 0.01 · (h_t W_out + b_out)               (n, P), read-out 20 → 1

Meta-training (docs/method.md (109)): truncated backpropagation through unrolls of K = 20 steps
of a T = 400-step run, L(θ) = Σ_{k=1}^{K} f̂_{t+k}(x_{t+k}) with x_{s+1} = x_s + Δx_s, each f̂_s on
the minibatch that also gives the optimizer ∇f̂_s(x_s). The gradients fed to the LSTM are constants
(no second derivatives of f̂); f̂_s(x_s) is differentiated through x_s, ∂L/∂x_s = ∇f̂_s(x_s) being
already computed. x and the LSTM state carry over between unrolls as constants; each run (epoch)
draws a new x⁽⁰⁾ and minibatch order and starts from the zero state.

References: M. Andrychowicz et al., Learning to learn by gradient descent by gradient descent,
NIPS 2016; K. Li, J. Malik, Learning to Optimize Neural Nets, 2017 (its L2LBGDBGD baseline).
"""
import dataclasses
import functools
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd import grad_and_aux
from autograd.extend import defvjp, primitive
from autograd.misc.flatten import flatten
from autograd.tracer import getval

from lto_ref import io, lstm, nets, optimizers
from lto_ref.autodiff import value_and_grad

__all__ = ["Config", "L2LState", "Carry", "LogRow", "L2LLog", "log_and_sign", "init", "optimizer",
           "start", "unroll", "unroll_grad", "train", "save", "load"]

N_INPUTS = 2  # LogAndSign gives two inputs per coordinate


@dataclasses.dataclass(frozen=True)
class Config:
    """L2LBGDBGD settings, DeepMind's defaults; quick variants by ``dataclasses.replace``."""
    layers: tuple = (20, 20)      # LSTM cells per layer
    k: float = 5.0                # LogAndSign's k
    eps: float = 2.0 ** -52       # log(|g| + eps), finite at g = 0: float64 machine epsilon
    output_scale: float = 0.01    # Δx = output_scale · read-out
    unroll: int = 20              # K, steps per truncated unroll
    T: int = 400                  # steps per run (one epoch), a multiple of K
    batch: int = 64               # minibatch size
    lr: float = 1e-3              # Adam on θ
    epochs: int = 200             # meta-training runs; our choice, ~13 min on one core (not 10,000)
    x0_scale: float = 0.1         # x⁽⁰⁾ ~ N(0, x0_scale²) per run
    runs: int = 1                 # optimizee runs per epoch, meta-loss averaged over them
    init_scale: float = 0.1       # std of the fresh LSTM and read-out weights (our choice)
    dtype: str = "float32"        # the LSTM's arithmetic, as DeepMind's; "float64": 2× slower

    def __post_init__(self):
        for name in ("unroll", "T", "batch", "epochs", "runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.T % self.unroll:
            raise ValueError(f"T must be a multiple of unroll = {self.unroll}, got {self.T}")
        if not tuple(self.layers) or not all(isinstance(m, int) and m >= 1 for m in self.layers):
            raise ValueError(f"layers must be positive integers, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        for name in ("k", "eps", "output_scale", "lr", "x0_scale"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if not 0 <= self.init_scale < float("inf") or self.dtype not in ("float32", "float64"):
            raise ValueError(f"init_scale must be finite and >= 0 and dtype 'float32' or "
                             f"'float64', got {self.init_scale}, {self.dtype!r}")


class L2LState(NamedTuple):
    """Optimizer state: the LSTM's recurrent state, zero before the first step."""
    lstm: tuple  # one lstm.LSTMState per layer, h and c (n·P, layers[k]); row i·P + j is x[i, j]


class Carry(NamedTuple):
    """What passes from one unroll to the next (plain arrays, constants for the meta-gradient)."""
    x: np.ndarray       # (n, P) iterate x_t
    state: L2LState     # the optimizer's state before step t
    f: np.ndarray       # (n,) f̂_t(x_t) on minibatch t
    g: np.ndarray       # (n, P) ∇f̂_t(x_t)


class LogRow(NamedTuple):
    """One unroll's record."""
    epoch: int          # run index
    loss: float         # meta-loss L of the unroll (nan if non-finite)
    grad_norm: float    # ‖∇_θ L‖ (nan if non-finite)
    skipped: bool       # Adam update skipped: L or ∇_θ L non-finite


class L2LLog(NamedTuple):
    """Arrays of ``train``; E epochs of U = T / unroll unrolls each."""
    loss: onp.ndarray        # (E·U,) meta-loss per unroll
    grad_norm: onp.ndarray   # (E·U,)
    skipped: onp.ndarray     # (E·U,) bool
    epoch_loss: onp.ndarray  # (E,) Σ_{t=1}^{T} f̂_t(x_t) / T (mean over runs), nan if skipped


def log_and_sign(g, k=5.0, *, eps=2.0 ** -52):
    """LogAndSign preprocessing of Andrychowicz et al. (2016), two inputs per coordinate.

    u = [max(log(|g| + eps) / k, −1), clip(g eᵏ, −1, 1)]: (log|g| / k, sign g) where
    |g| ≥ e⁻ᵏ, and (−1, eᵏ g) below. g : (...) -> u : (..., 2).
    """
    if not (0 < k < float("inf") and 0 < eps < float("inf")):
        raise ValueError(f"k and eps must be finite and > 0, got k={k}, eps={eps}")
    magnitude = np.maximum(np.log(np.abs(g) + eps) / k, -1.0)
    sign = np.clip(g * np.exp(k), -1.0, 1.0)
    return np.stack([magnitude, sign], axis=-1)


def init(rng, cfg=Config()):
    """θ = [(W_1, b_1), …, (W_L, b_L), (W_out (layers[-1], 1), b_out (1,))]: ``lstm.stack_init``
    with N(0, init_scale²) weights and forget bias 1, read-out N(0, init_scale²) and bias 0."""
    rng_lstm, rng_out = rng.spawn(2)
    W_out = cfg.init_scale * rng_out.standard_normal((cfg.layers[-1], 1))
    return lstm.stack_init(rng_lstm, N_INPUTS, cfg.layers, scale=cfg.init_scale) + [
        (W_out, onp.zeros(1))]


def _step(params, state, g, cfg, layer_step=None):
    """Δx (n, P) float64 and the next L2LState from ∇f̂ (n, P), differentiable in params with
    layer_step None (``lstm.forward``: values only); LSTM and read-out in ``cfg.dtype``."""
    u = np.reshape(log_and_sign(g, cfg.k, eps=cfg.eps), (-1, N_INPUTS)).astype(cfg.dtype)
    cast = [(W.astype(cfg.dtype), b.astype(cfg.dtype)) for W, b in params]
    h, states = lstm.stack_cell(cast[:-1], u, state.lstm, step=layer_step)  # (n·P, layers[-1])
    out = (np.matmul(h, cast[-1][0]) + cast[-1][1]).astype(onp.float64)    # (n·P, 1)
    return cfg.output_scale * np.reshape(out, np.shape(g)), L2LState(lstm=states)


def _zero_state(x0, cfg):  # one LSTM row per coordinate
    return L2LState(lstm=tuple(lstm.LSTMState(s.h.astype(cfg.dtype), s.c.astype(cfg.dtype))
                               for s in lstm.stack_zero_state((np.size(x0),), cfg.layers)))


def _shapes(layers):
    """[(W shape, b shape)] of θ: W_k (m_{k−1} + m_k, 4 m_k), m_0 = 2; read-out (m_L, 1), (1,)."""
    inputs = [N_INPUTS] + list(layers[:-1])
    return [((m_in + m, 4 * m), (4 * m,)) for m_in, m in zip(inputs, layers)] + [
        ((layers[-1], 1), (1,))]


def optimizer(params, cfg=Config()):
    """θ as an ``optimizers.Optimizer``, Δx_t = output_scale (h_t W_out + b_out); coordinate-wise:
    each coordinate of x (n, P) is a row of the LSTM's batch (n·P), so problems do not interact."""
    found = [tuple(onp.shape(a) for a in pair) for pair in params]
    if found != _shapes(cfg.layers):
        raise ValueError(f"params must have the shapes {_shapes(cfg.layers)}, got {found}")

    def step(state, x, f, g):
        del x, f
        return _step(params, state, g, cfg, lstm.forward)

    return optimizers.Optimizer(lambda x0: _zero_state(x0, cfg), step)


@primitive
def _observed(x, f, g):
    """f̂(x) already evaluated: value f (n,), gradient g (n, P) at x, so ∂f̂/∂x = g."""
    return f                                # x and g serve the derivative only


defvjp(_observed, lambda ans, x, f, g: lambda v: v[:, None] * g)


def start(x0, objective, batch, cfg=Config()):
    """The Carry of a new run: x⁽⁰⁾ (n, P), zero LSTM state, f̂_0 and ∇f̂_0 on ``batch`` (B,)."""
    f, g = value_and_grad(lambda z: objective(z, batch), x0)
    return Carry(x=x0, state=_zero_state(x0, cfg), f=f, g=g)


def unroll(params, carry, objective, batches, cfg=Config()):
    """Meta-loss of one unroll, L = (1/n) Σ_i Σ_{k=1}^{K} f̂_{t+k}(x^i_{t+k}), and the next Carry.

    params : θ, differentiated;  carry : Carry at x_t (``start``, or the previous unroll's)
    objective : (x (n, P), batch (B,) int) -> f̂ (n,), differentiable by autograd
    batches : (K, B) int, the minibatches of x_{t+1} … x_{t+K};  cfg : Config
    Returns L, differentiable in params (the gradients fed to the LSTM are values; f̂_s(x_s) has
    derivative ∇f̂_s(x_s) in x_s), and the Carry at x_{t+K} (plain arrays).
    """
    if len(batches) < 1:
        raise ValueError("batches must hold at least one minibatch, got none")
    x, state, g, total = carry.x, carry.state, carry.g, 0.0
    for batch in batches:
        dx, state = _step(params, state, g, cfg)
        x = x + dx
        f, g = value_and_grad(lambda z: objective(z, batch), getval(x))
        total = total + np.sum(_observed(x, f, g))
    state = L2LState(lstm=tuple(lstm.LSTMState(getval(s.h), getval(s.c)) for s in state.lstm))
    return total / np.shape(x)[0], Carry(x=getval(x), state=state, f=f, g=g)


def unroll_grad(params, carry, objective, batches, cfg=Config()):
    """(L, ∇_θ L, next Carry) of one unroll (``unroll``); ∇_θ L has the structure of params."""
    def loss_and_carry(p):
        L, end = unroll(p, carry, objective, batches, cfg)
        return L, (getval(L), end.x, end.f, end.g, tuple(tuple(s) for s in end.state.lstm))

    grad, (L, x, f, g, states) = grad_and_aux(loss_and_carry)(params)
    state = L2LState(lstm=tuple(lstm.LSTMState(*s) for s in states))
    return float(L), grad, Carry(x=x, state=state, f=f, g=g)


def _check_data(net, inputs, labels, cfg):
    if not isinstance(net, nets.Net):
        raise ValueError(f"net must be a nets.Net, got {type(net).__name__}")
    inputs, labels = onp.asarray(inputs, dtype=float), onp.asarray(labels)
    N, d_in, C = len(inputs), net.sizes[0], net.sizes[-1]
    if inputs.shape != (N, d_in) or N < cfg.batch or not onp.isfinite(inputs).all():
        raise ValueError(f"inputs must be finite, (N, {d_in}) with N >= batch = {cfg.batch}, "
                         f"got shape {inputs.shape}")
    if (labels.shape != (N,) or not onp.issubdtype(labels.dtype, onp.integer)
            or labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"labels must be ({N},) integers in [0, {C}), got shape {labels.shape}")
    return inputs, labels


def _meta_step(adam, flat, adam_state, unflatten, carry, objective, batches, cfg):
    """One unroll and its Adam update: (flat, adam_state, carry, L, ‖∇L‖, skipped)."""
    with onp.errstate(all="ignore"):  # non-finite values are detected below, not warned about
        L, grad, carry = unroll_grad(unflatten(flat), carry, objective, batches, cfg)
    grad = flatten(grad)[0]
    norm = float(onp.sqrt(onp.sum(grad ** 2)))
    if not (onp.isfinite(L) and onp.isfinite(norm)):
        return flat, adam_state, carry, float("nan"), float("nan"), True
    dflat, adam_state = adam.step(adam_state, flat[None], None, grad[None])
    return flat + dflat[0], adam_state, carry, L, norm, False


def train(net, inputs, labels, config=Config(), seed=0, *, callback=None):
    """Meta-train L2LBGDBGD on a net's minibatch objective (Andrychowicz et al. 2016).

    Each epoch is one run: x⁽⁰⁾ ~ N(0, x0_scale²) (``nets.init``, ``runs`` problems), T + 1
    minibatches (``nets.minibatches``; batch s for f̂_s, s = 0 … T), the zero LSTM state, then
    T / K unrolls (``unroll_grad``), each followed by an Adam step on θ. A non-finite meta-loss or
    meta-gradient skips the update, and is logged. θ comes from the first of two streams spawned
    from ``seed``, run e from child e of the second (x⁽⁰⁾, then the minibatch order).

    Parameters: net (nets.Net); inputs (N, d_in) and labels (N,) int, the training data;
    config; seed; callback, optional ``callback(iteration, LogRow)`` after each unroll.
    Returns (θ after the last update, for ``optimizer(params, config)``; L2LLog).
    Raises ValueError for a net, inputs or labels that do not fit, or fewer points than a batch.
    """
    cfg = config
    inputs, labels = _check_data(net, inputs, labels, cfg)
    objective = functools.partial(nets.minibatch_loss, net, inputs, labels)
    rng_params, rng_runs = onp.random.default_rng(seed).spawn(2)
    flat, unflatten = flatten(init(rng_params, cfg))
    adam = optimizers.adam(cfg.lr)
    adam_state, rows, K = adam.init(flat[None]), [], cfg.unroll
    for epoch, rng in enumerate(rng_runs.spawn(cfg.epochs)):
        x0 = nets.init(rng, net, cfg.runs, scale=cfg.x0_scale)
        batches = nets.minibatches(rng, len(labels), cfg.batch, cfg.T + 1)
        carry = start(x0, objective, batches[0], cfg)
        for u in range(cfg.T // K):
            flat, adam_state, carry, L, norm, skipped = _meta_step(
                adam, flat, adam_state, unflatten, carry, objective,
                batches[u * K + 1:(u + 1) * K + 1], cfg)
            rows.append(LogRow(epoch=epoch, loss=L, grad_norm=norm, skipped=skipped))
            if callback is not None:
                callback(len(rows) - 1, rows[-1])
    loss, norm, skipped = (onp.array(column, dtype=dtype) for column, dtype in
                           zip(list(zip(*rows))[1:], (float, float, bool)))
    return unflatten(flat), L2LLog(loss, norm, skipped, loss.reshape(cfg.epochs, -1).sum(1) / cfg.T)


def _names(layers):
    return [(f"W{k}", f"b{k}") for k in range(1, len(layers) + 1)] + [("W_out", "b_out")]


def save(path, params, **meta):
    """Write θ to ``path``.npz + ``path``.json (atomic, ``lto_ref.io``): arrays W1, b1, …, W_out,
    b_out; ``meta`` (JSON-serialisable, e.g. the config and seed) plus kind and layers."""
    layers = [int(onp.shape(b)[0]) // 4 for _, b in params[:-1]]
    arrays = {name: onp.asarray(a, dtype=float) for names, pair in zip(_names(layers), params)
              for name, a in zip(names, pair)}
    return io.save_arrays(path, arrays, dict(meta, kind="l2l", layers=layers))


def load(path):
    """Read θ written by ``save``: (params, meta). A malformed file raises ValueError naming it."""
    arrays, meta = io.load_arrays(path)
    json_path = io.paths(path)[1]
    layers = meta.get("layers")
    if (meta.get("kind") != "l2l" or not isinstance(layers, list) or not layers
            or not all(type(m) is int and m >= 1 for m in layers)):
        raise ValueError(f"{json_path}: not an L2L file (kind 'l2l' and positive integer "
                         f"layers needed, got kind={meta.get('kind')!r}, layers={layers!r})")
    expected = {name: shape for names, shapes in zip(_names(layers), _shapes(layers))
                for name, shape in zip(names, shapes)}
    found = {k: a.shape for k, a in arrays.items()}
    if found != expected or not all(a.dtype.kind in "fi" and onp.isfinite(a).all()
                                     for a in arrays.values()):
        raise ValueError(f"{json_path}: arrays {found} must be finite with the shapes {expected} "
                         f"of layers {layers}")
    return [(arrays[W].astype(float), arrays[b].astype(float)) for W, b in _names(layers)], meta
