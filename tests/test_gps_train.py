"""GPS driver: executor map equivalence, checkpoint/resume equivalence, bad input (issue 4)."""
import concurrent.futures
import dataclasses

import numpy as np
import pytest

from lto_ref import gps, gps_train, objectives, stabilise

TINY = gps.Config(iterations=3, inner_iterations=2, samples=5, T=6, H=4, h=2, sstep_steps=40,
                  hidden=8, dynamics_fit=gps.dynamics.Config(pooled=False))


def _data(M=3):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, M)
    return fam, problems, x0


def _same_policy(a, b):
    for (Wa, ba), (Wb, bb) in zip(a.net, b.net):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    np.testing.assert_array_equal(a.var, b.var)


def test_process_pool_map_gives_the_builtin_map_result():
    fam, problems, x0 = _data()
    pol_a, log_a = gps_train.train(fam, problems, x0, TINY, seed=3, progress=False)
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        pol_b, log_b = gps_train.train(fam, problems, x0, TINY, seed=3, map_fn=pool.map,
                                       progress=False)
    _same_policy(pol_a, pol_b)
    np.testing.assert_array_equal(log_a.controller_cost, log_b.controller_cost)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [0, 1])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, kill_after):
    fam, problems, x0 = _data()
    full, full_log = gps_train.train(fam, problems, x0, TINY, seed=5, progress=False)

    def kill(i, row):
        if i == kill_after:
            raise _Killed
    with pytest.raises(_Killed):
        gps_train.train(fam, problems, x0, TINY, seed=5, checkpoint_dir=tmp_path,
                        progress=False, callback=kill)
    done = []
    resumed, log = gps_train.train(fam, problems, x0, TINY, seed=5, checkpoint_dir=tmp_path,
                                   progress=False, callback=lambda i, row: done.append(i))
    assert done == list(range(kill_after + 1, 3))     # only the missing iterations ran
    _same_policy(full, resumed)
    np.testing.assert_array_equal(log.controller_cost, full_log.controller_cost)
    assert log.kl.shape == (3, 3)


def test_stabilise_option_is_the_projection_of_the_plain_result(tmp_path):
    """Config(stabilise=True) returns stabilise.stabilise of the policy GPS ends with, also
    when the run is resumed from a finished checkpoint (the projection is repeated)."""
    fam, problems, x0 = _data()
    cfg = dataclasses.replace(TINY, stabilise=True)
    plain, log_plain = gps_train.train(fam, problems, x0, TINY, seed=2, progress=False)
    expected, info = stabilise.stabilise(plain, fam, problems, x0, H=TINY.H, h=TINY.h, T=TINY.T)
    assert info["nit"] > 0                           # the projection changes this policy
    pol, log = gps_train.train(fam, problems, x0, cfg, seed=2, progress=False,
                               checkpoint_dir=str(tmp_path))
    _same_policy(pol, expected)
    np.testing.assert_array_equal(log.policy_cost, log_plain.policy_cost)
    again, _ = gps_train.train(fam, problems, x0, cfg, seed=2, progress=False,
                               checkpoint_dir=str(tmp_path))
    _same_policy(again, expected)
    with pytest.raises(ValueError, match="symmetric=True"):
        gps_train.train(fam, problems, x0, dataclasses.replace(cfg, symmetric=False))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    fam, problems, x0 = _data()
    gps_train.train(fam, problems, x0, TINY, seed=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different run"):
        gps_train.train(fam, problems, x0, TINY, seed=2, checkpoint_dir=tmp_path, progress=False)


def test_progress_goes_to_stderr(capsys):
    fam, problems, x0 = _data()
    gps_train.train(fam, problems, x0, TINY, seed=1)
    err = capsys.readouterr().err
    assert "GPS 3/3" in err and "left" in err


def test_bad_shapes_raise():
    fam, problems, x0 = _data()
    with pytest.raises(ValueError, match="x0"):
        gps_train.train(fam, problems, x0[:, :2], TINY, progress=False)
    with pytest.raises(ValueError, match="problems"):
        gps_train.train(fam, objectives.subset(problems, [0, 1]), x0, TINY, progress=False)


def _shape_of_the_released_log(c, p):
    """SPEC §8.6: decrease, then plateau within ~6 iterations; final/initial controller cost in
    [0.45, 0.75] (released log 0.59); final policy cost within 10% of the controllers'."""
    assert np.all(np.diff(c[:4]) < 0)                       # decreases first
    assert abs(c[-1] - c[6]) < 0.02 * c[0]                  # plateau by iteration 6
    assert 0.45 <= c[-1] / c[0] <= 0.75
    assert abs(p[-1] - c[-1]) <= 0.1 * c[-1]


@pytest.mark.slow
def test_released_initialisation_lowers_the_controllers_cost_by_35_percent():
    """Issue 4's end-to-end criterion, with the released run's initial controllers (truncated
    heavy ball, k_t = K x_0; SPEC §6.3) that its log 23.62 → 14.00 started from. With the default
    k_t = 0 start (25.87 on these functions) a 35 % drop is impossible: no trajectory costs less
    than f(x_0) + 39 f* = 17.21 (README, GPS status)."""
    fam, problems, x0 = _data(10)
    cfg = gps.Config(init_form="truncated", init_offset="x0")
    _, log = gps_train.train(fam, problems, x0, cfg, seed=0, progress=False)
    c = log.controller_cost
    assert c[-1] <= 0.65 * c[0]
    _shape_of_the_released_log(c, log.policy_cost)
