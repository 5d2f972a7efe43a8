"""Block-diagonal GPS over coordinate groups: the exact row of the transition, the blocks'
indexing, a known per-coordinate linear system recovered per group, invariance to permuting a
group's coordinates, one coordinate per group = the dense per-coordinate path, and the separable
cost model."""
import numpy as np
import pytest
from hypothesis import given, settings

from conftest import rng_from, seeds
from lto_ref.gps import coordinates as C, dynamics as D, environment as E, gmm as G

GROUPS = [(0, 4), (4, 8), (8, 12)]       # three groups of four coordinates, P = 12


def test_structure_makes_x_plus_u_exact_and_leaves_the_rest_unknown():
    S, Em = C.structure(5)
    rng = np.random.default_rng(0)
    s, u, rest = rng.standard_normal(5), rng.standard_normal(1), rng.standard_normal(4)
    np.testing.assert_allclose(S @ np.concatenate([s, u]) + Em @ rest,
                               np.concatenate([[s[0] + u[0]], rest]), rtol=1e-15)
    with pytest.raises(ValueError, match="dX"):
        C.structure(1)


@given(seeds)
def test_pick_draws_distinct_coordinates_of_each_group(seed):
    picks = C.pick(rng_from(seed), GROUPS, N=5, K=3)
    assert picks.shape == (3, 5, 3)
    for g, (start, stop) in enumerate(GROUPS):
        assert np.all((picks[g] >= start) & (picks[g] < stop))
        assert all(len(set(row)) == 3 for row in picks[g].tolist())
    with pytest.raises(ValueError, match="K must"):
        C.pick(rng_from(seed), GROUPS, N=5, K=5)


def _runs(rng, N=6, T=5, P=12, dX=4, dO=3):
    return (rng.standard_normal((N, T + 1, P, dX)), rng.standard_normal((N, T, P)),
            rng.standard_normal((N, T, P, dO)), rng.standard_normal((N, T + 1)))


@given(seeds)
def test_blocks_hold_each_picked_coordinates_trajectory(seed):
    rng = rng_from(seed)
    states, actions, obs, fs = _runs(rng)
    picks = C.pick(rng, GROUPS, 6, 2)
    b = C.blocks(states, actions, obs, fs, picks)
    assert b.X.shape == (3, 12, 5, 4) and b.new.shape == (3, 12, 5, 3) and b.U.shape == (3, 12, 5, 1)
    for g in range(3):
        for n in range(6):
            for k in range(2):
                j, row = picks[g, n, k], n * 2 + k
                np.testing.assert_array_equal(b.X[g, row], states[n, :5, j])
                np.testing.assert_array_equal(b.new[g, row], states[n, 1:, j, 1:])
                np.testing.assert_array_equal(b.U[g, row, :, 0], actions[n, :, j])
                np.testing.assert_array_equal(b.O[g, row], obs[n, :, j])
                np.testing.assert_array_equal(b.fs[g, row], fs[n])


def _linear_runs(rng, N=40, T=4, dX=3, noise=0.01):
    """Per-coordinate linear dynamics, one map per group: s' = [x + u; A_k [s; u] + a_k + ε]."""
    A = 0.4 * rng.standard_normal((3, dX - 1, dX + 1))              # states stay of order 1
    a = rng.standard_normal((3, dX - 1))
    states = np.zeros((N, T + 1, 12, dX))
    states[:, 0] = rng.standard_normal((N, 12, dX))
    actions = rng.standard_normal((N, T, 12))
    group = np.repeat(np.arange(3), 4)
    for t in range(T):
        z = np.concatenate([states[:, t], actions[:, t, :, None]], axis=-1)     # (N, P, dX + 1)
        states[:, t + 1, :, 0] = states[:, t, :, 0] + actions[:, t]
        states[:, t + 1, :, 1:] = (np.einsum("pij,npj->npi", A[group], z) + a[group]
                                   + noise * rng.standard_normal((N, 12, dX - 1)))
    return states, actions, A, a


