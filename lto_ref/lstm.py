"""The LSTM cell of paper 2's coordinate-wise policies (docs/method.md §12) and of Andrychowicz
et al. (2016): standard gates, no peepholes, forget-gate bias 1::

    [z_i, z_f, z_g, z_o] = [x, h] W + b                      (..., 4·n_hidden), gates in this order
    i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
    c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

The cell acts on the last axis and broadcasts over any leading ones (coordinates, samples, …),
so one set of parameters serves every coordinate of a coordinate-wise optimizer. θ =
``(W (n_in + n_hidden, 4·n_hidden), b (4·n_hidden,))`` is a plain tuple (a stack of layers, a list
of them) so that autograd can differentiate it; the state is an ``LSTMState`` of arrays.

References: S. Hochreiter, J. Schmidhuber, Long short-term memory, Neural Computation 9(8), 1997;
F. Gers, J. Schmidhuber, F. Cummins, Learning to forget, Neural Computation 12(10), 2000.
"""
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, defvjp_argnums, primitive

__all__ = ["LSTMState", "init", "zero_state", "sigmoid", "tanh", "cell", "forward", "stack_init",
           "stack_zero_state", "stack_cell", "sequence"]


class LSTMState(NamedTuple):
    """The recurrent state of one layer; zero before the first step."""
    h: np.ndarray  # (..., n_hidden) output h
    c: np.ndarray  # (..., n_hidden) memory c


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, onp.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def init(rng, n_in, n_hidden, *, scale=0.1):
    """Fresh parameters: W i.i.d. N(0, scale²); b = 1 on the forget gate, 0 elsewhere.

    Parameters
    ----------
    rng : np.random.Generator
    n_in, n_hidden : input size and number of cells
    scale : standard deviation of the weights (0.1: small against the forget bias, so a fresh
        cell keeps most of its memory; our choice)

    Returns
    -------
    (W (n_in + n_hidden, 4·n_hidden), b (4·n_hidden,)) with gate blocks (input, forget, cell,
    output) along the last axis of both.

    Raises
    ------
    ValueError : n_in or n_hidden not a positive integer, scale negative or not finite.
    """
    n_in, n_hidden = _check_size("n_in", n_in), _check_size("n_hidden", n_hidden)
    if not 0 <= scale < float("inf"):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")
    W = scale * rng.standard_normal((n_in + n_hidden, 4 * n_hidden))
    b = onp.concatenate([onp.zeros(n_hidden), onp.ones(n_hidden), onp.zeros(2 * n_hidden)])
    return W, b


def zero_state(shape, n_hidden):
    """The initial state: h = c = 0, each of shape (*shape, n_hidden)."""
    zeros = onp.zeros(tuple(shape) + (_check_size("n_hidden", n_hidden),))
    return LSTMState(h=zeros, c=zeros)


@primitive
def sigmoid(z):
    """σ(z) = 1 / (1 + e⁻ᶻ), elementwise; e⁻ᶻ = inf below z ≈ −709 gives the limit 0.

    ``sigmoid`` and ``tanh`` are primitives whose derivatives are read off their values,
    σ' = σ (1 − σ) and tanh' = 1 − tanh², so each costs one exp per element: float64 exp dominates
    the cell's cost (numpy's tanh is ~3× slower here, and autograd's tanh rule calls cosh).
    """
    with onp.errstate(over="ignore"):
        return 1.0 / (1.0 + onp.exp(-z))


@primitive
def tanh(z):
    """tanh z = 2σ(2z) − 1, elementwise (absolute error ~1e-16), with tanh' = 1 − tanh²."""
    with onp.errstate(over="ignore"):
        return 2.0 / (1.0 + onp.exp(-2.0 * z)) - 1.0


defvjp(sigmoid, lambda s, z: lambda v: v * s * (1.0 - s))
defvjp(tanh, lambda t, z: lambda v: v * (1.0 - t * t))


