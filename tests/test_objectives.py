"""Tests of ``lto_ref.objectives`` (docs/method.md §2).

Oracles are written here from the formulas of docs/method.md §2, not from the module: per-point loop references
of every loss, log 2 at x = 0, the quadratic's and the logistic loss's closed-form gradients,
central finite differences, and the docs/method.md (10) seeding and draw order replayed by hand.
"""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import assume, given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import objectives as obj

LR, RR, NN = obj.logistic_regression(), obj.robust_linear_regression(), obj.two_layer_net()
LR2D, QUAD = obj.logistic_regression_2d(), obj.quadratic()
RR_HALF = obj.robust_linear_regression(0.5)  # c ≠ 1, so the references see c
QUAD6 = obj.quadratic(6, lam_min=0.2, lam_max=5.0, f_off=-1.5)
ALL = [LR, RR, NN, LR2D, QUAD, RR_HALF, QUAD6]
DATASETS, LOGISTIC = [LR, RR, NN, LR2D], [LR, LR2D]
few = settings(max_examples=min(50, settings().max_examples))  # the loop references are slow


def ids(fam):
    return f"{fam.name}{fam.dim}" if isinstance(fam, obj.Family) else None


def draw(fam, seed, n_max=4):
    """Data of 1..n_max functions and x ~ N(0, 4 I): away from ReLU kinks and overflow."""
    rng = rng_from(seed)
    n = int(rng.integers(1, n_max + 1))
    return fam.sample(rng, n), 2.0 * rng.standard_normal((n, fam.dim))


def batched_grad(fam, x, problems):
    return grad(lambda x: anp.sum(fam.loss(x, problems)))(x)


# ---- plain per-point references, written from docs/method.md (3)–(9) --------------------------------

def log_sigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def ref_logistic(x, a, y, lam=5e-4):  # the cross-entropy form of (3)
    w, b, total = x[:-1], x[-1], 0.0
    for ai, yi in zip(a, y):
        z = sum(wk * ak for wk, ak in zip(w, ai)) + b
        total -= yi * log_sigmoid(z) + (1 - yi) * log_sigmoid(-z)
    return total / len(y) + 0.5 * lam * sum(wk * wk for wk in w)


def ref_robust(x, a, y, c=1.0):  # Geman–McClure, (5)
    rs = [yi - sum(wk * ak for wk, ak in zip(x[:-1], ai)) - x[-1] for ai, yi in zip(a, y)]
    return sum(r * r / (c * c + r * r) for r in rs) / len(rs)


def net_preactivations(x, a):  # (8) layout: x[0:4] = W row-major, x[4:6] = b
    return [[x[2 * k] * ai[0] + x[2 * k + 1] * ai[1] + x[4 + k] for k in (0, 1)] for ai in a]


def ref_net(x, a, y, lam=5e-4):  # x[6:10] = U row-major, x[10:12] = c
    total = 0.0
    for pre, yi in zip(net_preactivations(x, a), y):
        h = [max(p, 0.0) for p in pre]
        z = [x[6 + 2 * p] * h[0] + x[7 + 2 * p] * h[1] + x[10 + p] for p in (0, 1)]
        m = max(z)
        total += m + math.log(sum(math.exp(zp - m) for zp in z)) - z[int(yi)]
    return total / len(y) + 0.5 * lam * (sum(v * v for v in x[0:4]) + sum(v * v for v in x[6:10]))


def ref_quadratic(x, A, x_star, f_off):  # ½ Σ_ik r_i A_ik r_k + f_off, r = x − x*
    r = [xi - si for xi, si in zip(x, x_star)]
    return 0.5 * sum(ri * Aik * rk for ri, row in zip(r, A) for Aik, rk in zip(row, r)) + f_off


