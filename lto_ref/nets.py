"""Paper 2's objectives: ReLU classifiers trained by minibatches, parameters as one flat vector.

A net ``d_in-h_1-…-C`` maps an input a ∈ R^{d_in} through ReLU hidden layers to C logits; its
parameters are one vector x ∈ R^P made of named coordinate groups, one per weight matrix and per
bias vector (W1, b1, W2, b2, …; matrices row-major, (fan_in, fan_out)). As for paper 1's families,
the objective is batched over n parameter vectors, x (n, P) -> f (n,) (docs/method.md §12)::

    z = relu(… relu(a W1 + b1) …) W_L + b_L                     logits (n, C, B)
    f̂(x; batch) = mean_{i ∈ batch} [logsumexp(z_i) − z_{i, y_i}]  minibatch objective
    f(x) = f̂(x; every training point)                           the true objective

No regularisation. ``minibatches`` draws the index stream from seeded reshuffles, so every method
can see the same x⁽⁰⁾ and the same minibatches.
"""
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

__all__ = ["Net", "mlp", "unflatten", "logits", "cross_entropy", "loss", "minibatch_loss", "hessian_diagonal", "init", "minibatches", "group_ids"]


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


def _split(net, x):
    """The groups of x (n, P) as a list of (n, size) blocks: one autograd node (its derivative
    is a concatenation), where a slice per group would scatter into an (n, P) zero array each."""
    return np.split(x, [start for _, start, _ in net.groups[1:]], axis=1)


def unflatten(net, x):
    """{group name: (n, *shape)} views of the parameter vectors x (n, P); differentiable."""
    if np.ndim(x) != 2 or np.shape(x)[1] != net.dim:
        raise ValueError(f"x must have shape (n, {net.dim}), got {np.shape(x)}")
    n = np.shape(x)[0]
    return {name: np.reshape(block, (n,) + shape)
            for (name, _, shape), block in zip(net.groups, _split(net, x))}


def logits(net, x, inputs):
    """z (n, C, B) of the n nets x (n, P) on the inputs (B, d_in), classes before examples.

    Hidden layers h = relu(h W + b) are (n, B, h_k); the last layer is computed transposed,
    z = W_Lᵀ hᵀ + b_L, so that the softmax reduces over C contiguous rows of length B (several
    times faster than over a trailing axis of length C = 10).
    """
    if np.ndim(x) != 2 or np.shape(x)[1] != net.dim:
        raise ValueError(f"x must have shape (n, {net.dim}), got {np.shape(x)}")
    n, blocks, h = np.shape(x)[0], _split(net, x), inputs
    layers = len(net.sizes) - 1
    for layer, (fan_in, fan_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:]), start=1):
        W = np.reshape(blocks[2 * layer - 2], (n, fan_in, fan_out))
        if layer == layers:
            b = np.reshape(blocks[2 * layer - 1], (n, fan_out, 1))
            return np.matmul(np.swapaxes(W, 1, 2), np.swapaxes(h, -1, -2)) + b
        b = np.reshape(blocks[2 * layer - 1], (n, 1, fan_out))
        h = np.maximum(np.matmul(h, W) + b, 0.0)                       # (n, B, fan_out)


@primitive
def cross_entropy(z, labels):
    """Mean softmax cross-entropy of logits z (n, C, B) against labels (B,) int: (n,).

    f = mean_i [logsumexp_c z_{c,i} − z_{y_i,i}], with the maximum over classes subtracted
    before exponentiating. A primitive: its derivative ∂f/∂z = (softmax(z) − onehot(y)) / B is
    written out (one node instead of eight), docs/method.md §12.
    """
    m = onp.max(z, axis=1)                                             # (n, B)
    lse = onp.log(onp.sum(onp.exp(z - m[:, None, :]), axis=1)) + m
    return onp.mean(lse - z[:, labels, onp.arange(z.shape[2])], axis=1)


def _cross_entropy_vjp(ans, z, labels):
    def vjp(v):            # autograd.numpy throughout, so that the derivative has a derivative
        e = np.exp(z - getval(np.max(z, axis=1, keepdims=True)))
        onehot = onp.arange(np.shape(z)[1])[:, None] == onp.asarray(labels)[None, :]  # (C, B)
        return (e / np.sum(e, axis=1, keepdims=True) - onehot) * (v / np.shape(z)[2])[:, None,
                                                                                       None]
    return vjp


defvjp(cross_entropy, _cross_entropy_vjp)


def loss(net, x, inputs, labels):
    """Mean softmax cross-entropy of the n nets on (inputs (B, d_in), labels (B,)): (n,)."""
    return cross_entropy(logits(net, x, inputs), labels)


def minibatch_loss(net, inputs, labels, x, batch):
    """f̂(x; batch) = ``loss`` on the rows ``batch`` (B,) int of the training set (inputs (N,
    d_in), labels (N,)): (n,). ``functools.partial(minibatch_loss, net, inputs, labels)`` is the
    ``objective(x, batch)`` of ``rollout.run_minibatch``, and can be pickled for a process pool."""
    return loss(net, x, inputs[batch], labels[batch])


def hessian_diagonal(net, x, inputs, labels):
    """diag ∇²f (n, P) of the mean cross-entropy of one-hidden-layer nets x (n, P) on (inputs
    (B, d_in), labels (B,)), exactly (docs/method.md (118)).

    Each logit is linear in every single weight (ReLU is piecewise linear, z bilinear in the two
    layers), so a diagonal entry of the Hessian is that of the Gauss-Newton matrix,
    mean_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i with p_i = softmax(z_i): for W2_{jc},
    mean h_ij² p_ic (1 − p_ic); for W1_{dj}, mean a_id² [u_ij > 0] q_ij with
    q_ij = Σ_c W2_jc² p_ic − (Σ_c W2_jc p_ic)²; b1 and b2 as W1 and W2 with a = h = 1.
    The labels do not enter. Not differentiable (plain NumPy).
    """
    if len(net.sizes) != 3:
        raise ValueError(f"hessian_diagonal needs one hidden layer, got sizes {net.sizes}")
    del labels                                       # the curvature of softmax CE is label-free
    p = {k: onp.asarray(v, dtype=float) for k, v in unflatten(net, x).items()}
    a = onp.asarray(inputs, dtype=float)             # (B, d_in)
    u = onp.matmul(a, p["W1"]) + p["b1"][:, None]    # (n, B, H)
    h = onp.maximum(u, 0.0)
    z = onp.matmul(h, p["W2"]) + p["b2"][:, None]    # (n, B, C)
    prob = onp.exp(z - z.max(axis=-1, keepdims=True))
    prob /= prob.sum(axis=-1, keepdims=True)
    W2T = onp.swapaxes(p["W2"], 1, 2)                # (n, C, H)
    q = onp.matmul(prob, W2T ** 2) - onp.matmul(prob, W2T) ** 2         # (n, B, H)
    mq = (u > 0) * q
    v = prob * (1.0 - prob)                                            # (n, B, C)
    B, n = len(a), len(x)
    parts = [onp.matmul((a ** 2).T, mq) / B, mq.mean(axis=1),
             onp.matmul(onp.swapaxes(h ** 2, 1, 2), v) / B, v.mean(axis=1)]
    return onp.concatenate([part.reshape(n, -1) for part in parts], axis=1)


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