def cell(params, x, state):
    """One step of the LSTM: (h', LSTMState(h', c')), differentiable in params, x and state.

    Parameters
    ----------
    params : (W (n_in + n_hidden, 4·n_hidden), b (4·n_hidden,)), from ``init``
    x : (..., n_in) input
    state : LSTMState with h, c of shape (..., n_hidden), the same leading shape as x

    Returns
    -------
    h' : (..., n_hidden), and the new LSTMState(h', c')

    Raises
    ------
    ValueError : x or the state does not fit W.
    """
    W, b = params
    n_hidden = np.shape(W)[1] // 4
    n_in = np.shape(W)[0] - n_hidden
    if np.shape(x)[-1:] != (n_in,) or np.shape(state.h)[-1:] != (n_hidden,):
        raise ValueError(f"x must be (..., {n_in}) and the state (..., {n_hidden}), got "
                         f"{np.shape(x)} and {np.shape(state.h)}")
    z = np.matmul(np.concatenate([x, state.h], axis=-1), W) + b   # (..., 4·n_hidden)
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)                  # each (..., n_hidden)
    c = sigmoid(z_f) * state.c + sigmoid(z_i) * tanh(z_g)
    h = sigmoid(z_o) * tanh(c)
    return h, LSTMState(h=h, c=c)


def _tanh_values(c):
    """tanh c: numpy's in single precision (faster there), ``tanh``'s 2σ(2c) − 1 in double."""
    if c.dtype == onp.float32:
        return onp.tanh(c)
    return tanh(c)


def forward(params, x, state, *, rows=1024):
    """``cell``'s values without its derivatives: (h', LSTMState(h', c')), shapes as in ``cell``.

    The step of a trained optimizer at test time, where the cell runs over every coordinate of a
    net (tens of thousands of rows) and nothing is differentiated. It works through ``rows`` rows
    at a time, so that the gates of a block (rows × 4·n_hidden) stay in the processor's cache
    across the elementwise passes, and takes σ of the four gate blocks in one pass, with
    tanh z_g = 2σ(2 z_g) − 1. Arithmetic in the dtype of x, the state and W (take them alike);
    the values agree with ``cell``'s to rounding.
    """
    W, b = params
    H = onp.shape(W)[1] // 4
    n_in = onp.shape(W)[0] - H
    if onp.shape(x)[-1:] != (n_in,) or onp.shape(state.h) != onp.shape(x)[:-1] + (H,) or \
            onp.shape(state.c) != onp.shape(state.h):
        raise ValueError(f"x must be (..., {n_in}) and the state (..., {H}) with the same leading "
                         f"shape, got {onp.shape(x)}, {onp.shape(state.h)}, {onp.shape(state.c)}")
    rows = _check_size("rows", rows)
    lead = onp.shape(x)[:-1]
    xs, hs, cs = (onp.reshape(v, (-1, onp.shape(v)[-1])) for v in (x, state.h, state.c))
    h_new, c_new = onp.empty_like(hs), onp.empty_like(cs)
    for s in range(0, len(xs), rows):
        block = slice(s, s + rows)
        a = onp.matmul(onp.concatenate([xs[block], hs[block]], axis=-1), W)
        a += b
        a[:, 2 * H:3 * H] *= 2.0
        onp.negative(a, out=a)
        with onp.errstate(over="ignore"):
            onp.exp(a, out=a)
        a += 1.0
        onp.reciprocal(a, out=a)                          # σ of z_i, z_f, 2 z_g, z_o
        g = a[:, 2 * H:3 * H]
        g *= 2.0
        g -= 1.0                                          # tanh z_g
        c = onp.multiply(a[:, H:2 * H], cs[block], out=c_new[block])
        c += a[:, :H] * g
        onp.multiply(a[:, 3 * H:], _tanh_values(c), out=h_new[block])
    h, c = h_new.reshape(lead + (H,)), c_new.reshape(lead + (H,))
    return h, LSTMState(h=h, c=c)


def stack_init(rng, n_in, sizes, *, scale=0.1):
    """Parameters of stacked layers: a list of ``init`` pairs, layer k of ``sizes[k]`` cells
    reading layer k−1's output (layer 0 reads the input). One generator per layer, spawned."""
    sizes = tuple(sizes)
    if not sizes:
        raise ValueError("sizes must name at least one layer, got ()")
    rngs = rng.spawn(len(sizes))
    return [init(r, m, k, scale=scale) for r, m, k in zip(rngs, (n_in,) + sizes[:-1], sizes)]


