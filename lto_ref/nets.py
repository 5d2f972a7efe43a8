"""Paper 2's objectives: ReLU classifiers trained by minibatches, parameters as one flat vector.

A net ``d_in-h_1-…-C`` maps an input a ∈ R^{d_in} through ReLU hidden layers to C logits; its
parameters are one vector x ∈ R^P made of named coordinate groups, one per weight matrix and per
bias vector (W1, b1, W2, b2, …; matrices row-major, (fan_in, fan_out)). As for paper 1's families,
the objective is batched over n parameter vectors, x (n, P) -> f (n,) (docs/method.md §12)::

    z = relu(… relu(a W1 + b1) …) W_L + b_L                     logits (n, B, C)
    f̂(x; batch) = mean_{i ∈ batch} [logsumexp(z_i) − z_{i, y_i}]  minibatch objective
    f(x) = f̂(x; every training point)                           the true objective

No regularisation. ``minibatches`` draws the index stream from seeded reshuffles, so every method
can see the same x⁽⁰⁾ and the same minibatches.
"""
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

__all__ = ["Net", "mlp", "unflatten", "logits", "loss", "init", "minibatches", "group_ids"]


class Net(NamedTuple):
    """A ReLU classifier: layer sizes and the coordinate groups of its flat parameter vector."""
    sizes: tuple    # (d_in, h_1, …, C)
    groups: tuple   # ((name, start, shape), …): W1 (d_in, h_1), b1 (h_1,), W2, b2, …
    dim: int        # P, the number of parameters


def mlp(*sizes):
    """The net d_in-h_1-…-C, e.g. ``mlp(48, 48, 10)`` (P = 2,842) or ``mlp(100, 200, 10)``
    (P = 22,210)."""
    if len(sizes) < 2 or not all(isinstance(s, (int, onp.integer)) and s >= 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers, got {sizes!r}")
    groups, start = [], 0
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        for name, shape in ((f"W{layer}", (fan_in, fan_out)), (f"b{layer}", (fan_out,))):
            groups.append((name, start, shape))
            start += int(onp.prod(shape))
    return Net(sizes=tuple(int(s) for s in sizes), groups=tuple(groups), dim=start)


def unflatten(net, x):
    """{group name: (n, *shape)} views of the parameter vectors x (n, P); differentiable."""
    if np.ndim(x) != 2 or np.shape(x)[1] != net.dim:
        raise ValueError(f"x must have shape (n, {net.dim}), got {np.shape(x)}")
    n = np.shape(x)[0]
    return {name: np.reshape(x[:, start:start + int(onp.prod(shape))], (n,) + shape)
            for name, start, shape in net.groups}


def logits(net, x, inputs):
    """z (n, B, C) of the n nets x (n, P) on the inputs (B, d_in)."""
    p = unflatten(net, x)
    h = inputs
    layers = len(net.sizes) - 1
    for layer in range(1, layers + 1):
        h = np.matmul(h, p[f"W{layer}"]) + p[f"b{layer}"][:, None, :]    # (n, B, fan_out)
        if layer < layers:
            h = np.maximum(h, 0.0)
    return h


def loss(net, x, inputs, labels):
    """Mean softmax cross-entropy of the n nets on (inputs (B, d_in), labels (B,)): (n,)."""
    z = logits(net, x, inputs)                                         # (n, B, C)
    m = getval(np.max(z, axis=-1, keepdims=True))   # a constant shift: ∂logsumexp/∂z is softmax
    lse = np.log(np.sum(np.exp(z - m), axis=-1)) + m[..., 0]
    picked = z[:, onp.arange(np.shape(z)[1]), labels]                  # z_{i, y_i}: (n, B)
    return np.mean(lse - picked, axis=-1)


def init(rng, net, n, scale=0.1):
    """x⁽⁰⁾ (n, P) with i.i.d. N(0, scale²) entries (docs/method.md §12)."""
    return scale * rng.standard_normal((n, net.dim))


def minibatches(rng, n_points, batch, steps):
    """Indices (steps, batch) of ``steps`` minibatches: seeded reshuffles, each point once per
    pass; a pass that cannot fill a batch is dropped and a new reshuffle starts."""
    if not 1 <= batch <= n_points:
        raise ValueError(f"batch must be in [1, {n_points}], got {batch}")
    per_pass = n_points // batch
    passes = -(-steps // per_pass)
    order = onp.concatenate([rng.permutation(n_points)[:per_pass * batch] for _ in range(passes)])
    return order[:steps * batch].reshape(steps, batch)


def group_ids(net):
    """(P,) the index of each coordinate's group in ``net.groups``."""
    return onp.concatenate([onp.full(int(onp.prod(shape)), k)
                            for k, (_, _, shape) in enumerate(net.groups)])
