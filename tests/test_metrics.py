"""Tests of lto_ref.metrics: margin of victory and win fraction (docs/method.md (93)–(94), (95))."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hynp

from lto_ref.metrics import diverged, margin_of_victory, sanitize, win_fraction

NAMES = ["gd", "momentum", "cg", "lbfgs", "learned"]


@st.composite
def curve_dicts(draw, min_k=2, max_k=5, ties=False):
    """{name: fs (T+1, n)}; with ``ties``, values in [-3, 3], often integers (exact, near ties)."""
    k = draw(st.integers(min_k, max_k))
    shape = (k, draw(st.integers(1, 6)), draw(st.integers(1, 5)))
    elements = (st.one_of(st.integers(-3, 3).map(float), st.floats(-3, 3)) if ties
                else st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))
    F = draw(hynp.arrays(np.float64, shape, elements=elements))
    return dict(zip(NAMES[:k], F))


def _reference_mov(curves):
    """Plain-loop MoV_a(i) = mean_f [min_{b≠a} f_b(i) − f_a(i)]."""
    T1, n = next(iter(curves.values())).shape
    out = {}
    for a in curves:
        out[a] = np.array([np.mean([min(curves[b][i, j] for b in curves if b != a) - curves[a][i, j]
                                    for j in range(n)]) for i in range(T1)])
    return out


def _reference_wins(curves):
    """Plain-loop W_a(i) = mean_f 1[a ∈ B_f(i)] / |B_f(i)|."""
    T1, n = next(iter(curves.values())).shape
    out = {a: np.zeros(T1) for a in curves}
    for i in range(T1):
        for j in range(n):
            low = min(fs[i, j] for fs in curves.values())
            winners = [a for a in curves if curves[a][i, j] == low]
            for a in winners:
                out[a][i] += 1.0 / (len(winners) * n)
    return out


def _assert_dicts_close(got, want, **tol):
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], **tol)


# A tiny example by hand: 3 methods, 2 iterations (rows), 2 functions (columns).
#   iteration 0: f0: A 4, B 4, C 6        f1: A 2, B 5, C 1
#   iteration 1: f0: A 1, B 2, C 0        f1: A 3, B 3, C 3
# MoV (min of the others minus own), then the mean over the two functions:
#   i=0  f0: A min(4,6)-4 = 0,  B min(4,6)-4 = 0,  C min(4,4)-6 = -2
#        f1: A min(5,1)-2 = -1, B min(2,1)-5 = -4, C min(2,5)-1 = 1
#        mean: A -0.5, B -2, C -0.5
#   i=1  f0: A min(2,0)-1 = -1, B min(1,0)-2 = -2, C min(1,2)-0 = 1;  f1: all 0
#        mean: A -0.5, B -1, C 0.5
# Win fraction: i=0  f0: A, B tie (1/2 each); f1: C wins  -> A 1/4, B 1/4, C 1/2
#               i=1  f0: C wins; f1: three-way tie (1/3 each) -> A 1/6, B 1/6, C 2/3
HAND = {"A": np.array([[4.0, 2.0], [1.0, 3.0]]),
        "B": np.array([[4.0, 5.0], [2.0, 3.0]]),
        "C": np.array([[6.0, 1.0], [0.0, 3.0]])}


def test_margin_of_victory_hand_example():
    want = {"A": np.array([-0.5, -0.5]), "B": np.array([-2.0, -1.0]), "C": np.array([-0.5, 0.5])}
    _assert_dicts_close(margin_of_victory(HAND), want, rtol=0, atol=0)


def test_win_fraction_hand_example():
    want = {"A": np.array([0.25, 1 / 6]), "B": np.array([0.25, 1 / 6]), "C": np.array([0.5, 2 / 3])}
    _assert_dicts_close(win_fraction(HAND), want, rtol=1e-15, atol=0)


@given(curve_dicts(ties=True))
def test_margin_of_victory_matches_plain_loop(curves):
    _assert_dicts_close(margin_of_victory(curves), _reference_mov(curves), rtol=1e-12, atol=1e-12)


@given(curve_dicts(ties=True))
def test_win_fraction_matches_plain_loop(curves):
    _assert_dicts_close(win_fraction(curves), _reference_wins(curves), rtol=1e-12, atol=1e-15)


@given(curve_dicts(), st.data())
def test_margins_invariant_to_added_constant(curves, data):
    T1, n = curves["gd"].shape
    shift_shape = data.draw(st.sampled_from([(), (n,), (T1, n)]), label="shift shape")
    c = data.draw(hynp.arrays(np.float64, shift_shape, elements=st.floats(-1e3, 1e3)), label="c")
    shifted = {name: fs + c for name, fs in curves.items()}
    # one rounding of values up to 2e3 per term, so absolute tolerance ~ 2e3 * eps
    _assert_dicts_close(margin_of_victory(shifted), margin_of_victory(curves), rtol=0, atol=1e-9)


@given(curve_dicts(min_k=2, max_k=2))
def test_two_methods_margins_are_opposite(curves):
    a, b = margin_of_victory(curves).values()
    np.testing.assert_array_equal(a, -b)


@given(curve_dicts(ties=True))
def test_win_fractions_sum_to_one(curves):
    total = np.sum(list(win_fraction(curves).values()), axis=0)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


@given(curve_dicts(), st.integers(2, 5))
def test_equal_curves_split_the_win_and_have_zero_margin(curves, k):
    fs = curves["gd"]
    equal = {name: fs.copy() for name in NAMES[:k]}
    for w in win_fraction(equal).values():
        np.testing.assert_allclose(w, 1.0 / k, rtol=1e-12)
    for m in margin_of_victory(equal).values():
        np.testing.assert_array_equal(m, 0.0)


@given(curve_dicts(), st.data())
def test_strictly_lowest_method_wins_everything(curves, data):
    winner = data.draw(st.sampled_from(list(curves)), label="winner")
    others = np.min([fs for name, fs in curves.items() if name != winner], axis=0)
    gap = data.draw(st.floats(1e-3, 10.0), label="gap")
    lowered = {**curves, winner: others - gap}
    wins, margins = win_fraction(lowered), margin_of_victory(lowered)
    for name, w in wins.items():
        np.testing.assert_array_equal(w, 1.0 if name == winner else 0.0)
    assert np.all(margins[winner] > 0)


@given(curve_dicts(), st.data())
def test_sanitize_replaces_non_finite_by_worst_finite_of_function(curves, data):
    names = list(curves)
    K, (T1, n) = len(names), curves[names[0]].shape
    keep = np.zeros((K, T1, n), dtype=bool)
    keep[0, 0] = True  # every function keeps at least one finite value
    bad = data.draw(hynp.arrays(np.bool_, (K, T1, n)), label="bad") & ~keep
    fill = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="fill")
    dirty = {name: np.where(bad[a], fill, curves[name]) for a, name in enumerate(names)}
    before = {name: fs.copy() for name, fs in dirty.items()}
    clean, n_replaced = sanitize(dirty)
    assert n_replaced == int(bad.sum())
    for j in range(n):
        finite = [curves[name][i, j] for a, name in enumerate(names) for i in range(T1)
                  if not bad[a, i, j]]
        for a, name in enumerate(names):
            for i in range(T1):
                want = max(finite) if bad[a, i, j] else curves[name][i, j]
                assert clean[name][i, j] == want
    for name in names:
        np.testing.assert_array_equal(dirty[name], before[name])  # inputs untouched
    _assert_dicts_close(margin_of_victory(dirty), margin_of_victory(clean), rtol=0, atol=0)
    _assert_dicts_close(win_fraction(dirty), win_fraction(clean), rtol=0, atol=0)


def test_sanitize_hand_example():
    # function 0 finite values: 1, 7, 2, 3 -> largest 7; function 1 finite values: 5, 4 -> 5
    curves = {"a": np.array([[1.0, np.nan], [7.0, 5.0]]),
              "b": np.array([[np.inf, -np.inf], [2.0, 4.0]]),
              "c": np.array([[3.0, np.nan], [np.nan, np.inf]])}
    clean, n_replaced = sanitize(curves)
    assert n_replaced == 6
    _assert_dicts_close(clean, {"a": np.array([[1.0, 5.0], [7.0, 5.0]]),
                                "b": np.array([[7.0, 5.0], [2.0, 4.0]]),
                                "c": np.array([[3.0, 5.0], [7.0, 5.0]])}, rtol=0, atol=0)


def test_function_without_finite_values_is_refused():
    curves = {"a": np.array([[1.0, np.nan]]), "b": np.array([[2.0, np.inf]])}
    for fn in (sanitize, margin_of_victory, win_fraction):
        with pytest.raises(ValueError, match=r"function\(s\) \[1\]"):
            fn(curves)


@given(curve_dicts())
def test_metrics_do_not_mutate_inputs(curves):
    before = {name: fs.copy() for name, fs in curves.items()}
    margin_of_victory(curves)
    win_fraction(curves)
    sanitize(curves)
    assert list(curves) == list(before)
    for name in before:
        np.testing.assert_array_equal(curves[name], before[name])


@pytest.mark.parametrize("curves, message", [
    ({"a": np.zeros((3, 2))}, "at least 2 methods"),
    ({}, "at least 2 methods"),
    ({"a": np.zeros((3, 2)), "b": np.zeros((3, 3))}, r"curves\['b'\] must have the shape"),
    ({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, r"curves\['b'\] must have the shape"),
    ({"a": np.zeros(3), "b": np.zeros(3)}, r"curves\['a'\] must have shape \(T\+1, n\)"),
    ({"a": np.zeros((2, 3, 1)), "b": np.zeros((2, 3, 1))}, r"must have shape \(T\+1, n\)"),
    ({"a": np.zeros((0, 2)), "b": np.zeros((0, 2))}, r"must have shape \(T\+1, n\)"),
    ([np.zeros((3, 2)), np.zeros((3, 2))], "curves must be a dict"),
])
def test_bad_curves_are_refused(curves, message):
    for fn in (sanitize, margin_of_victory, win_fraction):
        with pytest.raises(ValueError, match=message):
            fn(curves)


@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_diverged_is_any_of_the_three_conditions_row_by_row(n, T, seed):
    from lto_ref import rollout
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(n, 2))
    xs = rng.normal(size=(T + 1, n, 2)) * rng.choice([1.0, 500.0], size=(1, n, 1))
    fs = rng.normal(size=(T + 1, n))
    fs[-1, rng.random(n) < 0.3] = np.nan
    flag = rng.random(n) < 0.3
    got = diverged(rollout.Trace(xs=xs, fs=fs, gs=np.zeros_like(xs), diverged=flag), x0)
    for j in range(n):
        expect = (flag[j] or not np.isfinite(fs[-1, j]) or fs[-1, j] > fs[0, j]
                  or np.linalg.norm(xs[-1, j]) > 100 * (1 + np.linalg.norm(x0[j])))
        assert got[j] == expect