def stack_zero_state(shape, sizes):
    """A tuple of zero ``LSTMState``s, one per layer of ``sizes``."""
    return tuple(zero_state(shape, k) for k in sizes)


def stack_cell(params, x, states, *, step=None):
    """One step of stacked layers, no skip connections: (top h (..., sizes[-1]), new states).

    params : list of (W, b) per layer;  x : (..., n_in);  states : tuple of LSTMState per layer;
    step : the layer's step, ``cell`` (None, differentiable) or ``forward`` (values only).
    """
    step = cell if step is None else step
    if len(params) != len(states):
        raise ValueError(f"states must hold one LSTMState per layer ({len(params)}), "
                         f"got {len(states)}")
    new_states = []
    for layer, state in zip(params, states):
        x, state = step(layer, x, state)
        new_states.append(state)
    return x, tuple(new_states)


@primitive
def _sequence(W, b, xs, h0, c0):
    """(hs (T, ..., H), saved) of ``sequence``; saved holds what the backward pass needs."""
    H = onp.shape(h0)[-1]
    h, c, hs, saved = h0, c0, [], []
    for x in xs:
        z = onp.matmul(onp.concatenate([x, h], axis=-1), W) + b
        i, f, o = (sigmoid(z[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = tanh(z[..., 2 * H:3 * H])
        c_prev, c = c, f * c + i * g
        tc = tanh(c)
        saved.append((h, c_prev, i, f, g, o, tc))
        h = o * tc
        hs.append(h)
    return onp.stack(hs), saved


def _sequence_vjp(argnums, ans, args, kwargs):
    W, b, xs, h0, c0 = args
    saved = ans[1]
    n_in = onp.shape(xs)[-1]

    def vjp(v):
        dhs = v[0]
        dW, db, dxs = onp.zeros_like(W), onp.zeros_like(b), onp.zeros_like(xs)
        dh_next, dc_next = onp.zeros_like(h0), onp.zeros_like(c0)
        for t in range(len(xs) - 1, -1, -1):
            h_prev, c_prev, i, f, g, o, tc = saved[t]
            dh = dhs[t] + dh_next
            dc = dc_next + dh * o * (1.0 - tc * tc)
            dz = onp.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                  dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
            xh = onp.concatenate([xs[t], h_prev], axis=-1)
            dW += onp.matmul(xh.reshape(-1, xh.shape[-1]).T, dz.reshape(-1, dz.shape[-1]))
            db += dz.reshape(-1, dz.shape[-1]).sum(axis=0)
            dxh = onp.matmul(dz, W.T)
            dxs[t], dh_next, dc_next = dxh[..., :n_in], dxh[..., n_in:], dc * f
        grads = {0: dW, 1: db, 2: dxs, 3: dh_next, 4: dc_next}
        return tuple(grads[k] for k in argnums)
    return vjp


defvjp_argnums(_sequence, _sequence_vjp)


def sequence(params, xs, state):
    """h_1 … h_T (T, ..., n_hidden) of one layer run over inputs xs (T, ..., n_in) from ``state``:
    ``cell`` applied T times, as one autograd primitive whose backward pass (backpropagation
    through time) is written out — one node instead of about twenty per step, which matters for
    the short windows and small batches of an S-step. Differentiable in params, xs and state."""
    W, b = params
    n_hidden = np.shape(W)[1] // 4
    if (np.ndim(xs) < 2 or np.shape(xs)[-1] != np.shape(W)[0] - n_hidden
            or np.shape(state.h) != np.shape(xs)[1:-1] + (n_hidden,)):
        raise ValueError(f"xs must be (T, ..., {np.shape(W)[0] - n_hidden}) and the state "
                         f"(..., {n_hidden}) with the same leading shape, got {np.shape(xs)} "
                         f"and {np.shape(state.h)}")
    return _sequence(W, b, xs, state.h, state.c)[0]
