"""Paper 2's GPS iteration on a tiny net: it runs the whole BADMM pipeline on blocks, moves the
controllers within their trust region's order of magnitude, trains the LSTM, and is
deterministic in its seed."""
import numpy as np
import pytest

from lto_ref import autodiff, lstm_policy, nets, nn_features
from lto_ref.gps import coordinatewise as CW, dynamics, gmm, lstm_sstep

SMALL_GMM = gmm.Config(max_clusters=2, min_samples_per_cluster=5)
CFG = CW.Config(samples=4, coords=2, T=10, batch=5, features=nn_features.PAPER, noise=0.0,
                select_runs=0,                     # the loops below write the paper's forms
                sstep=lstm_sstep.Config(window=5, batch=2, steps=20),
                policy=lstm_policy.Config(hidden=4), policy_prior=SMALL_GMM,
                dynamics_fit=dynamics.Config(max_samples=100, prior=SMALL_GMM))


def _problem():
    rng = np.random.default_rng(0)
    net = nets.mlp(3, 2, 2)                                  # groups of 6, 2, 4, 2 coordinates
    return net, (rng.standard_normal((30, 3)), rng.integers(0, 2, 30)), \
        nets.init(rng, net, 1, scale=0.5)[0]


def test_two_iterations_run_the_pipeline_and_repeat_with_the_seed():
    net, data, x0 = _problem()
    rows = []
    for _ in range(2):
        st = CW.init_state(net, CFG, 0)
        first = st
        for _ in range(2):
            st, row = CW.iteration_step(st, net, data, x0, CFG, seed=3)
        rows.append(row)
    assert st.iteration == 2 and st.policy.var.shape == (4,) and np.all(st.policy.var > 0)
    assert st.lg.K.shape == (4, 10, 1, 77)
    assert not np.allclose(st.lg.K, first.lg.K)                  # the C-steps moved them
    for field in rows[0]._fields:
        if field != "seconds":
            np.testing.assert_array_equal(getattr(rows[0], field), getattr(rows[1], field))
    assert np.isfinite(rows[0].controller_cost) and np.isfinite(rows[0].policy_cost)
    assert np.all(np.isfinite(rows[0].kl)) and rows[0].kl.shape == (4,)


def test_fits_in_blocks_of_groups_equal_one_block():
    """``chunks`` splits the groups' π̄ fits and C-steps over map_fn calls, never the result."""
    import dataclasses
    net, data, x0 = _problem()
    calls, out = [], {}
    for chunks in (1, 3):
        cfg = dataclasses.replace(CFG, chunks=chunks)

        def counting(fn, jobs):
            jobs = list(jobs)
            calls.append((chunks, len(jobs)))
            return map(fn, jobs)
        st, row = CW.iteration_step(CW.init_state(net, cfg, 0), net, data, x0, cfg, seed=3,
                                    map_fn=counting)
        out[chunks] = (st.lg.K, st.lg.k, row.kl, row.policy_cost)
    n_one = calls.count((1, 1))                               # π̄ fits and C-steps, one block
    assert n_one > 0 and calls.count((3, 3)) == n_one and (3, 1) not in calls   # all in 3
    for a, b in zip(out[1], out[3]):
        np.testing.assert_array_equal(a, b)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="coords"):
        CW.Config(coords=0)
    with pytest.raises(ValueError, match="init_gamma"):
        CW.Config(init_gamma=0.0)
    with pytest.raises(ValueError, match="badmm_target"):
        CW.Config(badmm_target="other")


def test_per_run_values_are_blocked_as_the_samples_are():
    """The cost model's derivatives line up with the blocks' samples: actions blocked by
    ``_block`` are the blocks' actions."""
    from lto_ref.gps import coordinates
    rng = np.random.default_rng(2)
    N, T, G, K = 3, 4, 2, 2
    picks = np.stack([np.tile([0, 1], (N, 1)), np.tile([2, 3], (N, 1))])
    runs = coordinates.Runs(states=rng.standard_normal((N, T + 1, G * K, 5)),
                            actions=rng.standard_normal((N, T, G * K)),
                            obs=rng.standard_normal((N, T, G * K, 3)),
                            fs=rng.standard_normal((N, T + 1)), grad=None, hdiag=None,
                            picks=picks)
    np.testing.assert_array_equal(CW._block(runs.actions, picks),
                                  coordinates.run_blocks(runs).U[..., 0])