@settings(max_examples=20)
@given(seeds)
def test_known_per_coordinate_linear_dynamics_are_recovered_per_group(seed):
    rng = rng_from(seed)
    states, actions, A, a = _linear_runs(rng, N=100, noise=1e-4)
    b = C.blocks(states, actions, np.zeros(actions.shape + (1,)), np.zeros((100, 5)),
                 C.pick(rng, GROUPS, 100, 4))
    # weak prior and ridge: the fit is then close to least squares on 400 samples per step
    cfg = D.Config(prior=G.Config(pooled=False, strength=1e-3, reg=1e-9), max_samples=1000)
    dyn, _ = D.fit(np.random.default_rng(0), b, C.structure(3), None, cfg)
    S, Em = C.structure(3)
    for g in range(3):
        np.testing.assert_allclose(dyn.Fm[g], np.broadcast_to(S + Em @ A[g], dyn.Fm[g].shape),
                                   rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(dyn.fv[g], np.broadcast_to(Em @ a[g], dyn.fv[g].shape),
                                   rtol=2e-3, atol=2e-3)


@settings(max_examples=5)
@given(seeds)
def test_permuting_a_groups_coordinates_leaves_the_fits_unchanged(seed):
    rng = rng_from(seed)
    states, actions, _, _ = _linear_runs(rng, N=5, noise=0.3)
    obs, fs = np.zeros(actions.shape + (1,)), np.zeros((5, 5))
    picks = np.array([np.tile(np.arange(a, b), (5, 1)) for a, b in GROUPS])   # every coordinate
    orders = [rng.permutation(4) for _ in GROUPS]
    perm = np.concatenate([a + (o if np.any(o != np.arange(4)) else o[::-1])
                           for (a, _), o in zip(GROUPS, orders)])       # never the identity
    prior = G.GMM(rng.standard_normal((2, 6)), np.stack([np.eye(6)] * 2), np.log([0.5, 0.5]))
    fits, Xs = [], []
    for st, ac in ((states, actions), (states[:, :, perm], actions[:, :, perm])):
        b = C.blocks(st, ac, obs, fs, picks)
        S, Em = C.structure(3)
        pts = np.concatenate([b.X[0, :, :-1], b.U[0, :, :-1], b.new[0, :, :-1]], -1)
        fits.append(D.fit_condition((0, b.X[0], b.U[0], b.new[0], pts, prior, 100, None, S, Em,
                                     D.Config())))
        Xs.append(b.X[0])
    assert not np.array_equal(Xs[0], Xs[1])                          # the samples' order moved
    np.testing.assert_array_equal(np.sort(Xs[0], axis=0), np.sort(Xs[1], axis=0))
    for u, v in zip(fits[0][:3], fits[1][:3]):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_one_coordinate_per_group_is_the_dense_per_coordinate_path():
    rng = np.random.default_rng(3)
    states, actions, _, _ = _linear_runs(rng, N=30, noise=0.1)
    obs, fs = rng.standard_normal(actions.shape + (2,)), rng.standard_normal((30, 5))
    singles = [(j, j + 1) for j in range(12)]
    b = C.blocks(states, actions, obs, fs, C.pick(rng, singles, 30, 1))
    dense = E.Samples(X=np.moveaxis(states[:, :4], 2, 0), U=np.moveaxis(actions, 2, 0)[..., None],
                      O=np.moveaxis(obs, 2, 0), fs=np.broadcast_to(fs, (12, 30, 5)),
                      new=np.moveaxis(states[:, 1:, :, 1:], 2, 0),
                      diverged=np.zeros((12, 30), dtype=bool))
    for u, v in zip(b, dense):
        np.testing.assert_array_equal(u, v)
    cfg = D.Config(max_samples=100)
    one, _ = D.fit(np.random.default_rng(0), b, C.structure(3), None, cfg)
    other, _ = D.fit(np.random.default_rng(0), dense, C.structure(3), None, cfg)
    for u, v in zip(one, other):
        np.testing.assert_array_equal(u, v)


@given(seeds)
def test_cost_model_matches_each_samples_expansion_on_average(seed):
    rng = rng_from(seed)
    X = rng.standard_normal((2, 3, 4, 5))
    f, g, h = rng.standard_normal((3, 2, 3, 4))
    cost = C.quadratize(X, f, g, h)
    y = rng.standard_normal((2, 4))                      # a new x-entry, per group and step
    z = np.zeros((2, 4, 6))
    z[..., 0] = y
    model = (0.5 * np.einsum("gti,gtij,gtj->gt", z, cost.Cm, z)
             + np.einsum("gti,gti->gt", z, cost.cv) + cost.cc)
    x = X[..., 0]
    direct = np.mean(f + g * (y[:, None] - x) + 0.5 * h * (y[:, None] - x) ** 2, axis=1)
    np.testing.assert_allclose(model, direct, rtol=1e-12, atol=1e-12)
    assert np.all(cost.Cm[..., 1:, :] == 0) and np.all(cost.cv[..., 1:] == 0)
    with pytest.raises(ValueError, match="f, grad, hdiag"):
        C.quadratize(X, f, g, h[:, :2])


def test_simulate_records_the_picked_coordinates_of_the_run_it_makes():
    """Constant per-group steps u = c_k: the run is known, and every record is checked against
    the features, objective and derivatives recomputed from that run."""
    from lto_ref import autodiff, nets, nn_features
    rng = np.random.default_rng(0)
    net = nets.mlp(3, 2, 2)                                         # groups of 6, 2, 4, 2
    groups = [(start, start + int(np.prod(shape))) for _, start, shape in net.groups]
    inputs, labels = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    x0, T, N = rng.standard_normal(net.dim), 6, 3
    batches = nets.minibatches(rng, 20, 5, T + 1)
    steps = np.concatenate([np.full(b - a, 0.01 * (k + 1)) for k, (a, b) in enumerate(groups)])
    calls = []

    def act(t, s, psi, carry):
        calls.append(t)
        assert s.shape == (N, net.dim, 77) and psi.shape == (N, net.dim, 3)
        return np.broadcast_to(steps, (N, net.dim)).copy(), carry + 1

    picks = C.pick(rng, groups, N, 2)
    runs = C.simulate(net, (inputs, labels), x0, act, 0, batches, picks)
    assert calls == list(range(T))
    xs = x0 + np.arange(T + 1)[:, None] * steps                     # (T + 1, P), every run
    full = lambda z: nets.loss(net, z, inputs, labels)               # noqa: E731
    fhat = np.array([nets.loss(net, xs[t:t + 1], inputs[b], labels[b])[0]
                     for t, b in enumerate(batches)])
    ghat = np.stack([autodiff.value_and_grad(lambda z: nets.loss(net, z, inputs[b], labels[b]),
                                             xs[t:t + 1])[1][0] for t, b in enumerate(batches)])
    phi = nn_features.phi(fhat[:, None], ghat[:, None], xs[:, None])[:, 0]      # (T + 1, P, 77)
    psi = nn_features.psi(fhat[:, None], ghat[:, None], xs[:, None])[:, 0]
    f_true, g_true = autodiff.value_and_grad(full, xs)
    h_true = nets.hessian_diagonal(net, xs, inputs, labels)
    for n in range(N):
        cols = picks[:, n].ravel()
        np.testing.assert_allclose(runs.states[n], phi[:, cols], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(runs.obs[n], psi[:T, cols], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(runs.actions[n], np.broadcast_to(steps[cols], (T, len(cols))))
        np.testing.assert_allclose(runs.fs[n], f_true, rtol=1e-12)
        np.testing.assert_allclose(runs.grad[n], g_true[:T, cols], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(runs.hdiag[n], h_true[:T, cols], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(runs.f_cost[n], f_true, rtol=1e-12)
        np.testing.assert_allclose(runs.gu[n], g_true[:T] @ steps, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(runs.hu[n], h_true[:T] @ steps ** 2, rtol=1e-10, atol=1e-14)
    rows = np.array([3, 7, 8, 15, 19])                   # cost derivatives on a subsample
    sub = C.simulate(net, (inputs, labels), x0, act, 0, batches, picks, cost_rows=rows)
    g_sub = autodiff.value_and_grad(lambda z: nets.loss(net, z, inputs[rows], labels[rows]),
                                    xs)[1]
    h_sub = nets.hessian_diagonal(net, xs, inputs[rows], labels[rows])
    cols = picks[:, 0].ravel()
    np.testing.assert_allclose(sub.fs[0], f_true, rtol=1e-12)
    np.testing.assert_allclose(sub.grad[0], g_sub[:T, cols], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sub.hdiag[0], h_sub[:T, cols], rtol=1e-10, atol=1e-14)
    assert not np.allclose(sub.grad[0], runs.grad[0])
    b = C.run_blocks(runs)
    assert b.X.shape == (4, N * 2, T, 77)
    for g in range(4):
        for n in range(N):
            np.testing.assert_allclose(b.X[g, 2 * n + 1], phi[:T, picks[g, n, 1]], rtol=1e-10,
                                       atol=1e-12)


@given(seeds)
def test_controllers_act_on_each_coordinate_with_their_groups_gains(seed):
    rng = rng_from(seed)
    lg = C.initial_controllers([0.5, 2.0, 1.0], 3, 4, dX=77, var=1e-30)
    s = rng.standard_normal((2, 12, 77))
    u, carry = C.controller_act(lg, GROUPS, [rng, rng])(1, s, None, "kept")
    gamma = np.repeat([0.5, 2.0, 1.0], 4)
    np.testing.assert_allclose(u, -gamma * s[..., C.PHI2_NOW], rtol=1e-12, atol=1e-13)
    assert carry == "kept"
    per_step = rng.uniform(0.1, 3.0, (3, 4))                    # γ per group and step
    lg = C.initial_controllers(per_step, 3, 4, dX=77, var=1e-30)
    for t in range(4):
        u = C.controller_act(lg, GROUPS, [rng, rng])(t, s, None, None)[0]
        np.testing.assert_allclose(u, -np.repeat(per_step[:, t], 4) * s[..., C.PHI2_NOW],
                                   rtol=1e-12, atol=1e-13)
    K = rng.standard_normal((3, 4, 1, 77))
    k, var = rng.standard_normal((3, 4, 1)), rng.uniform(0.1, 1.0, (3, 4, 1, 1))
    lg = C.lingauss.make(K, k, var)
    draws = [np.random.default_rng(7), np.random.default_rng(8)]
    u = C.controller_act(lg, GROUPS, draws)(2, s, None, None)[0]
    xi = np.stack([np.random.default_rng(k).standard_normal(12) for k in (7, 8)])
    group = np.repeat(np.arange(3), 4)
    expected = (np.einsum("npd,pd->np", s, K[group, 2, 0]) + k[group, 2, 0]
                + np.sqrt(var[group, 2, 0, 0]) * xi)
    np.testing.assert_allclose(u, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="rngs"):
        C.controller_act(lg, GROUPS, draws[:1])(2, s, None, None)


def test_phi2_now_is_the_normalised_average_gradient():
    from lto_ref import nn_features
    g = np.array([[[2.0, -3.0]], [[1.0, 1.0]]])                   # (T + 1 = 2, n = 1, P = 2)
    s = nn_features.phi(np.ones((2, 1)), g, np.zeros((2, 1, 2)))
    np.testing.assert_allclose(s[0, 0, :, C.PHI2_NOW], [2 / 3, -3 / 4])           # t = 0
    np.testing.assert_allclose(s[1, 0, :, C.PHI2_NOW], [1.5 / 2.5, -1 / 2])       # ḡ_1 / (|ḡ_1| + 1)


@given(seeds)
def test_step_cost_fits_the_gradient_on_the_state_and_weights_the_steps_left(seed):
    """A group whose gradients are exactly linear in the state: the fit recovers the map, and
    the quadratic in z = [s; u] is (T − t)·scale·[(aᵀs + b) u + ½ κ h̄ u²]."""
    rng = rng_from(seed)
    G, M, T, dX = 2, 40, 6, 5
    X = rng.standard_normal((G, M, T, dX))
    a, b = rng.standard_normal((G, dX)), rng.standard_normal(G)
    grad = np.einsum("gmtd,gd->gmt", X, a) + b[:, None, None]
    h = rng.uniform(0.5, 2.0, (G, M, T))
    kappa = rng.uniform(1.0, 3.0, T)
    q = C.quadratize_steps(X, np.zeros((G, M, T)), grad, h, kappa=kappa, scale=7.0, ridge=1e-12)
    z = rng.standard_normal((G, T, dX + 1))
    got = 0.5 * np.einsum("gti,gtij,gtj->gt", z, q.Cm, z) + np.einsum("gti,gti->gt", z, q.cv)
    s, u = z[..., :dX], z[..., dX]
    w = 7.0 * (T - np.arange(T))
    ghat = np.einsum("gtd,gd->gt", s, a) + b[:, None]
    expected = w * (ghat * u + 0.5 * kappa * h.mean(axis=1) * u ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="f, grad, hdiag"):
        C.quadratize_steps(X, grad[:, :, :-1], grad, h)


@given(seeds)
def test_curvature_ratio_is_the_whole_steps_curvature_over_the_diagonal_model(seed):
    """On f(x) = ½ xᵀ H x with a coupled H, κ_t = uᵀHu / Σ_j H_jj u_j² (pool 0), clipped."""
    rng = rng_from(seed)
    N, T, P = 3, 5, 4
    L = rng.standard_normal((P, P))
    H = L @ L.T + np.eye(P)
    xs = np.cumsum(rng.standard_normal((N, T + 1, P)), axis=1)
    us = np.diff(xs, axis=1)
    f = 0.5 * np.einsum("ntp,pq,ntq->nt", xs, H, xs)
    gu = np.einsum("ntp,pq,ntq->nt", xs[:, :-1], H, us)
    hu = np.einsum("ntp,p->nt", us ** 2, np.diag(H))
    runs = C.Runs(*([None] * 7), f_cost=f, gu=gu, hu=hu)
    kappa = C.curvature_ratio(runs, pool=0, bounds=(1e-9, 1e9))
    expected = (np.einsum("ntp,pq,ntq->t", us, H, us) / hu.sum(axis=0))
    np.testing.assert_allclose(kappa, expected, rtol=1e-8)
    pooled = C.curvature_ratio(runs, pool=1, bounds=(1e-9, 1e9))
    np.testing.assert_allclose(pooled[0], np.einsum("ntp,pq,ntq->", us[:, :2], H, us[:, :2])
                               / hu[:, :2].sum(), rtol=1e-8)
    assert np.all(C.curvature_ratio(runs, pool=0, bounds=(2.0, 2.5)) <= 2.5)


@pytest.mark.parametrize("features", [None, "adagrad"])
def test_controller_optimizer_is_the_controllers_mean_in_a_rollout(features):
    """Random controllers (G, T, 1, 77) run by ``rollout.run_minibatch`` through
    ``controller_optimizer`` give the run ``simulate`` makes with ``controller_act`` and
    vanishing noise, in both forms of the features; a step past T raises."""
    from lto_ref import nets, nn_features, rollout
    import functools
    form = nn_features.PAPER if features is None else nn_features.Features(gradient=features)
    rng = np.random.default_rng(3)
    net = nets.mlp(3, 2, 2)
    groups = [(start, start + int(np.prod(shape))) for _, start, shape in net.groups]
    data = (rng.standard_normal((20, 3)), rng.integers(0, 2, 20))
    x0, T = 0.3 * rng.standard_normal(net.dim), 6
    batches = nets.minibatches(rng, 20, 5, T + 1)
    lg = C.lingauss.make(0.01 * rng.standard_normal((4, T, 1, 77)),
                         0.01 * rng.standard_normal((4, T, 1)), np.full((4, T, 1, 1), 1e-300))
    picks = C.pick(rng, groups, 1, 2)
    runs = C.simulate(net, data, x0, C.controller_act(lg, groups, [rng]), None, batches, picks,
                      features=form)
    opt = C.controller_optimizer(lg, groups, features=form)
    trace = rollout.run_minibatch(opt, functools.partial(nets.minibatch_loss, net, *data),
                                  batches[:T], functools.partial(nets.loss, net, inputs=data[0],
                                                                 labels=data[1]), x0[None])
    np.testing.assert_allclose(trace.fs[:, 0], runs.fs[0], rtol=1e-12)
    cols = picks[:, 0].ravel()
    state, x = opt.init(x0[None]), x0[None]
    for t in range(T):
        f, g = C.autodiff.value_and_grad(
            functools.partial(nets.minibatch_loss, net, *data, batch=batches[t]), x)
        u, state = opt.step(state, x, f, g)
        np.testing.assert_allclose(u[0, cols], runs.actions[0, t], rtol=1e-10, atol=1e-14)
        x = x + u
    with pytest.raises(ValueError, match="end at step"):
        opt.step(state, x, f, g)
    with pytest.raises(ValueError, match="lg must have shape"):
        C.controller_optimizer(lg, groups[:3])


def test_initial_controllers_take_a_variance_per_group_and_step():
    var = np.arange(1.0, 13.0).reshape(3, 4)
    lg = C.initial_controllers(1.0, 3, 4, dX=77, var=var)
    np.testing.assert_array_equal(lg.pol_covar[..., 0, 0], var)
