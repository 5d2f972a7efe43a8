"""Algorithm 1 on a minibatch stream: baselines take their textbook steps on the minibatch
gradients, the true objective is recorded where asked, one full batch is the deterministic run,
blow-ups freeze, tuning picks the best mean true objective."""
import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import autodiff, nets, optimizers as opt, rollout


def _problem(seed, n=2, N=12, B=4, T=5, sizes=(3, 4, 3)):
    rng = rng_from(seed)
    net = nets.mlp(*sizes)
    inputs, labels = rng.standard_normal((N, sizes[0])), rng.integers(0, sizes[-1], N)
    batches = nets.minibatches(rng, N, B, T)

    objective = functools.partial(nets.minibatch_loss, net, inputs, labels)
    return net, objective, functools.partial(nets.loss, net, inputs=inputs, labels=labels), \
        batches, nets.init(rng, net, n, scale=0.5)


def _grad(objective, x, batch):
    return autodiff.value_and_grad(lambda z: objective(z, batch), x)[1]


@settings(max_examples=15)
@given(seeds)
def test_baselines_take_their_textbook_steps_on_the_minibatch_gradients(seed):
    net, objective, full, batches, x0 = _problem(seed)
    g0 = _grad(objective, x0, batches[0])
    x1 = x0 - 0.1 * g0                                                   # any first step is GD's
    g1 = _grad(objective, x1, batches[1])
    expected = {                                                         # x_2 by each formula
        "gd": x1 - 0.1 * g1,
        "momentum": x1 - 0.1 * (0.9 * g0 + g1),
        "conjugate_gradient": x1 + 0.1 * (-g1 + (np.sum(g1 ** 2, 1) / np.sum(g0 ** 2, 1))[:, None]
                                          * -g0),
    }
    for name, x2 in expected.items():
        make = opt.momentum(0.1, 0.9) if name == "momentum" else opt.by_name(name, lr=0.1)
        tr = rollout.run_minibatch(make, objective, batches[:2], full, x0)
        np.testing.assert_allclose(tr.x, x2, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(tr.fhat[1], objective(x1, batches[1]), rtol=1e-12)
    # Adam: the first step moves every coordinate by lr against the sign of g (bias-corrected)
    tr = rollout.run_minibatch(opt.adam(0.01), objective, batches[:1], full, x0)
    np.testing.assert_allclose(tr.x, x0 - 0.01 * g0 / (np.abs(g0) + 1e-8), rtol=1e-10)


@given(seeds, st.integers(1, 4))
def test_true_objective_is_recorded_at_every_kth_step_and_at_the_end(seed, every):
    net, objective, full, batches, x0 = _problem(seed, T=7)
    tr = rollout.run_minibatch(opt.gd(0.2), objective, batches, full, x0, every=every)
    expected_its = sorted(set(range(0, 8, every)) | {7})
    assert tr.its.tolist() == expected_its and tr.fs.shape == (len(expected_its), 2)
    xs = [x0]
    for t in range(7):                                                   # plain GD, by hand
        xs.append(xs[-1] - 0.2 * _grad(objective, xs[-1], batches[t]))
    for k, t in enumerate(expected_its):
        np.testing.assert_allclose(tr.fs[k], full(xs[t]), rtol=1e-12)
    assert tr.fhat.shape == (7, 2)


def test_one_batch_of_every_point_is_the_deterministic_run():
    net, objective, full, _, x0 = _problem(3, N=8)
    batches = np.tile(np.arange(8), (6, 1))
    a = rollout.run_minibatch(opt.lbfgs(0.3), objective, batches, full, x0)
    b = rollout.run(opt.lbfgs(0.3), full, x0, 6)
    np.testing.assert_allclose(a.fs, b.fs, rtol=1e-12)
    np.testing.assert_allclose(a.x, b.xs[-1], rtol=1e-12)


def test_a_blow_up_freezes_its_problem_and_leaves_the_others_alone():
    net, objective, full, batches, x0 = _problem(5, n=3)
    x0 = x0.copy()
    x0[1] *= 1e200                                                       # overflows at once
    tr = rollout.run_minibatch(opt.gd(0.1), objective, batches, full, x0)
    solo = rollout.run_minibatch(opt.gd(0.1), objective, batches, full, x0[[0, 2]])
    assert tr.diverged.tolist() == [False, True, False]
    np.testing.assert_array_equal(tr.x[[0, 2]], solo.x)
    np.testing.assert_array_equal(tr.x[1], x0[1])


@given(st.integers(0, 6), st.integers(1, 7))
def test_stopped_tells_whether_every_shorter_run_diverged(k, T_short):
    """A step that overflows row 1 at step k: stopped = [T, k]; the first T' steps of the run
    are the T'-step run, which diverged iff stopped < T'."""
    net, objective, full, batches, x0 = _problem(4, T=7)

    def step(t, x, f, g):
        dx = -0.1 * g
        if t == k:
            dx[1] = np.inf
        return dx, t + 1
    bomb = opt.Optimizer(init=lambda x: 0, step=step)
    long = rollout.run_minibatch(bomb, objective, batches, full, x0)
    assert long.stopped.tolist() == [7, k] and long.diverged.tolist() == [False, True]
    short = rollout.run_minibatch(bomb, objective, batches[:T_short], full, x0)
    assert short.diverged.tolist() == (long.stopped < T_short).tolist()
    np.testing.assert_array_equal(short.fs, long.fs[:T_short + 1])


def test_tuning_picks_the_lowest_mean_true_objective():
    net, objective, full, batches, x0 = _problem(7, T=6)
    grid = [{"lr": lr} for lr in (1e-4, 0.3, 1e200)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best, table = rollout.tune_minibatch(opt.gd, grid, objective, batches, full, x0, every=2)
    scores = []
    for p in grid:
        tr = rollout.run_minibatch(opt.gd(**p), objective, batches, full, x0, every=2)
        scores.append(np.inf if tr.diverged.any() else tr.fs[1:].mean())
    assert [s for _, s in table] == scores and best == {"lr": 0.3}
    assert np.isinf(scores[2])


def test_tuning_in_a_process_pool_gives_the_same_table():
    import concurrent.futures
    net, objective, full, batches, x0 = _problem(3, T=6)
    grid = rollout.minibatch_grid("momentum")[:6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        serial = rollout.tune_minibatch(opt.momentum, grid, objective, batches, full, x0)
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            pooled = rollout.tune_minibatch(opt.momentum, grid, objective, batches, full, x0,
                                            map_fn=pool.map)
    assert pooled == serial


def test_minibatch_grids():
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]
    assert [p["lr"] for p in rollout.minibatch_grid("adam")] == lrs
    mom = rollout.minibatch_grid("momentum")
    assert len(mom) == 40 and mom[:4] == [{"lr": 1e-4, "mass": m} for m in (0.5, 0.9, 0.95, 0.99)]
    assert all(p["decay"] == 0.9 for p in rollout.minibatch_grid("rmsprop"))
    with pytest.raises(ValueError, match="name"):
        rollout.minibatch_grid("sgd")


def test_bad_arguments_raise():
    net, objective, full, batches, x0 = _problem(0)
    with pytest.raises(ValueError, match="every"):
        rollout.run_minibatch(opt.gd(0.1), objective, batches, full, x0, every=0)
    with pytest.raises(ValueError, match="x0"):
        rollout.run_minibatch(opt.gd(0.1), objective, batches, full, x0[0])
