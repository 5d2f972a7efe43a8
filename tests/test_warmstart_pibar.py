"""Initial momentum controllers (docs/method.md (44)–(47)) and the policy linearisation π̄ (docs/method.md (59))."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import autodiff, objectives, optimizers, rollout
from lto_ref.gps import environment as E, gmm, pibar, warmstart as W


def _lr(n, seed=0):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0


def _run_controller(fam, problems, x0, K, T, lay):
    act = lambda t, X, O: np.einsum("ij,mnj->mni", K, X)  # noqa: E731
    return E.simulate(fam, problems, x0, act, T, 1, lay).fs[:, 0]


@settings(max_examples=10)
@given(st.integers(0, 100), st.sampled_from(W.GAMMAS), st.sampled_from(W.MASSES), st.integers(1, 4))
def test_recursive_gain_is_exact_heavy_ball(seed, gamma, mass, h):
    fam, problems, x0 = _lr(2, seed)
    lay = E.layout(fam.dim, 6, h)
    fs = _run_controller(fam, problems, x0, W.momentum_gain(lay, gamma, mass), 15, lay)
    trace = rollout.run(optimizers.momentum(gamma, mass), functools.partial(fam.loss, problems=problems), x0, 15)
    np.testing.assert_allclose(fs, trace.fs.T, rtol=1e-12, atol=1e-14)


@given(seeds, st.integers(1, 4), st.floats(0.01, 1), st.floats(0.5, 0.95))
def test_truncated_gain_sums_discounted_gradient_lags(seed, h, gamma, mass):
    rng = rng_from(seed)
    lay = E.layout(2, 6, h)
    x = rng.standard_normal(len(lay.index))
    d, o_gs, o_g = 2, 2 + h, 2 + h + 2 * h
    lags = [x[o_g:o_g + d]] + [x[o_gs + (h - j) * d:o_gs + (h - j + 1) * d] for j in range(1, h + 1)]
    expected = -gamma * sum(mass ** j * g for j, g in enumerate(lags))
    np.testing.assert_allclose(W.momentum_gain(lay, gamma, mass, "truncated") @ x, expected,
                               rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="form"):
        W.momentum_gain(lay, gamma, mass, "nesterov")


def test_initial_controllers_pick_the_best_grid_setting_per_function():
    fam, problems, x0 = _lr(3, 4)
    lay = E.layout(fam.dim, 5, 2)
    gammas, masses = (0.05, 0.4, 1.6), (0.82, 0.9)
    lg, choice = W.initial_controllers(fam, problems, x0, 12, lay, gammas=gammas, masses=masses)
    for m in range(3):
        one = functools.partial(fam.loss, problems=objectives.subset(problems, [m]))
        finals = [rollout.run(optimizers.momentum(g, u), one, x0[m:m + 1], 12).fs[-1, 0]
                  for g in gammas for u in masses]
        g, u = [(g, u) for g in gammas for u in masses][int(np.argmin(finals))]
        assert tuple(choice[m]) == (g, u)
        np.testing.assert_array_equal(lg.K[m, 5], W.momentum_gain(lay, g, u))
    np.testing.assert_array_equal(lg.k, 0.0)
    np.testing.assert_allclose(lg.pol_covar, np.broadcast_to(0.01 * np.eye(4), lg.pol_covar.shape))


@pytest.mark.parametrize("pooled", [False, True])
def test_pibar_recovers_a_linear_policy(pooled):
    rng = np.random.default_rng(0)
    M, N, T, dX, dU = 2, 60, 3, 5, 2
    X = rng.standard_normal((M, N, T, dX))
    A, a = rng.standard_normal((M, dU, dX)), rng.standard_normal((M, dU))
    mu_pol = np.einsum("mij,mntj->mnti", A, X) + a[:, None, None]
    var = np.array([0.3, 0.7])
    cfg = gmm.Config(max_clusters=4, pooled=pooled, reg=1e-6)
    pb, gmms = pibar.fit(rng, X, mu_pol, var, cfg=cfg)
    np.testing.assert_allclose(pb.K, np.broadcast_to(A[:, None], pb.K.shape), atol=0.02)
    np.testing.assert_allclose(pb.k, np.broadcast_to(a[:, None], pb.k.shape), atol=0.02)
    np.testing.assert_allclose(pb.pol_covar, np.broadcast_to(np.diag(var), pb.pol_covar.shape),
                               atol=0.02)
    assert len(gmms) == (1 if pooled else M)
    per_condition = np.array([[0.3, 0.7], [1.5, 0.2]])       # one variance per condition
    pb2, _ = pibar.fit(np.random.default_rng(0), X, mu_pol, per_condition, cfg=cfg)
    pb1, _ = pibar.fit(np.random.default_rng(0), X, mu_pol, var, cfg=cfg)
    shift = np.einsum("mi,ij->mij", per_condition - var, np.eye(dU))[:, None]
    np.testing.assert_allclose(pb2.pol_covar, pb1.pol_covar + shift, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("pooled", [False, True])
def test_pibar_blocks_through_map_fn_give_the_single_call_result(pooled):
    rng = np.random.default_rng(3)
    M, N, T, dX, dU = 5, 30, 4, 5, 2
    X = rng.standard_normal((M, N, T, dX))
    mu_pol = np.tanh(X[..., :dU]) + 0.1 * rng.standard_normal((M, N, T, dU))
    cfg = gmm.Config(max_clusters=3, min_samples_per_cluster=10, pooled=pooled)
    one, g1 = pibar.fit(np.random.default_rng(1), X, mu_pol, np.ones(dU), cfg=cfg)
    calls = []

    def map_fn(f, jobs):
        jobs = list(jobs)
        calls.append(len(jobs))
        return list(map(f, jobs))
    many, g3 = pibar.fit(np.random.default_rng(1), X, mu_pol, np.ones(dU), cfg=cfg,
                         map_fn=map_fn, chunks=3)
    assert calls == [3 if pooled else M]
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(g1, g3):
        np.testing.assert_array_equal(a.mu, b.mu)
    # each condition's fit uses its own points: changing condition 0 leaves the others alone
    X2 = X.copy()
    X2[0] += 1.0
    other, _ = pibar.fit(np.random.default_rng(1), X2, mu_pol, np.ones(dU), cfg=cfg, chunks=3)
    if not pooled:
        np.testing.assert_array_equal(other.K[1:], one.K[1:])
    assert not np.array_equal(other.K[0], one.K[0])


def test_x0_offset_adds_minus_gamma_g0_to_every_step():
    fam, problems, x0 = _lr(2, 1)
    lay = E.layout(fam.dim, 5, 2)
    lg0, choice0 = W.initial_controllers(fam, problems, x0, 8, lay, gammas=(0.4,), masses=(0.9,))
    lg1, _ = W.initial_controllers(fam, problems, x0, 8, lay, offset="x0", gammas=(0.4,),
                                   masses=(0.9,))
    _, g0 = autodiff.value_and_grad(functools.partial(fam.loss, problems=problems), x0)
    np.testing.assert_array_equal(lg0.k, 0.0)
    np.testing.assert_allclose(lg1.k, np.broadcast_to(-0.4 * g0[:, None], lg1.k.shape), rtol=1e-12)
    np.testing.assert_array_equal(lg0.K, lg1.K)
    with pytest.raises(ValueError, match="offset"):
        W.initial_controllers(fam, problems, x0, 8, lay, offset="g0")


def test_the_wide_initial_grid_holds_the_released_and_the_baselines_grids():
    from lto_ref import gps
    gammas, masses = W.grid("wide")
    for g in W.GAMMAS + rollout.LR_GRID:
        assert g in gammas
    for u in W.MASSES + rollout.MASS_GRID:
        assert u in masses
    assert max(gammas) == 10.0 and min(masses) == 0.5 and list(gammas) == sorted(set(gammas))
    assert W.grid("released") == (W.GAMMAS, W.MASSES)
    with pytest.raises(ValueError, match="init grid"):
        W.grid("tuned")
    with pytest.raises(ValueError, match="init_grid"):
        gps.Config(init_grid="tuned")


def test_gps_starts_from_the_configured_initial_grid():
    """init_state's controllers are the per-function search over ``Config.init_grid``'s grid."""
    from lto_ref import gps
    from lto_ref.gps import iteration
    fam, problems, x0 = _lr(2, 5)
    cfg = gps.Config(T=10, H=5, h=2, init_grid="wide")
    lay = E.layout(fam.dim, 5, 2)
    gammas, masses = W.grid("wide")
    expected, choice = W.initial_controllers(fam, problems, x0, 10, lay, gammas=gammas,
                                             masses=masses)
    got = iteration.init_state(fam, problems, x0, cfg, 0).lg
    np.testing.assert_array_equal(got.K, expected.K)
    released, choice0 = W.initial_controllers(fam, problems, x0, 10, lay)
    assert not np.array_equal(choice, choice0)     # the wide grid chooses differently here
