"""GPS iterations end to end on tiny problems: finiteness, determinism, purity, both algorithms."""
import numpy as np
import pytest

from lto_ref import gps, objectives

TINY = gps.Config(iterations=2, inner_iterations=2, samples=5, T=6, H=4, h=2, sstep_steps=40,
                  hidden=8)


def _run(cfg, seed=0, M=3):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, M)
    x0_copy = x0.copy()
    state = gps.init_state(fam, problems, x0, cfg, seed)
    rows = []
    for _ in range(cfg.iterations):
        state, row = gps.iteration(state, fam, problems, x0, cfg, seed)
        rows.append(row)
    np.testing.assert_array_equal(x0, x0_copy)
    return state, rows


@pytest.mark.parametrize("algorithm", ["badmm", "mdgps"])
def test_iterations_run_and_log_finite_numbers(algorithm):
    state, rows = _run(gps.Config(**{**TINY.__dict__, "algorithm": algorithm}))
    assert state.iteration == 2 and state.whitened
    for row in rows:
        assert np.isfinite(row.controller_cost) and np.isfinite(row.policy_cost)
        assert row.kl.shape == (3,) and np.all(np.isfinite(row.kl)) and np.all(row.kl >= 0)
        assert np.all((row.step_mult >= 0.01) & (row.step_mult <= 10))
    assert np.all(np.linalg.eigvalsh(state.lg.pol_covar) > 0)
    assert np.all(state.policy.var > 0)


def test_same_seed_same_policy_and_different_seed_differs():
    a, rows_a = _run(TINY, seed=1)
    b, rows_b = _run(TINY, seed=1)
    c, _ = _run(TINY, seed=2)
    for (Wa, ba), (Wb, bb) in zip(a.policy.net, b.policy.net):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert [r.controller_cost for r in rows_a] == [r.controller_cost for r in rows_b]
    assert not np.array_equal(a.policy.net[1][0], c.policy.net[1][0])


@pytest.mark.parametrize("kwargs,arg", [({"algorithm": "ppo"}, "algorithm"), ({"T": 0}, "T"),
                                        ({"kl_step": 0.0}, "kl_step"), ({"samples": -1}, "samples"),
                                        ({"h": 30}, "h")])
def test_bad_config_raises(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        gps.Config(**kwargs)
