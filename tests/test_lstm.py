"""The LSTM cell against a scalar loop written here, its gradients against finite differences,
its initialisation, and the stack of layers (Andrychowicz et al. 2016; paper 2's policy)."""
import math
import warnings

import numpy as np
import pytest
from autograd import grad, numpy as anp
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import lstm

leading_shapes = st.sampled_from([(), (1,), (3,), (2, 3)])
sizes = st.integers(1, 4)


def _random_cell(rng, n_in, H, shape):
    """Random parameters (biases too), input and state, all of moderate size."""
    W = rng.standard_normal((n_in + H, 4 * H))
    b = rng.standard_normal(4 * H)
    x = rng.standard_normal(shape + (n_in,))
    state = lstm.LSTMState(h=rng.uniform(-1, 1, shape + (H,)), c=rng.standard_normal(shape + (H,)))
    return (W, b), x, state


def _scalar_cell(W, b, x, h, c):
    """One LSTM step for one sample, element by element: gate blocks (i, f, g, o) of W's columns."""
    H, xh = len(h), list(x) + list(h)
    sig = lambda a: 1.0 / (1.0 + math.exp(-a))
    h_new, c_new = [], []
    for j in range(H):
        z = [sum(xh[m] * W[m, gate * H + j] for m in range(len(xh))) + b[gate * H + j]
             for gate in range(4)]
        i, f, g, o = sig(z[0]), sig(z[1]), math.tanh(z[2]), sig(z[3])
        c_new.append(f * c[j] + i * g)
        h_new.append(o * math.tanh(c_new[-1]))
    return h_new, c_new