def ref_loss(fam, x, p):
    if fam.name == "quadratic":
        return np.array([ref_quadratic(*args) for args in zip(x, p.A, p.x_star, p.f_off)])
    ref = {RR: ref_robust, RR_HALF: lambda *v: ref_robust(*v, 0.5), NN: ref_net}.get(fam)
    return np.array([(ref or ref_logistic)(*args) for args in zip(x, p.a, p.y)])


# ---- 1. gradients ---------------------------------------------------------------------------

@pytest.mark.parametrize("fam", ALL, ids=ids)
@given(seeds)
def test_gradient_matches_central_differences(fam, seed):
    problems, x = draw(fam, seed)
    if fam is NN:  # ReLU kinks are measure zero, but the FD step must not cross one
        assume(min(abs(v) for xj, aj in zip(x, problems.a)
                   for pre in net_preactivations(xj, aj) for v in pre) > 1e-3)
    g, h, fd = batched_grad(fam, x, problems), 1e-5, np.empty_like(x)
    for k in range(fam.dim):  # column k of every row at once: rows are independent problems
        e = np.zeros_like(x)
        e[:, k] = h
        fd[:, k] = (fam.loss(x + e, problems) - fam.loss(x - e, problems)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)
    for i in range(len(x)):  # the batched gradient is every per-problem gradient, exactly
        alone = batched_grad(fam, x[i:i + 1], obj.subset(problems, [i]))
        np.testing.assert_array_equal(g[i:i + 1], alone)


# ---- 2. oracles -----------------------------------------------------------------------------

@pytest.mark.parametrize("fam", [LR, NN, LR2D], ids=ids)
@given(seeds)
def test_loss_at_zero_is_log2(fam, seed):
    problems, x = draw(fam, seed)
    np.testing.assert_allclose(fam.loss(0 * x, problems), math.log(2), rtol=0, atol=1e-12)


@few
@pytest.mark.parametrize("fam", ALL, ids=ids)
@given(seeds)
def test_loss_matches_loop_reference(fam, seed):
    p, x = draw(fam, seed, n_max=2)
    np.testing.assert_allclose(fam.loss(x, p), ref_loss(fam, x, p), rtol=1e-12, atol=1e-12)


