"""Paper 2's MLP objectives: parameter counts, a plain-loop reference, gradients against central
differences, minibatch = true loss on the whole set, permutation invariances, the minibatch
stream."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import autodiff, nets


def _data(rng, net, N=9):
    return rng.standard_normal((N, net.sizes[0])), rng.integers(0, net.sizes[-1], N)


def _reference_loss(net, x, inputs, labels):
    """Per net and per example, written from the definition (ReLU hidden layers, softmax CE)."""
    out = []
    for row in x:
        mats, start = [], 0
        for fan_in, fan_out in zip(net.sizes[:-1], net.sizes[1:]):
            W = row[start:start + fan_in * fan_out].reshape(fan_in, fan_out)
            start += fan_in * fan_out
            mats.append((W, row[start:start + fan_out]))
            start += fan_out
        total = 0.0
        for a, y in zip(inputs, labels):
            h = a
            for k, (W, b) in enumerate(mats):
                h = h @ W + b
                if k < len(mats) - 1:
                    h = np.maximum(h, 0.0)
            total += np.log(np.sum(np.exp(h - h.max()))) + h.max() - h[y]
        out.append(total / len(labels))
    return np.array(out)


@pytest.mark.parametrize("sizes, P", [((48, 48, 10), 2842), ((100, 200, 10), 22210),
                                      ((48, 48, 7), 2304 + 48 + 336 + 7), ((2, 3, 4, 2), 9 + 16 + 10)])
def test_parameter_counts(sizes, P):
    net = nets.mlp(*sizes)
    assert net.dim == P
    assert [g[0] for g in net.groups] == [f"{k}{i}" for i in range(1, len(sizes)) for k in "Wb"]
    assert np.bincount(nets.group_ids(net)).tolist() == [int(np.prod(g[2])) for g in net.groups]


@settings(max_examples=20)
@given(seeds, st.sampled_from([(3, 4, 2), (2, 3, 3, 4), (5, 1, 3)]), st.integers(1, 3))
def test_loss_matches_a_plain_loop(seed, sizes, n):
    rng = rng_from(seed)
    net = nets.mlp(*sizes)
    x = rng.standard_normal((n, net.dim))
    inputs, labels = _data(rng, net)
    np.testing.assert_allclose(nets.loss(net, x, inputs, labels),
                               _reference_loss(net, x, inputs, labels), rtol=1e-12)


@settings(max_examples=10)
@given(seeds)
def test_gradient_matches_central_differences(seed):
    rng = rng_from(seed)
    net = nets.mlp(3, 4, 3)
    x, (inputs, labels) = rng.standard_normal((2, net.dim)), _data(rng, net)
    _, g = autodiff.value_and_grad(lambda z: nets.loss(net, z, inputs, labels), x)
    h, fd = 1e-6, np.zeros_like(x)
    for j in range(net.dim):
        e = np.zeros(net.dim)
        e[j] = h
        fd[:, j] = (nets.loss(net, x + e, inputs, labels)
                    - nets.loss(net, x - e, inputs, labels)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@given(seeds)
def test_minibatch_loss_over_the_whole_set_is_the_true_loss(seed):
    rng = rng_from(seed)
    net = nets.mlp(4, 5, 3)
    x, (inputs, labels) = nets.init(rng, net, 2, scale=1.0), _data(rng, net, N=12)
    order = rng.permutation(12)
    np.testing.assert_allclose(nets.loss(net, x, inputs[order], labels[order]),
                               nets.loss(net, x, inputs, labels), rtol=1e-13)


@given(seeds)
def test_permuting_hidden_units_and_their_coordinates_leaves_the_loss(seed):
    rng = rng_from(seed)
    net = nets.mlp(3, 6, 4)
    x, (inputs, labels) = rng.standard_normal((1, net.dim)), _data(rng, net)
    p = nets.unflatten(net, x)
    perm = rng.permutation(6)
    W1, b1, W2 = p["W1"][0][:, perm], p["b1"][0][perm], p["W2"][0][perm]
    y = np.concatenate([W1.ravel(), b1, W2.ravel(), p["b2"][0]])[None]
    assert not np.array_equal(y, x) or np.all(perm == np.arange(6))
    np.testing.assert_allclose(nets.loss(net, y, inputs, labels), nets.loss(net, x, inputs, labels),
                               rtol=1e-12)


@settings(max_examples=20)
@given(seeds, st.floats(-800.0, 800.0))
def test_cross_entropy_is_shift_invariant_and_finite_for_huge_logits(seed, shift):
    """logsumexp(z + s) − (z + s)_y = logsumexp(z) − z_y: the primitive subtracts the maximum,
    so logits near ±800 (e^800 overflows) give the same finite value and derivative."""
    rng = rng_from(seed)
    z, labels = rng.standard_normal((2, 4, 6)), rng.integers(0, 4, 6)
    scipy_special = pytest.importorskip("scipy.special")
    expected = np.mean(scipy_special.logsumexp(z, axis=1) - z[:, labels, np.arange(6)], axis=1)
    np.testing.assert_allclose(nets.cross_entropy(z + shift, labels), expected, rtol=1e-9,
                               atol=1e-9 * max(1.0, abs(shift)))
    f, g = autodiff.value_and_grad(lambda w: nets.cross_entropy(w, labels), z + shift)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[:, labels, np.arange(6)] -= 1.0
    np.testing.assert_allclose(g, p / 6, rtol=1e-9, atol=1e-12)     # (softmax − onehot) / B


@given(seeds)
def test_minibatch_loss_is_the_loss_on_the_batch_rows(seed):
    rng = rng_from(seed)
    net = nets.mlp(3, 4, 2)
    x, (inputs, labels) = rng.standard_normal((2, net.dim)), _data(rng, net, N=10)
    batch = rng.integers(0, 10, 4)
    np.testing.assert_array_equal(nets.minibatch_loss(net, inputs, labels, x, batch),
                                  nets.loss(net, x, inputs[batch], labels[batch]))
    assert not np.allclose(nets.minibatch_loss(net, inputs, labels, x, batch),
                           nets.loss(net, x, inputs, labels))


def test_logits_are_classes_by_examples():
    net = nets.mlp(2, 3)                                     # no hidden layer: z = W1ᵀ aᵀ + b1
    x = np.arange(net.dim, dtype=float)[None]                # W1 = [[0, 1, 2], [3, 4, 5]], b1
    inputs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
    W, b = x[0, :6].reshape(2, 3), x[0, 6:]
    np.testing.assert_array_equal(nets.logits(net, x, inputs)[0], (inputs @ W + b).T)


@settings(max_examples=10)
@given(seeds, st.sampled_from([(3, 4, 3), (2, 5, 4), (4, 1, 2)]))
def test_hessian_diagonal_is_that_of_autograds_hessian(seed, sizes):
    """Also checks that the loss is twice differentiable (the cross-entropy's written-out
    derivative is itself differentiable)."""
    rng = rng_from(seed)
    net = nets.mlp(*sizes)
    x, (inputs, labels) = rng.standard_normal((2, net.dim)), _data(rng, net)
    H = autodiff.hessians(lambda z: nets.loss(net, z, inputs, labels), x)
    np.testing.assert_allclose(H, np.swapaxes(H, 1, 2), atol=1e-12)
    np.testing.assert_allclose(nets.hessian_diagonal(net, x, inputs, labels),
                               np.diagonal(H, axis1=1, axis2=2), rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="one hidden layer"):
        nets.hessian_diagonal(nets.mlp(2, 3, 3, 2), np.zeros((1, 26)), inputs[:, :2], labels)


def test_unflatten_is_row_major_per_group():
    net = nets.mlp(2, 3, 2)
    p = nets.unflatten(net, np.arange(net.dim, dtype=float)[None])
    np.testing.assert_array_equal(p["W1"][0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(p["b1"][0], [6, 7, 8])
    np.testing.assert_array_equal(p["W2"][0], [[9, 10], [11, 12], [13, 14]])
    np.testing.assert_array_equal(p["b2"][0], [15, 16])


@given(seeds, st.integers(1, 7), st.integers(1, 30))
def test_minibatches_visit_every_point_once_per_pass(seed, batch, steps):
    N = 20
    idx = nets.minibatches(rng_from(seed), N, batch, steps)
    per_pass = N // batch
    assert idx.shape == (steps, batch)
    for start in range(0, steps, per_pass):
        chunk = idx[start:start + per_pass].ravel()
        assert len(set(chunk.tolist())) == chunk.size          # no repeat within a pass
    np.testing.assert_array_equal(idx, nets.minibatches(rng_from(seed), N, batch, steps))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sizes"):
        nets.mlp(48)
    with pytest.raises(ValueError, match="x must"):
        nets.loss(nets.mlp(2, 2), np.zeros((1, 5)), np.zeros((1, 2)), np.zeros(1, dtype=int))
    with pytest.raises(ValueError, match="batch"):
        nets.minibatches(np.random.default_rng(0), 5, 6, 1)
