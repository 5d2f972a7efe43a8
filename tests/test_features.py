"""State features: sizes and offsets, zero padding, push as a shift, relative changes, guards
(docs/method.md §5)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import rng_from, seeds
from lto_ref import features as F

Hs = st.integers(1, 6)
ds = st.integers(1, 5)


def _random_hist(rng, n, d, H, pushes):
    """A history after ``pushes`` pushes of random values; also returns what was pushed."""
    x, f, g = rng.standard_normal((n, d)), rng.uniform(0.5, 2, n), rng.standard_normal((n, d))
    hist, seen = F.init(x, f, g, H), [(x, f, g)]
    for _ in range(pushes):
        x, f, g = rng.standard_normal((n, d)), rng.uniform(0.5, 2, n), rng.standard_normal((n, d))
        hist = F.push(hist, x, f, g)
        seen.append((x, f, g))
    return hist, seen


@pytest.mark.parametrize("d,dX,dO", [(2, 129, 127), (4, 233, 229), (12, 649, 637)])
def test_code_state_sizes_match_the_method(d, dX, dO):
    hist = F.init(np.ones((3, d)), np.ones(3), np.ones((3, d)), 25)
    X, O = F.observe(hist)
    assert X.shape == (3, dX) and O.shape == (3, dO)
    assert F.state_dim(d) == dX and F.obs_dim(d) == dO


@pytest.mark.parametrize("d,offsets", [(4, (4, 29, 129, 133, 233)), (12, (12, 37, 337, 349, 649))])
def test_offsets_are_the_tabulated_block_starts(d, offsets):
    """The table of docs/method.md §5: δ, past gradients, g_t, steps and dX for H = 25."""
    assert tuple(F.offsets(d, 25)) == offsets


@given(seeds, ds, Hs, st.integers(0, 6))
def test_offsets_locate_each_block_of_the_state(seed, d, H, pushes):
    hist, _ = _random_hist(rng_from(seed), 2, d, H, pushes)
    X, _ = F.observe(hist)
    o = F.offsets(d, H)
    assert X.shape[1] == o.dim
    np.testing.assert_array_equal(X[:, o.grad:o.grad + d], hist.g)
    np.testing.assert_array_equal(X[:, o.past_grads:o.grad], hist.gs.reshape(2, -1))
    np.testing.assert_array_equal(X[:, o.steps:], hist.dxs.reshape(2, -1))
    assert o.past_grads - o.delta == H


@pytest.mark.parametrize("d,dX", [(4, 129), (12, 337)])
def test_paper_state_sizes_match_the_method(d, dX):
    hist = F.init(np.ones((2, d)), np.ones(2), np.ones((2, d)), 25)
    assert F.observe(hist, "paper")[0].shape == (2, dX) == (2, F.state_dim(d, 25, "paper"))
    assert F.observe(hist, "paper", include_current_grad=True)[0].shape == (2, dX + d)


@given(seeds, st.integers(1, 4), ds, Hs, st.integers(0, 9), st.sampled_from(["code", "paper"]))
def test_shapes_depend_only_on_H_d_variant(seed, n, d, H, pushes, variant):
    hist, _ = _random_hist(rng_from(seed), n, d, H, pushes)
    X, O = F.observe(hist, variant)
    assert X.shape == (n, F.state_dim(d, H, variant)) and O.shape == (n, F.obs_dim(d, H, variant))
    np.testing.assert_array_equal(O, X[:, d:])


@given(seeds, ds, Hs, st.integers(0, 12))
def test_code_blocks_sit_at_the_documented_offsets(seed, d, H, pushes):
    """Reference layout written from docs/method.md §5: [x_t | δ | g_{t−H..t−1} | g_t | Δ],
    oldest first."""
    hist, seen = _random_hist(rng_from(seed), 2, d, H, pushes)
    X, _ = F.observe(hist)
    t = pushes
    xs = [s[0] for s in seen]
    fs = [s[1] for s in seen]
    gs = [s[2] for s in seen]
    zero_d, zero_n = np.zeros((2, d)), np.zeros(2)
    delta = [(fs[k] - fs[k - 1]) / fs[k - 1] if k >= 1 else zero_n for k in range(t - H + 1, t + 1)]
    past_g = [gs[k] if k >= 0 else zero_d for k in range(t - H, t)]
    steps = [xs[k] - xs[k - 1] if k >= 1 else zero_d for k in range(t - H + 1, t + 1)]
    ref = np.concatenate([xs[t], np.stack(delta, 1), np.concatenate(past_g, 1), gs[t],
                          np.concatenate(steps, 1)], axis=1)
    np.testing.assert_allclose(X, ref, rtol=1e-13, atol=0)


@given(seeds, ds, Hs, st.integers(0, 12), st.booleans())
def test_paper_blocks_follow_the_method(seed, d, H, pushes, relative):
    hist, seen = _random_hist(rng_from(seed), 2, d, H, pushes)
    X, _ = F.observe(hist, "paper", relative=relative)
    t, fs, gs = pushes, [s[1] for s in seen], [s[2] for s in seen]
    D = [(fs[t] - fs[t - j]) / (fs[t - j] if relative else 1.0) if t - j >= 0 else np.zeros(2)
         for j in range(H, 0, -1)]                                     # D_H … D_1
    past_g = [gs[k] if k >= 0 else np.zeros((2, d)) for k in range(t - H, t)]
    ref = np.concatenate([seen[t][0], np.stack(D, 1), np.concatenate(past_g, 1)], axis=1)
    np.testing.assert_allclose(X, ref, rtol=1e-13, atol=0)


def test_observation_at_t0_is_current_gradient_padded_with_zeros():
    g0 = np.arange(1.0, 5.0)[None]
    _, O = F.observe(F.init(np.ones((1, 4)), np.array([3.0]), g0, 25))
    np.testing.assert_array_equal(O, np.concatenate([np.zeros((1, 25 + 100)), g0, np.zeros((1, 100))], 1))


@given(seeds, ds, Hs, st.integers(1, 10))
def test_push_is_a_shift_newest_last(seed, d, H, k):
    hist, seen = _random_hist(rng_from(seed), 2, d, H, k)
    m = min(k, H)
    for j in range(1, m + 1):  # the j-th newest past entry is the value pushed j steps ago
        np.testing.assert_array_equal(hist.gs[:, -j], seen[k - j][2])
        np.testing.assert_array_equal(hist.fs[:, -j], seen[k - j][1])
        np.testing.assert_array_equal(hist.dxs[:, -j], seen[k - j + 1][0] - seen[k - j][0])
    assert np.all(hist.filled[:, H - m:] == 1) and np.all(hist.filled[:, :H - m] == 0)
    if k > H:  # nothing of the initial content is left
        assert not any(np.array_equal(hist.gs[:, i], seen[0][2]) for i in range(H))


@given(seeds, ds, Hs, st.integers(0, 8), st.floats(0.01, 100))
def test_constant_history_gives_zero_objective_changes(seed, d, H, pushes, c):
    rng = rng_from(seed)
    x, g = rng.standard_normal((2, d)), rng.standard_normal((2, d))
    hist = F.init(x, np.full(2, c), g, H)
    for _ in range(pushes):
        hist = F.push(hist, x, np.full(2, c), g)
    X, _ = F.observe(hist)
    np.testing.assert_array_equal(X[:, d:d + H], 0.0)
    np.testing.assert_array_equal(F.observe(hist, "paper")[0][:, d:d + H], 0.0)


@given(seeds, ds, Hs, st.integers(0, 8), st.floats(0.1, 10))
def test_scaling_f_leaves_relative_changes_unchanged(seed, d, H, pushes, c):
    hist, _ = _random_hist(rng_from(seed), 2, d, H, pushes)
    scaled = hist._replace(f=c * hist.f, fs=c * hist.fs)
    for variant in ("code", "paper"):
        a, b = F.observe(hist, variant)[0][:, d:d + H], F.observe(scaled, variant)[0][:, d:d + H]
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_features_finite_when_f_is_zero_or_tiny():
    x, g = np.ones((3, 2)), np.ones((3, 2))
    hist = F.init(x, np.array([0.0, 1e-300, -1e-300]), g, 4)
    hist = F.push(hist, x, np.array([1.0, 0.0, 1e-300]), g)
    hist = F.push(hist, x, np.array([0.0, -1.0, 0.0]), g)
    for variant in ("code", "paper"):
        X, _ = F.observe(hist, variant)
        assert np.all(np.isfinite(X))
    delta = F.observe(hist)[0][:, 2:6]  # guard: denominator max(|f|, 1e-8) with sgn(0) = +1
    np.testing.assert_allclose(delta[0, -2:], [1.0 / 1e-8, -1.0 / 1.0], rtol=1e-12)


def test_observe_trace_matches_successive_pushes():
    rng = np.random.default_rng(3)
    xs, fs, gs = rng.standard_normal((5, 2, 3)), rng.uniform(1, 2, (5, 2)), rng.standard_normal((5, 2, 3))
    X, O = F.observe_trace(xs, fs, gs, H=3)
    hist = F.init(xs[0], fs[0], gs[0], 3)
    for t in range(1, 5):
        hist = F.push(hist, xs[t], fs[t], gs[t])
    np.testing.assert_array_equal(X[-1], F.observe(hist)[0])
    assert O.shape == (5, 2, F.obs_dim(3, 3))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="H"):
        F.init(np.ones((1, 2)), np.ones(1), np.ones((1, 2)), 0)
    with pytest.raises(ValueError, match="x, f, g"):
        F.init(np.ones((1, 2)), np.ones(2), np.ones((1, 2)), 3)
    with pytest.raises(ValueError, match="variant"):
        F.observe(F.init(np.ones((1, 2)), np.ones(1), np.ones((1, 2)), 3), "mixed")
    with pytest.raises(ValueError, match="variant"):
        F.state_dim(2, 3, "mixed")