@given(seeds, st.integers(1, 6), st.floats(-5, 5))
def test_quadratic_minimum_and_closed_form_gradient(seed, dim, f_off):
    fam = obj.quadratic(dim, lam_min=0.3, lam_max=4.0, f_off=f_off)
    p, x = draw(fam, seed)
    np.testing.assert_array_equal(fam.loss(p.x_star, p), np.full(len(x), f_off))
    expected = np.einsum("nij,nj->ni", p.A, x - p.x_star)  # ∇f = A (x − x*)
    np.testing.assert_allclose(batched_grad(fam, x, p), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fam", LOGISTIC, ids=ids)
@given(seeds)
def test_logistic_gradient_is_sigmoid_minus_label(fam, seed):
    p, x = draw(fam, seed)
    w, b = x[:, :-1], x[:, -1]
    err = 1.0 / (1.0 + np.exp(-(np.einsum("nNi,ni->nN", p.a, w) + b[:, None]))) - p.y
    g_w = np.einsum("nN,nNi->ni", err, p.a) / 100 + 5e-4 * w  # (1/N) Σ (σ(z) − y) a + λ w
    expected = np.concatenate([g_w, err.mean(axis=1)[:, None]], axis=1)
    np.testing.assert_allclose(batched_grad(fam, x, p), expected, rtol=1e-12, atol=1e-14)


# ---- 3. metamorphic -------------------------------------------------------------------------

@pytest.mark.parametrize("fam", DATASETS, ids=ids)
@given(seeds, seeds)
def test_permuting_data_points_leaves_loss_unchanged(fam, seed, perm_seed):
    p, x = draw(fam, seed)
    rng, rows = rng_from(perm_seed), np.arange(len(x))[:, None]
    perm = np.stack([rng.permutation(p.a.shape[1]) for _ in rows])  # one per problem
    shuffled = obj.Dataset(a=p.a[rows, perm], y=p.y[rows, perm])
    # rtol, not equality: the mean over N sums in another order (addition is not associative)
    np.testing.assert_allclose(fam.loss(x, shuffled), fam.loss(x, p), rtol=1e-13, atol=1e-15)


@given(seeds, seeds, st.sampled_from([2, 3, 5]))
def test_permuting_hidden_units_leaves_loss_unchanged(seed, perm_seed, h):
    fam = obj.two_layer_net(hidden=h)
    p, x = draw(fam, seed)
    n, perm = len(x), rng_from(perm_seed).permutation(h)
    W, b = x[:, :2 * h].reshape(n, h, 2), x[:, 2 * h:3 * h]  # (8) layout, row-major
    U, c = x[:, 3 * h:5 * h].reshape(n, 2, h), x[:, 5 * h:]
    x_perm = np.concatenate([W[:, perm].reshape(n, -1), b[:, perm],
                             U[:, :, perm].reshape(n, -1), c], axis=1)
    # rtol: the sums over hidden units and of ‖W‖², ‖U‖² run in another order
    np.testing.assert_allclose(fam.loss(x_perm, p), fam.loss(x, p), rtol=1e-13, atol=1e-15)


@given(seeds)
def test_geman_mcclure_is_even_in_x_and_y(seed):
    p, x = draw(RR, seed)  # exact: IEEE negation commutes with every operation in r
    np.testing.assert_array_equal(RR.loss(-x, obj.Dataset(p.a, -p.y)), RR.loss(x, p))


# ---- 4. postconditions ----------------------------------------------------------------------

def big_x(rng, n, d):  # entries up to 1e3 in magnitude, over five decades
    return 10.0 ** rng.uniform(-2, 3) * rng.uniform(-1, 1, (n, d))


@pytest.mark.parametrize("fam", LOGISTIC, ids=ids)
@given(seeds, st.floats(0, 1))
def test_logistic_is_convex_nonnegative_and_finite(fam, seed, theta):
    rng = rng_from(seed)
    p, x, z = fam.sample(rng, 3), big_x(rng, 3, fam.dim), big_x(rng, 3, fam.dim)
    fx, fz, fmid = fam.loss(x, p), fam.loss(z, p), fam.loss(theta * x + (1 - theta) * z, p)
    assert np.all(np.isfinite(fx)) and np.all(fx >= 0) and np.all(fmid >= 0)
    chord = theta * fx + (1 - theta) * fz
    # slack relative to |f|: at |x| ~ 1e3, f ~ 1e4 is nearly linear and rounds at ~1e-12
    assert np.all(fmid <= chord + 1e-12 * (1 + np.abs(chord)))


@given(seeds, st.floats(0.1, 10))
def test_geman_mcclure_per_point_loss_in_unit_interval(seed, c):
    fam, rng = obj.robust_linear_regression(c), rng_from(seed)
    p, x = fam.sample(rng, 2), big_x(rng, 2, fam.dim)
    one_point = obj.Dataset(a=p.a.reshape(-1, 1, 3), y=p.y.reshape(-1, 1))  # 200 problems, N = 1
    per_point, f = fam.loss(np.repeat(x, 100, axis=0), one_point), fam.loss(x, p)
    assert np.all((0 <= per_point) & (per_point < 1)) and np.all((0 <= f) & (f < 1))


@given(seeds)
def test_net_labels_constant_per_cluster_and_not_all_equal(seed):
    y = NN.sample(rng_from(seed), 20).y
    clusters = y.reshape(20, 4, 25)
    assert np.issubdtype(y.dtype, np.integer) and set(np.unique(y)) <= {0, 1}
    assert np.all(clusters == clusters[:, :, :1])
    assert np.all(clusters[:, :, 0].min(axis=1) != clusters[:, :, 0].max(axis=1))


@pytest.mark.parametrize("fam, d_in, dim", [(LR, 3, 4), (RR, 3, 4), (NN, 2, 12), (LR2D, 1, 2)],
                         ids=ids)
@given(seeds, st.integers(1, 4))
def test_data_shapes_and_lr_labels_follow_spec(fam, d_in, dim, seed, n):
    rng = rng_from(seed)
    p, x0 = fam.sample(rng, n), fam.init(rng, n)
    assert fam.dim == dim and x0.shape == (n, dim) and x0.dtype == np.float64
    assert p.a.shape == (n, 100, d_in) and p.y.shape == (n, 100) and p.a.dtype == np.float64
    if fam in LOGISTIC:  # 50 zeros then 50 ones
        np.testing.assert_array_equal(p.y, np.tile([0.0] * 50 + [1.0] * 50, (n, 1)))


@given(seeds, st.integers(2, 8), st.floats(0.01, 10), st.floats(1, 100))
def test_quadratic_is_spd_with_requested_spectrum(seed, dim, lam_min, ratio):
    p = obj.quadratic(dim, lam_min=lam_min, lam_max=lam_min * ratio).sample(rng_from(seed), 3)
    assert p.A.shape == (3, dim, dim) and p.x_star.shape == (3, dim) and p.f_off.shape == (3,)
    np.testing.assert_array_equal(p.A, np.swapaxes(p.A, 1, 2))
    eig = np.linalg.eigvalsh(p.A)  # ascending
    np.testing.assert_allclose(eig[:, 0], lam_min, rtol=0, atol=1e-10)
    np.testing.assert_allclose(eig[:, -1], lam_min * ratio, rtol=0, atol=1e-10)


def replay_sample(fam, rng, n):
    """Data of LR, RR, NN or LR2D drawn by hand in the docs/method.md (3)–(8), (10) order."""
    a, y = [], []
    for _ in range(n):
        if fam is RR:  # per cluster: μ_k, points, w_k, b_k, noise
            pts, ys = [], []
            for _ in range(4):
                pts.append(rng.standard_normal(3) + rng.standard_normal((25, 3)))
                w, b = rng.standard_normal(3), rng.standard_normal()
                ys.append(pts[-1] @ w + b + rng.standard_normal(25))
            a.append(np.concatenate(pts)), y.append(np.concatenate(ys))
            continue
        k, m, d_in = (4, 25, 2) if fam is NN else (2, 50, fam.dim - 1)
        blocks = []
        for _ in range(k):  # μ, A (s for LR2D), points a = μ + A ε
            mu, A = rng.standard_normal(d_in), rng.standard_normal((d_in, d_in))
            blocks.append(mu + np.einsum("ij,mj->mi", A, rng.standard_normal((m, d_in))))
        labels = np.array([0, 0] if fam is NN else [0, 1])  # LR: class c has label c
        while fam is NN and labels.min() == labels.max():  # NN: then labels, redrawn if all equal
            labels = rng.integers(0, 2, size=4)
        a.append(np.concatenate(blocks)), y.append(np.repeat(labels, m))
    return np.stack(a), np.stack(y)


@pytest.mark.parametrize("fam", DATASETS, ids=ids)
@given(seeds, st.integers(1, 3))
def test_sample_follows_spec_draw_order(fam, seed, n):
    p, (a, y) = fam.sample(rng_from(seed), n), replay_sample(fam, rng_from(seed), n)
    # rtol: the products A ε and wᵀa may be summed in another order
    np.testing.assert_allclose(p.a, a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.y, y, rtol=1e-12, atol=1e-12)


# ---- 5. batch consistency -------------------------------------------------------------------

@pytest.mark.parametrize("fam", ALL, ids=ids)
@given(seeds)
def test_batch_loss_equals_each_problem_alone(fam, seed):
    p, x = draw(fam, seed, n_max=5)
    f = fam.loss(x, p)
    for i in range(len(x)):  # exact: the same arithmetic per row, whatever the batch size
        assert fam.loss(x[i:i + 1], obj.subset(p, [i]))[0] == f[i]


# ---- 6. purity and determinism --------------------------------------------------------------

def assert_same(p, q):
    assert len(p) == len(q)
    for u, v in zip(p, q):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("fam", ALL, ids=ids)
@given(seeds, st.sampled_from([obj.TRAIN, obj.TEST, obj.VALIDATION]), st.integers(1, 3))
def test_split_data_is_deterministic_and_follows_spec_seeding(fam, base_seed, split, n):
    p, x0 = obj.split_data(fam, split, n, base_seed=base_seed)
    p2, x02 = obj.split_data(fam, split, n, base_seed=base_seed)
    assert_same([*p, x0], [*p2, x02])
    fid = {"logistic_regression": 0, "robust_linear_regression": 1, "two_layer_net": 2,
           "logistic_regression_2d": 3, "quadratic": 4}[fam.name]  # docs/method.md (10)
    assert obj.family_by_name(fam.name).name == fam.name
    rng = np.random.default_rng(np.random.SeedSequence([base_seed, fid, split]))
    assert_same(p, fam.sample(rng, n))  # data first, then x0 ~ N(0, I)
    np.testing.assert_array_equal(x0, rng.standard_normal((n, fam.dim)))
    other_split = obj.split_data(fam, (split + 1) % 3, n, base_seed=base_seed)[0]
    other_seed = obj.split_data(fam, split, n, base_seed=base_seed + 1)[0]
    assert not np.array_equal(p[0], other_split[0]) and not np.array_equal(p[0], other_seed[0])


@pytest.mark.parametrize("fam", ALL, ids=ids)
@given(seeds)
def test_loss_and_grad_do_not_mutate_inputs(fam, seed):
    p, x = draw(fam, seed)
    p_copy, x_copy = [np.copy(u) for u in p], x.copy()
    fam.loss(x, p)
    batched_grad(fam, x, p)
    assert_same([*p, x], [*p_copy, x_copy])


# ---- 7. bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("fam", ALL, ids=ids)
def test_bad_x_shape_raises(fam):
    p = fam.sample(np.random.default_rng(0), 2)
    for shape in [(2, fam.dim + 1), (2, fam.dim - 1), (3, fam.dim), (1, fam.dim), (fam.dim,)]:
        with pytest.raises(ValueError, match=r"\bx\b"):
            fam.loss(np.zeros(shape), p)


@pytest.mark.parametrize("fam", ALL, ids=ids)
@pytest.mark.parametrize("n", [0, -1, 2.0])
def test_bad_n_raises(fam, n):
    for fn in (fam.sample, fam.init):
        with pytest.raises(ValueError, match=r"\bn\b"):
            fn(np.random.default_rng(0), n)


@pytest.mark.parametrize("make, word", [
    (lambda: obj.logistic_regression(lam=-1e-3), "lam"),
    (lambda: obj.logistic_regression_2d(lam=-1.0), "lam"),
    (lambda: obj.two_layer_net(lam=-1.0), "lam"),
    (lambda: obj.robust_linear_regression(c=0.0), "c"),
    (lambda: obj.robust_linear_regression(c=-1.0), "c"),
    (lambda: obj.quadratic(0), "dim"),
    (lambda: obj.quadratic(4, lam_min=2.0, lam_max=1.0), "lam_min"),
    (lambda: obj.quadratic(4, lam_min=0.0), "lam_min"),
    (lambda: obj.split_data(LR, 3, 3), "split"),
    (lambda: obj.split_data(LR, -1, 3), "split"),
    (lambda: obj.family_by_name("adam"), "name"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_raise_naming_the_argument(make, word):
    with pytest.raises(ValueError, match=rf"\b{word}\b"):
        make()
