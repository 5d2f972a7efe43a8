"""Paper 2's features Ψ and Φ against their definitions written as plain loops here, on
hand-made and random histories (t = 0 and t = 1 included), the step-by-step recursion against the
batch form, and coordinate permutations."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import nn_features as F


def _history(rng, T, n=2, P=3):
    return (rng.uniform(0.5, 2.0, (T + 1, n)), rng.standard_normal((T + 1, n, P)),
            rng.standard_normal((T + 1, n, P)))


def test_psi_on_a_hand_made_history():
    """One problem, one coordinate: f = 2, 1, 0.5, 1; g = 4, −1, 3, 0; x = 0, 1, 3, 2."""
    fs = np.array([2.0, 1.0, 0.5, 1.0])[:, None]
    gs = np.array([4.0, -1.0, 3.0, 0.0])[:, None, None]
    xs = np.array([0.0, 1.0, 3.0, 2.0])[:, None, None]
    expected = [[0.0, 4 / 5, 0.0],                      # t = 0: Ψ1 = Ψ3 = 0, g_0 / (|g_0| + 1)
                [-0.5, -1 / 5, 1 / 1.1],                # t = 1: d_0 / (|d_0| + 0.1)
                [-0.5, 3 / 2, 1 / 2.1],                 # t = 2: d_0 / (|d_1| + 0.1)
                [1.0, 0.0, 2 / 1.1]]                    # t = 3: |d_1 / (|d_2| + 0.1)|
    np.testing.assert_allclose(F.psi(fs, gs, xs)[:, 0, 0], expected, rtol=1e-15)


@settings(max_examples=20)
@given(seeds, st.integers(0, 8))
def test_psi_step_by_step_equals_the_batch_form(seed, T):
    fs, gs, xs = _history(rng_from(seed), T)
    state, rows = F.psi_init(xs[0]), []
    for t in range(T + 1):
        out, state = F.psi_step(state, xs[t], fs[t], gs[t])
        rows.append(out)
    np.testing.assert_array_equal(np.stack(rows), F.psi(fs, gs, xs))


def _ref_phi(fs, gs, xs, t, j, with_phi3=True):
    """s_t^j of problem 0 written from the definitions, one lag at a time."""
    def bar(a, k):                                      # 3-step average, zero for k < 0
        return 0.0 if k < 0 else np.mean(a[max(k - 2, 0):k + 1], axis=0)

    f, g, x = fs[:, 0], gs[:, 0, j], xs[:, 0, j]
    phi1 = []
    for i in range(25):
        new, old = bar(f, t - 5 * i), bar(f, t - 5 * (i + 1))
        phi1.append(0.0 if old == 0 else (new - old) / old)
    phi2 = [bar(g, t - 5 * i) / (abs(bar(g, max(t - 5 * (i + 1), t % 5))) + 1) for i in range(26)]
    phi3 = [abs((bar(x, max(t - 5 * (i + 1), t % 5)) - bar(x, max(t - 5 * (i + 2), t % 5)))
                / (abs(bar(x, t - 5 * i) - bar(x, t - 5 * (i + 1))) + 0.1)) for i in range(25)]
    return np.array([x[t]] + phi1 + phi2 + (phi3 if with_phi3 else []))


@settings(max_examples=5)
@given(seeds, st.sampled_from([0, 1, 7, 140]))
def test_phi_matches_the_definition_at_every_time(seed, T):
    fs, gs, xs = _history(rng_from(seed), T)
    got = F.phi(fs, gs, xs)
    assert got.shape == (T + 1, 2, 3, 77) == (T + 1, 2, 3, F.state_dim())
    times = sorted({0, 1, 2, 5, 6, T // 2, T} & set(range(T + 1)))
    for t in times:
        for j in range(3):
            np.testing.assert_allclose(got[t, 0, j], _ref_phi(fs, gs, xs, t, j), rtol=1e-12,
                                       atol=1e-14)
    short = F.phi(fs, gs, xs, with_phi3=False)
    assert short.shape[-1] == 52 == F.state_dim(False)
    np.testing.assert_array_equal(short, got[..., :52])


def test_averages_are_plain_three_step_means():
    a = np.array([3.0, 6.0, 0.0, 9.0, 3.0])
    np.testing.assert_allclose(F.averages(a), [3.0, 4.5, 3.0, 5.0, 4.0], rtol=1e-15)


@given(seeds)
def test_features_permute_with_the_coordinates(seed):
    rng = rng_from(seed)
    fs, gs, xs = _history(rng, 9, P=5)
    perm = rng.permutation(5)
    np.testing.assert_array_equal(F.psi(fs, gs[..., perm], xs[..., perm]),
                                  F.psi(fs, gs, xs)[:, :, perm])
    np.testing.assert_array_equal(F.phi(fs, gs[..., perm], xs[..., perm]),
                                  F.phi(fs, gs, xs)[:, :, perm])


def test_zero_objective_values_give_zero_relative_changes():
    fs, gs, xs = np.zeros((3, 1)), np.ones((3, 1, 2)), np.zeros((3, 1, 2))
    assert np.all(F.psi(fs, gs, xs)[..., 0] == 0) and np.all(F.phi(fs, gs, xs)[..., 1:26] == 0)


def test_bad_histories_raise():
    with pytest.raises(ValueError, match="fs, gs, xs"):
        F.psi(np.zeros((3, 2)), np.zeros((3, 2, 4)), np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="fs, gs, xs"):
        F.phi(np.zeros((4, 2)), np.zeros((3, 2, 4)), np.zeros((3, 2, 4)))


@settings(max_examples=3)
@given(seeds, st.booleans())
def test_phi_step_by_step_equals_the_batch_form_past_the_ring(seed, with_phi3):
    """140 steps wrap the 131-row ring of averages."""
    fs, gs, xs = _history(rng_from(seed), 140)
    state, rows = F.phi_init(xs[0]), []
    for t in range(141):
        if t == 5:
            kept = [[a.copy() for a in row] for row in state.bars]
        out, new = F.phi_step(state, xs[t], fs[t], gs[t], with_phi3=with_phi3)
        if t == 5:              # the state passed in is left as it was
            for row, was in zip(state.bars, kept):
                for a, b in zip(row, was):
                    np.testing.assert_array_equal(a, b)
            assert len(state.bars) == 5 and state.t == 5
        state = new
        rows.append(out)
    np.testing.assert_allclose(np.stack(rows), F.phi(fs, gs, xs, with_phi3=with_phi3),
                               rtol=1e-12, atol=1e-13)


def _ref_psi(fs, gs, xs, t, features):
    """Ψ_t of problem 0 in the forms ``features`` selects, written from the definitions."""
    f, g, x = fs[:, 0], gs[:, 0], xs[:, 0]
    rel = 0.0 if t == 0 or f[t - 1] == 0 else (f[t] - f[t - 1]) / f[t - 1]
    if features.psi1 == "clip":
        rel = min(max(rel, -1.0), 1.0)
    if features.gradient == "paper":
        psi2 = g[t] / (np.abs(g[max(t - 1, 0)]) + 1.0)
    else:
        psi2 = g[t] / (np.sqrt(sum(g[k] ** 2 for k in range(t + 1))) + 1e-10)
    d_now = x[t] - x[max(t - 1, 0)]
    d_num = np.zeros_like(d_now) if t == 0 else x[max(t - 1, 1)] - x[max(t - 2, 0)]
    if features.psi3 == "paper":
        psi3 = np.abs(d_num / (np.abs(d_now) + 0.1))
    else:
        psi3 = np.abs(d_num) / (np.abs(d_now) + np.abs(d_num) + 1e-10)
    return np.stack([np.full_like(psi2, rel), psi2, psi3], axis=-1)


FORMS = st.builds(F.Features, st.sampled_from(["paper", "adagrad"]),
                  st.sampled_from(["paper", "clip"]), st.sampled_from(["paper", "ratio"]))


@settings(max_examples=20)
@given(seeds, st.integers(0, 8), FORMS)
def test_psi_forms_match_their_definitions_step_by_step_and_batched(seed, T, features):
    rng = rng_from(seed)
    fs, gs, xs = _history(rng, T)
    fs = fs * rng.choice([0.2, 1.0, 5.0], size=fs.shape)          # relative changes past ±1
    batch = F.psi(fs, gs, xs, features)
    state, rows = F.psi_init(xs[0]), []
    for t in range(T + 1):
        np.testing.assert_allclose(batch[t, 0], _ref_psi(fs, gs, xs, t, features), rtol=1e-12,
                                   atol=1e-15)
        out, state = F.psi_step(state, xs[t], fs[t], gs[t], features)
        rows.append(out)
    np.testing.assert_allclose(np.stack(rows), batch, rtol=1e-12, atol=1e-15)


def test_the_scale_free_gradient_feature_does_not_scale_with_the_gradient():
    fs, gs, xs = _history(np.random.default_rng(1), 12)
    scale_free = F.Features(gradient="adagrad")
    np.testing.assert_allclose(F.psi(fs, 1e-3 * gs, xs, scale_free)[..., 1],
                               F.psi(fs, gs, xs, scale_free)[..., 1], rtol=1e-6)
    np.testing.assert_allclose(F.phi(fs, 1e-3 * gs, xs, features=scale_free)[..., 26:52],
                               F.phi(fs, gs, xs, features=scale_free)[..., 26:52], rtol=1e-6)
    assert not np.allclose(F.psi(fs, 1e-3 * gs, xs)[..., 1], F.psi(fs, gs, xs)[..., 1])


@settings(max_examples=3)
@given(seeds, st.sampled_from([0, 7, 140]))
def test_scale_free_phi_matches_the_definition_step_by_step_and_batched(seed, T):
    """Φ2_i = ḡ_{t−5i} / (√Σ_{k≤t} g_k² + ε); every other entry as the paper's."""
    fs, gs, xs = _history(rng_from(seed), T)
    features = F.Features(gradient="adagrad")
    batch = F.phi(fs, gs, xs, features=features)
    paper = F.phi(fs, gs, xs)
    for t in sorted({0, 1, 6, T // 2, T} & set(range(T + 1))):
        sq = np.sqrt(np.sum(gs[:t + 1, 0] ** 2, axis=0)) + 1e-10           # (P,)
        for i in range(26):
            k = t - 5 * i
            bar = 0.0 if k < 0 else np.mean(gs[max(k - 2, 0):k + 1, 0], axis=0)
            np.testing.assert_allclose(batch[t, 0, :, 26 + i], bar / sq, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(np.delete(batch, range(26, 52), -1),
                                  np.delete(paper, range(26, 52), -1))
    state, rows = F.phi_init(xs[0]), []
    for t in range(T + 1):
        out, state = F.phi_step(state, xs[t], fs[t], gs[t], features=features)
        rows.append(out)
    np.testing.assert_allclose(np.stack(rows), batch, rtol=1e-12, atol=1e-13)


def test_unknown_feature_forms_raise():
    for kwargs in ({"gradient": "rms"}, {"psi1": "tanh"}, {"psi3": ""}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            F.Features(**kwargs)


def test_each_design_is_described_by_what_it_changes():
    paper = F.PAPER.describe()
    assert "paper" in paper
    both = F.Features(gradient="adagrad", psi1="clip").describe()
    assert "√Σg²" in both and "clipped" in both and "step ratio" not in both
    every = {F.Features(gradient=g, psi1=p, psi3=r).describe()
             for g in ("paper", "adagrad") for p in ("paper", "clip") for r in ("paper", "ratio")}
    assert len(every) == 8
