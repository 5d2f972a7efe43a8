"""GPS environment (state layout, exact shift structure, simulation) and the dynamics fit."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import features, objectives, optimizers, rollout
from lto_ref.gps import dynamics as D, environment as E, gmm as G


def _lr(n=3, seed=0):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0


def _noisy_gd(rng, lay, lr=0.5, scale=0.05):
    o = lay.d + lay.h + lay.h * lay.d                    # CUR_GRAD's offset in the state
    return lambda t, X, O: -lr * X[..., o:o + lay.d] + scale * rng.standard_normal(
        X.shape[:-1] + (lay.d,))


def test_layout_with_all_lags_is_the_full_state():
    lay = E.layout(4, 25)
    np.testing.assert_array_equal(lay.index, np.arange(features.state_dim(4, 25)))
    assert len(E.layout(4, 25, 5).index) == features.state_dim(4, 5) == 53
    with pytest.raises(ValueError, match="h"):
        E.layout(4, 25, 26)


@settings(max_examples=15)
@given(seeds, st.integers(1, 6))
def test_next_state_is_exactly_the_shift_plus_the_new_entries(seed, h):
    fam, problems, x0 = _lr()
    lay = E.layout(fam.dim, 6, h)
    s = E.simulate(fam, problems, x0, _noisy_gd(rng_from(seed), lay), 8, 4, lay)
    S, Em = E.structure(lay)
    z = np.concatenate([s.X, s.U], axis=-1)
    np.testing.assert_allclose((z @ S.T + s.new @ Em.T)[:, :, :-1], s.X[:, :, 1:], rtol=0,
                               atol=1e-14)
    # the h-lag state selected from H = 6 lags is the state built with H = h lags
    same = E.simulate(fam, problems, x0, _noisy_gd(rng_from(seed), lay), 8, 4, E.layout(4, h, h))
    np.testing.assert_array_equal(same.X, s.X)


def test_simulate_with_a_gradient_controller_matches_rollout_of_gd():
    fam, problems, x0 = _lr()
    lay = E.layout(fam.dim, 4, 2)
    s = E.simulate(fam, problems, x0, _noisy_gd(np.random.default_rng(0), lay, 0.3, 0.0), 10, 2, lay)
    trace = rollout.run(optimizers.gd(0.3), functools.partial(fam.loss, problems=problems), x0, 10)
    for n in range(2):
        np.testing.assert_allclose(s.fs[:, n].T, trace.fs, rtol=1e-13)
    _, O = features.observe_trace(trace.xs, trace.fs, trace.gs, H=4)
    np.testing.assert_allclose(s.O[:, 0], np.swapaxes(O[:-1], 0, 1), rtol=1e-12, atol=1e-15)
    assert s.X.shape == (3, 2, 10, features.state_dim(4, 2)) and not s.diverged.any()


def test_a_diverging_sample_is_frozen_and_flagged_alone():
    fam, problems, x0 = _lr()
    lay = E.layout(fam.dim, 3, 1)

    def act(t, X, O):
        u = np.zeros(X.shape[:-1] + (4,))
        u[1, 0] = 1e300 if t == 2 else 0.1               # condition 1, sample 0 blows up
        return u
    with np.errstate(all="raise"):
        s = E.simulate(fam, problems, x0, act, 5, 2, lay)
    assert s.diverged.tolist() == [[False, False], [True, False], [False, False]]
    assert np.all(np.isfinite(s.X)) and np.all(np.isfinite(s.fs))
    np.testing.assert_array_equal(s.U[1, 0, 2:], 0.0)
    np.testing.assert_array_equal(s.fs[1, 0, 3:], s.fs[1, 0, 2])


def _linear_samples(rng, lay, N, T, noise=0.0):
    """Samples whose new entries follow a known linear map n = A z + a (+ noise)."""
    dX, dU, r = len(lay.index), lay.d, lay.d + 1
    A, a = rng.standard_normal((r, dX + dU)), rng.standard_normal(r)
    X, U = rng.standard_normal((N, T, dX)), rng.standard_normal((N, T, dU))
    new = np.concatenate([X, U], -1) @ A.T + a + noise * rng.standard_normal((N, T, r))
    return X, U, new, A, a


def _fit_one(X, U, new, lay, cfg, gmm=None, n_pts=None):
    S, Em = E.structure(lay)
    pts = np.concatenate([X[:, :-1], U[:, :-1], new[:, :-1]], -1)
    return D.fit_condition((0, X, U, new, pts, gmm, n_pts, None, S, Em, cfg))


@settings(max_examples=10)
@given(seeds)
def test_fit_recovers_known_linear_dynamics_and_psd_covariances(seed):
    rng = rng_from(seed)
    lay = E.layout(1, 2, 1)                               # dX = 5, dU = 1, r = 2
    X, U, new, A, a = _linear_samples(rng, lay, 300, 4, noise=0.01)
    Fm, fv, W, x0mu, x0sigma, _ = _fit_one(X, U, new, lay, D.Config(prior=G.Config(pooled=False)))
    S, Em = E.structure(lay)
    np.testing.assert_allclose(Fm, np.broadcast_to(S + Em @ A, Fm.shape), atol=0.02)
    np.testing.assert_allclose(fv, np.broadcast_to(Em @ a, fv.shape), atol=0.02)
    np.testing.assert_array_equal(W, np.swapaxes(W, -1, -2))
    assert np.all(np.linalg.eigvalsh(W) > -1e-12)
    np.testing.assert_allclose(x0mu, X[:, 0].mean(0), rtol=1e-12)


@given(seeds)
def test_vanishing_prior_gives_least_squares(seed):
    rng = rng_from(seed)
    lay = E.layout(1, 2, 1)
    X, U, new, _, _ = _linear_samples(rng, lay, 40, 3, noise=0.5)
    cfg = D.Config(prior=G.Config(strength=1e-12, reg=1e-12))
    Fm, fv, _, _, _, _ = _fit_one(X, U, new, lay, cfg, gmm=G.GMM(
        np.zeros((1, 8)), np.eye(8)[None], np.zeros(1)), n_pts=1000)
    S, Em = E.structure(lay)
    for t in range(2):
        Z = np.concatenate([X[:, t], U[:, t], np.ones((40, 1))], -1)
        coef = np.linalg.lstsq(Z, new[:, t], rcond=None)[0]             # (dXU + 1, r)
        np.testing.assert_allclose(Em.T @ (Fm[t] - S), coef[:-1].T, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(Em.T @ fv[t], coef[-1], rtol=1e-6, atol=1e-8)


@given(seeds, st.permutations(range(5)))
def test_fit_with_a_given_prior_is_invariant_to_sample_order(seed, perm):
    rng = rng_from(seed)
    lay = E.layout(1, 2, 1)
    X, U, new, _, _ = _linear_samples(rng, lay, 5, 3, noise=0.3)
    prior = G.GMM(rng.standard_normal((2, 8)), np.stack([np.eye(8)] * 2), np.log([0.5, 0.5]))
    a = _fit_one(X, U, new, lay, D.Config(), gmm=prior, n_pts=100)
    p = list(perm)
    b = _fit_one(X[p], U[p], new[p], lay, D.Config(), gmm=prior, n_pts=100)
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pooled", [True, False])
def test_fit_over_conditions_matches_map_fn_and_carries_its_state(pooled):
    fam, problems, x0 = _lr(n=2)
    lay = E.layout(fam.dim, 4, 2)
    s = E.simulate(fam, problems, x0, _noisy_gd(np.random.default_rng(1), lay), 6, 5, lay)
    cfg = D.Config(prior=G.Config(pooled=pooled), max_samples=8)
    dyn, state = D.fit(np.random.default_rng(2), s, E.structure(lay), None, cfg)
    dyn2, _ = D.fit(np.random.default_rng(2), s, E.structure(lay), None, cfg,
                    map_fn=lambda f, xs: [f(x) for x in xs])
    for u, v in zip(dyn, dyn2):
        np.testing.assert_array_equal(u, v)
    assert dyn.Fm.shape == (2, 5, len(lay.index), len(lay.index) + 4)
    assert len(state.gmms) == (1 if pooled else 2)
    # the prior keeps max_samples − 1 = 7 trajectories: 5 new + 2 carried from before
    assert state.buffers[0].shape[0] == 2
    with pytest.raises(ValueError, match="pooled_points"):
        G.Config(pooled_points=0)


@pytest.mark.parametrize("pooled", [True, False])
def test_carried_prior_state_fits_as_the_whole_trajectory_history_does(pooled):
    """Over four iterations of 3 samples (max_samples 8 keeps 7 trajectories), the state the fit
    carries gives the fits that keeping every past trajectory gives."""
    fam, problems, x0 = _lr(n=2)
    lay = E.layout(fam.dim, 4, 2)
    cfg = D.Config(prior=G.Config(pooled=pooled), max_samples=8)
    carried = whole = None
    for i in range(4):
        s = E.simulate(fam, problems, x0, _noisy_gd(np.random.default_rng(i), lay), 5, 3, lay)
        pts = np.concatenate([s.X[:, :, :-1], s.U[:, :, :-1], s.new[:, :, :-1]], -1)
        dyn_a, carried = D.fit(np.random.default_rng(10 + i), s, E.structure(lay), carried, cfg)
        dyn_b, prior = D.fit(np.random.default_rng(10 + i), s, E.structure(lay), whole, cfg)
        history = pts if whole is None else np.concatenate([whole.buffers, pts], axis=1)
        whole = D.PriorState(buffers=history, gmms=prior.gmms)
        for u, v in zip(dyn_a, dyn_b):
            np.testing.assert_array_equal(u, v)
        assert carried.buffers[0].shape[0] == min(3 * (i + 1), 4)


@given(seeds, st.integers(1, 6))
def test_initial_state_is_the_floored_variance_plus_the_prior(seed, dX):
    rng = rng_from(seed)
    pts = rng.standard_normal((7, dX)) * rng.uniform(0, 2, dX)
    pts[:, 0] = 1.5                                           # one deterministic entry
    cfg = D.Config(prior=G.Config(strength=0.5), x0_var_floor=1e-4)
    mu, sigma = D.initial_state(pts, cfg)
    var = np.array([np.mean((pts[:, j] - np.mean(pts[:, j])) ** 2) for j in range(dX)])
    np.testing.assert_allclose(mu, pts.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.diag(np.maximum(var, 1e-4) + 0.5 * dX * var),
                               rtol=1e-12, atol=1e-15)
    assert sigma[0, 0] == 1e-4


def test_initial_state_does_not_depend_on_the_memory_layout_of_its_points():
    # identical x_0 rows (fixed start, zero histories) summed pairwise along a fast axis 0 and
    # row by row along a slow one round differently; a pickled copy (map_fn) is C-ordered
    row = np.random.default_rng(0).standard_normal(53) * 3
    fortran = np.asfortranarray(np.broadcast_to(row, (20, 53)))
    a = D.initial_state(fortran, D.Config())
    b = D.initial_state(np.ascontiguousarray(fortran), D.Config())
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