def test_runs_split_over_chunks_and_a_pool_equal_one_batch():
    """Each run draws its noise from its own stream: slicing the N runs (``sample_chunks``)
    and a process pool's map give the same runs; cost_points draws a subsample of rows."""
    import concurrent.futures
    import dataclasses
    net, data, x0 = _problem()
    st = CW.init_state(net, CFG, 0)
    rngs = lambda: np.random.default_rng(5).spawn(4)                   # noqa: E731
    one, _ = CW.sample(st, net, data, x0, dataclasses.replace(CFG, sample_chunks=1), rngs())
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        three, _ = CW.sample(st, net, data, x0, dataclasses.replace(CFG, sample_chunks=3), rngs(),
                             map_fn=pool.map)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
    assert len(np.unique(one.actions[:, 3, 0])) == 4                # the runs' noises differ
    cfg = dataclasses.replace(CFG, cost_points=10)
    sub, _ = CW.sample(st, net, data, x0, cfg, rngs())
    np.testing.assert_array_equal(sub.fs, one.fs)                   # f on all 30 points
    assert not np.allclose(sub.grad, one.grad)


def test_gamma_tuning_picks_the_step_that_ends_lowest():
    """Against plain loops: each γ's noise-free run of the first controllers (122), its final
    true objective, and the best of them."""
    from lto_ref import nn_features
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    grid = (0.01, 0.3, 3.0)
    best, final = nn_trainer.tune_gamma(net, data, x0, CFG, 4, grid)
    rng = np.random.default_rng(np.random.SeedSequence([4, 2**31 + 1]))
    batches = nets.minibatches(rng, 30, CFG.batch, CFG.T + 1)
    for gamma, got in zip(grid, final):
        x, state = x0[None], nn_features.phi_init(x0[None])
        for t in range(CFG.T):
            b = batches[t]
            f = nets.loss(net, x, data[0][b], data[1][b])
            g = autodiff.value_and_grad(lambda z: nets.loss(net, z, data[0][b], data[1][b]), x)[1]
            s, state = nn_features.phi_step(state, x, f, g)
            x = x - gamma * s[..., 26]
        np.testing.assert_allclose(got, nets.loss(net, x, *data)[0], rtol=1e-10)
    assert best == grid[int(np.argmin(final))]
    with pytest.raises(ValueError, match="grid"):
        nn_trainer.tune_gamma(net, data, x0, CFG, 4, (0.1, -1.0))