@given(seeds, sizes, sizes, leading_shapes)
def test_cell_matches_a_scalar_loop_for_any_leading_shape(seed, n_in, H, shape):
    rng = rng_from(seed)
    params, x, state = _random_cell(rng, n_in, H, shape)
    h_new, new = lstm.cell(params, x, state)
    assert h_new.shape == new.c.shape == shape + (H,) and h_new is new.h
    for idx in np.ndindex(*shape):
        h_ref, c_ref = _scalar_cell(*params, x[idx], state.h[idx], state.c[idx])
        # tanh is 2σ(2z) − 1 in the cell: absolute error ~1e-16 near 0, hence the atol
        np.testing.assert_allclose(new.h[idx], h_ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(new.c[idx], c_ref, rtol=1e-12, atol=1e-15)


@given(seeds, sizes, sizes)
def test_rows_of_a_batch_are_independent(seed, n_in, H):
    rng = rng_from(seed)
    params, x, state = _random_cell(rng, n_in, H, (2, 3))
    _, new = lstm.cell(params, x, state)
    for i, j in np.ndindex(2, 3):
        _, alone = lstm.cell(params, x[i, j], lstm.LSTMState(state.h[i, j], state.c[i, j]))
        np.testing.assert_allclose(new.h[i, j], alone.h, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(new.c[i, j], alone.c, rtol=1e-14, atol=1e-15)


@given(seeds, sizes, sizes, st.sampled_from([(1,), (3,), (2, 3), (7,)]), st.integers(1, 5))
def test_forward_matches_the_scalar_loop_for_any_block_of_rows(seed, n_in, H, shape, rows):
    rng = rng_from(seed)
    params, x, state = _random_cell(rng, n_in, H, shape)
    h_new, new = lstm.forward(params, x, state, rows=rows)
    assert h_new.shape == new.c.shape == shape + (H,) and h_new is new.h
    for idx in np.ndindex(*shape):
        h_ref, c_ref = _scalar_cell(*params, x[idx], state.h[idx], state.c[idx])
        np.testing.assert_allclose(new.h[idx], h_ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(new.c[idx], c_ref, rtol=1e-12, atol=1e-15)


def test_forward_in_single_precision_stays_single_and_close_to_double():
    rng = np.random.default_rng(3)
    params, x, state = _random_cell(rng, 3, 16, (50,))
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    h32, new32 = lstm.forward((f32(params[0]), f32(params[1])), f32(x),
                              lstm.LSTMState(f32(state.h), f32(state.c)))
    h64, new64 = lstm.cell(params, x, state)
    assert h32.dtype == new32.c.dtype == np.float32
    np.testing.assert_allclose(h32, h64, atol=1e-5)
    np.testing.assert_allclose(new32.c, new64.c, atol=1e-5)


def test_forward_refuses_mismatched_shapes_and_bad_rows():
    params, x, state = _random_cell(np.random.default_rng(0), 2, 3, (4,))
    with pytest.raises(ValueError, match="x must be"):
        lstm.forward(params, x[:, :1], state)
    with pytest.raises(ValueError, match="same leading"):
        lstm.forward(params, x[:3], state)
    with pytest.raises(ValueError, match="rows"):
        lstm.forward(params, x, state, rows=0)


def test_init_has_forget_bias_one_and_small_gaussian_weights():
    W, b = lstm.init(np.random.default_rng(0), 30, 32, scale=0.1)
    assert W.shape == (62, 128) and b.shape == (128,)
    np.testing.assert_array_equal(b, np.r_[np.zeros(32), np.ones(32), np.zeros(64)])
    assert abs(W.mean()) < 0.005 and 0.095 < W.std() < 0.105   # 7,936 draws of N(0, 0.1²)


def test_zero_weights_leave_the_biases_forget_gate_sigma_one():
    """W = 0: i = o = σ(0) = ½, f = σ(1) (the forget bias), g = tanh 0 = 0, so c' = σ(1) c."""
    W, b = lstm.init(np.random.default_rng(0), 2, 3, scale=0.0)
    c = np.array([1.0, -2.0, 0.5])
    h, new = lstm.cell((W, b), np.ones(2), lstm.LSTMState(h=np.zeros(3), c=c))
    s1 = 1.0 / (1.0 + math.exp(-1.0))
    np.testing.assert_allclose(new.c, s1 * c, rtol=1e-14)
    np.testing.assert_allclose(h, 0.5 * np.tanh(s1 * c), rtol=1e-13)


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_cell_gradients_match_finite_differences(seed, n_in, H):
    rng = rng_from(seed)
    params, x, state = _random_cell(rng, n_in, H, (2,))
    u = rng.standard_normal((2, H))  # a random linear read-out of h and c

    def out(params, x, h, c):
        h_new, new = lstm.cell(params, x, lstm.LSTMState(h, c))
        return np.sum(u * h_new) + np.sum(u ** 2 * new.c)

    check_grads(out, modes=["rev"], order=1)(params, x, state.h, state.c)


def test_nonlinearities_are_exact_and_finite_at_extremes():
    z = np.array([-1e4, -800.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 800.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, t = lstm.sigmoid(z), lstm.tanh(z)
        ds = grad(lambda a: np.sum(lstm.sigmoid(a)))(z)
        dt = grad(lambda a: np.sum(lstm.tanh(a)))(z)
    np.testing.assert_allclose(s, [1.0 / (1.0 + math.exp(-a)) if a > -700 else 0.0 for a in z],
                               rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(t, np.tanh(z), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(ds, s * (1 - s), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(dt, 1 / np.cosh(np.clip(z, -350, 350)) ** 2, rtol=1e-9, atol=1e-16)


@given(seeds, st.integers(1, 3), st.lists(sizes, min_size=1, max_size=3))
def test_stack_is_cells_applied_in_turn(seed, n_in, layer_sizes):
    rng = rng_from(seed)
    params = lstm.stack_init(rng, n_in, layer_sizes, scale=0.5)
    states = tuple(lstm.LSTMState(rng.standard_normal((4, k)), rng.standard_normal((4, k)))
                   for k in layer_sizes)
    x = rng.standard_normal((4, n_in))
    top, new = lstm.stack_cell(params, x, states)
    inp = x
    for layer, state, got in zip(params, states, new):
        inp, ref = lstm.cell(layer, inp, state)
        np.testing.assert_array_equal(got.h, ref.h)
        np.testing.assert_array_equal(got.c, ref.c)
    np.testing.assert_array_equal(top, inp)
    assert [W.shape for W, _ in params] == [(m + k, 4 * k) for m, k in
                                            zip([n_in] + layer_sizes[:-1], layer_sizes)]
    zero = lstm.stack_zero_state((5, 2), layer_sizes)
    assert [s.h.shape for s in zero] == [(5, 2, k) for k in layer_sizes]
    assert all(np.all(s.h == 0) and np.all(s.c == 0) for s in zero)


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    params = lstm.init(rng, 2, 3)
    with pytest.raises(ValueError, match="n_hidden"):
        lstm.init(rng, 2, 0)
    with pytest.raises(ValueError, match="scale"):
        lstm.init(rng, 2, 3, scale=-1.0)
    with pytest.raises(ValueError, match="x must be"):
        lstm.cell(params, np.zeros(3), lstm.zero_state((), 3))
    with pytest.raises(ValueError, match="states must"):
        lstm.stack_cell([params], np.zeros(2), ())
    with pytest.raises(ValueError, match="sizes"):
        lstm.stack_init(rng, 2, ())


@settings(max_examples=10)
@given(seeds, st.integers(1, 5), st.sampled_from([(), (3,), (2, 3)]))
def test_sequence_and_its_backward_pass_equal_the_cell_applied_step_by_step(seed, T, lead):
    rng = rng_from(seed)
    W, b = lstm.init(rng, 2, 3, scale=0.7)
    xs = rng.standard_normal((T,) + lead + (2,))
    h0, c0 = rng.standard_normal(lead + (3,)), rng.standard_normal(lead + (3,))
    weights = rng.standard_normal((T,) + lead + (3,))

    def stepwise(W, b, xs, h, c):
        state, out = lstm.LSTMState(h, c), []
        for x in xs:
            h_new, state = lstm.cell((W, b), x, state)
            out.append(h_new)
        return anp.sum(anp.stack(out) * weights)

    def fused(W, b, xs, h, c):
        return anp.sum(lstm.sequence((W, b), xs, lstm.LSTMState(h, c)) * weights)

    args = (W, b, xs, h0, c0)
    np.testing.assert_allclose(fused(*args), stepwise(*args), rtol=1e-13)
    for k in range(5):
        np.testing.assert_allclose(grad(fused, k)(*args), grad(stepwise, k)(*args), rtol=1e-12,
                                   atol=1e-13)


def test_sequence_refuses_mismatched_shapes():
    params = lstm.init(np.random.default_rng(0), 2, 3)
    with pytest.raises(ValueError, match="xs must be"):
        lstm.sequence(params, np.zeros((4, 5, 3)), lstm.zero_state((5,), 3))
    with pytest.raises(ValueError, match="xs must be"):
        lstm.sequence(params, np.zeros((4, 5, 2)), lstm.zero_state((6,), 3))