def test_fitted_gains_are_the_least_squares_gains_of_the_teachers_steps():
    """Against a plain loop: AdaGrad's noise-free run on tune_gamma's stream, Φ2's newest entry
    from the 3-step averages (113) and (115) written out, one least-squares gain per group and
    step."""
    import dataclasses
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    cfg = dataclasses.replace(CFG, teacher="adagrad", teacher_lr=0.05)
    gains = nn_trainer.fit_gains(net, data, x0, cfg, 4)
    same, rms = nn_trainer.fit_teacher(net, data, x0, cfg, 4)
    np.testing.assert_array_equal(same, gains)
    noisy = nn_trainer.first_controllers(net, data, x0, dataclasses.replace(cfg, noise=0.5), 4)
    np.testing.assert_array_equal(noisy.K[:, :, 0, CW.coordinates.PHI2_NOW], -gains)
    fixed = nn_trainer.first_controllers(net, data, x0, cfg, 4)
    np.testing.assert_array_equal(fixed.pol_covar, np.full_like(fixed.pol_covar, cfg.init_var))
    rng = np.random.default_rng(np.random.SeedSequence([4, 2**31 + 1]))
    batches = nets.minibatches(rng, 30, CFG.batch, CFG.T + 1)
    x, acc, gs = x0.copy(), np.zeros_like(x0), []
    groups = lstm_policy.ranges(net)
    for t in range(CFG.T):
        b = batches[t]
        g = autodiff.value_and_grad(lambda z: nets.loss(net, z, data[0][b], data[1][b]),
                                    x[None])[1][0]
        gs.append(g)
        bar = lambda i: np.mean(gs[max(i - 2, 0):i + 1], axis=0)  # noqa: E731
        phi = bar(t) / (np.abs(bar(max(t - 5, t % 5))) + 1.0)
        acc = acc + g ** 2
        u = -0.05 * g / (np.sqrt(acc) + 1e-10)
        for k, (a, z) in enumerate(groups):
            expected = -np.dot(u[a:z], phi[a:z]) / np.dot(phi[a:z], phi[a:z])
            np.testing.assert_allclose(gains[k, t], expected, rtol=1e-9)
            np.testing.assert_allclose(rms[k, t], np.sqrt(np.mean(u[a:z] ** 2)), rtol=1e-9)
            np.testing.assert_allclose(noisy.pol_covar[k, t, 0, 0],
                                       0.25 * np.mean(u[a:z] ** 2), rtol=1e-9)
        x = x + u
    free = dataclasses.replace(cfg, features=nn_features.SCALE_FREE)
    np.testing.assert_allclose(nn_trainer.fit_gains(net, data, x0, free, 4)[:, 0], 0.05,
                               rtol=1e-9)          # (115a) at t = 0: Φ2's newest entry is g/√S
    with pytest.raises(ValueError, match="teacher"):
        nn_trainer.fit_gains(net, data, x0, dataclasses.replace(CFG, teacher=""), 4)
    with pytest.raises(ValueError, match="teacher"):
        CW.Config(teacher="lbfgs")
    with pytest.raises(ValueError, match="noise"):
        CW.Config(noise=-0.1)
    with pytest.raises(ValueError, match="finite numbers"), np.errstate(all="ignore"):
        nn_trainer.fit_gains(net, data, x0, dataclasses.replace(cfg, teacher_lr=1e308), 4)


def test_training_resumes_from_its_checkpoint_with_the_uninterrupted_result(tmp_path):
    import dataclasses
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    cfg = dataclasses.replace(CFG, iterations=3, gamma_grid=(0.01, 0.1))
    seen = []
    whole, log = nn_trainer.train(net, data, x0, cfg, seed=1,
                                  callback=lambda i, row: seen.append(i))
    assert seen == [0, 1, 2] and log.controller_cost.shape == (3,) and log.kl.shape == (3, 4)

    class Stop(Exception):
        pass

    def interrupt(i, row):
        if i == 1:
            raise Stop
    with pytest.raises(Stop):
        nn_trainer.train(net, data, x0, cfg, seed=1, checkpoint_dir=str(tmp_path),
                         callback=interrupt)
    assert len(list(tmp_path.iterdir())) == 2                        # .npz + .json
    resumed, log2 = nn_trainer.train(net, data, x0, cfg, seed=1, checkpoint_dir=str(tmp_path))
    for a, b in zip(whole.cells + whole.outs, resumed.cells + resumed.outs):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(log.policy_cost, log2.policy_cost)
    assert list(tmp_path.iterdir()) == []                            # removed at the end
    with pytest.raises(ValueError, match="x0"):
        nn_trainer.train(net, data, x0[:-1], cfg)


def test_training_keeps_the_policy_of_its_lowest_logged_cost():
    """Iteration i draws only from (seed, i), so the run cut after the best iteration ends with
    the policy that keep="best" returns from the whole run; keep="last" returns the final one."""
    import dataclasses
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    cfg = dataclasses.replace(CFG, iterations=4, gamma_grid=(0.01, 0.1))
    best, log = nn_trainer.train(net, data, x0, cfg, seed=2)
    last, _ = nn_trainer.train(net, data, x0, dataclasses.replace(cfg, keep="last"), seed=2)
    i = int(np.argmin(log.policy_cost))
    cut, _ = nn_trainer.train(net, data, x0, dataclasses.replace(cfg, iterations=i + 1,
                                                                 keep="last"), seed=2)

    def same(a, b):
        return all(np.array_equal(u, v) for p, q in zip(a.cells + a.outs, b.cells + b.outs)
                   for u, v in zip(p, q))
    assert same(best, cut)
    assert same(last, best) == (i == cfg.iterations - 1)
    with pytest.raises(ValueError, match="keep"):
        dataclasses.replace(cfg, keep="first")


def test_selection_on_fresh_runs_keeps_the_iteration_with_their_lowest_mean_cost():
    """With select_runs, each iteration's policy is scored by the mean Σ_t f of its own runs
    from fresh x⁽⁰⁾ and streams, computed here with the LSTM optimizer in a plain loop, and the
    iteration of the lowest score is the policy returned."""
    import dataclasses
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    cfg = dataclasses.replace(CFG, iterations=3, gamma_grid=(0.01, 0.1), select_runs=2)
    best, log = nn_trainer.train(net, data, x0, cfg, seed=2)
    assert np.all(np.isfinite(log.select_cost))
    i = int(np.argmin(log.select_cost))
    cut, _ = nn_trainer.train(net, data, x0, dataclasses.replace(cfg, iterations=i + 1,
                                                                 keep="last"), seed=2)
    rng = np.random.default_rng(np.random.SeedSequence([2, 2**31 + 2]))
    x0s = 0.1 * rng.standard_normal((2, net.dim))
    total = []
    for x in x0s:
        batches = nets.minibatches(rng, 30, cfg.batch, cfg.T)
        opt = lstm_policy.optimizer(cut, lstm_policy.ranges(net), cfg.sstep.dtype)
        state, z, s = opt.init(x[None]), x[None], 0.0
        for t in range(cfg.T):
            s += nets.loss(net, z, *data)[0]
            b = batches[t]
            f, g = autodiff.value_and_grad(lambda w: nets.loss(net, w, data[0][b], data[1][b]), z)
            u, state = opt.step(state, z, f, g)
            z = z + u
        total.append(s)
    np.testing.assert_allclose(log.select_cost[i], np.mean(total), rtol=1e-9)
    assert nn_trainer.kept_iteration(log.policy_cost, log.select_cost, cfg) == i
    for a, b in zip(best.cells + best.outs, cut.cells + cut.outs):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="select_runs"):
        dataclasses.replace(cfg, select_runs=-1)


def test_the_kept_iteration_follows_the_trainers_rule_on_a_hand_made_log():
    """The lowest selection score when there is one, else the lowest logged cost; non-finite
    never kept; the last with keep="last" or when nothing is finite."""
    import dataclasses
    from lto_ref.gps import nn_trainer
    policy = np.array([140.0, 125.0, np.nan, 130.0])
    select = np.array([139.0, 133.0, 128.0, np.inf])
    chosen = dataclasses.replace(CFG, select_runs=3)
    assert nn_trainer.kept_iteration(policy, select, chosen) == 2
    assert nn_trainer.kept_iteration(policy, select, CFG) == 1
    assert nn_trainer.kept_iteration(policy, select, dataclasses.replace(chosen, keep="last")) == 3
    assert nn_trainer.kept_iteration(policy, np.full(4, np.nan), chosen) == 3


def test_selection_follows_the_fresh_runs_score_not_the_logged_cost(monkeypatch):
    import dataclasses
    from lto_ref.gps import nn_trainer
    net, data, x0 = _problem()
    cfg = dataclasses.replace(CFG, iterations=3, gamma_grid=(0.01, 0.1))
    _, log = nn_trainer.train(net, data, x0, cfg, seed=2)
    want = (int(np.argmin(log.policy_cost)) + 1) % 3        # not the logged cost's choice
    scores = iter([0.0 if k == want else 1.0 + k for k in range(3)])
    monkeypatch.setattr(CW, "select_cost", lambda *args: next(scores))
    best, log2 = nn_trainer.train(net, data, x0, dataclasses.replace(cfg, select_runs=1), seed=2)
    cut, _ = nn_trainer.train(net, data, x0, dataclasses.replace(cfg, iterations=want + 1,
                                                                 keep="last"), seed=2)
    assert int(np.argmin(log2.select_cost)) == want
    for a, b in zip(best.cells + best.outs, cut.cells + cut.outs):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
