"""GPS iterations end to end on tiny problems: finiteness, determinism, purity, both algorithms."""
import dataclasses
import json
import warnings

import numpy as np
import pytest

from lto_ref import gps, objectives, policy
from lto_ref.gps import iteration as it

TINY = gps.Config(iterations=2, inner_iterations=2, samples=5, T=6, H=4, h=2, sstep_steps=40,
                  hidden=8)


def _run(cfg, seed=0, M=3):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, M)
    x0_copy = x0.copy()
    state = it.init_state(fam, problems, x0, cfg, seed)
    rows = []
    for _ in range(cfg.iterations):
        state, row = it.iteration(state, fam, problems, x0, cfg, seed)
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
                                        ({"h": 30}, "h"), ({"chunks": 0}, "chunks"),
                                        ({"sample_on_policy": True}, "sample_on_policy"),
                                        ({"badmm_target": "paper"}, "badmm_target"),
                                        ({"init_form": "exact"}, "init_form"),
                                        ({"init_offset": "one"}, "init_offset")])
def test_bad_config_raises(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        gps.Config(**kwargs)


def _recording_map(calls):
    def map_fn(f, jobs):
        jobs = list(jobs)
        calls.append((f.__name__, len(jobs)))
        return [f(j) for j in jobs]
    return map_fn


@pytest.mark.parametrize("algorithm", ["badmm", "mdgps"])
def test_c_step_blocks_go_through_map_fn_and_do_not_change_the_result(algorithm):
    fam = objectives.logistic_regression()
    M = 5
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, M)
    results = {}
    for chunks in (1, 3):
        cfg = gps.Config(**{**TINY.__dict__, "algorithm": algorithm, "chunks": chunks})
        state, calls = it.init_state(fam, problems, x0, cfg, 0), []
        for _ in range(2):
            state, row = it.iteration(state, fam, problems, x0, cfg, 0,
                                       map_fn=_recording_map(calls))
        c_calls = [n for name, n in calls if name == "c_step_block"]
        assert c_calls and all(n == chunks for n in c_calls)        # every C-step, in blocks
        assert any(name == "fit_block" for name, _ in calls)          # π̄ fits too
        results[chunks] = (state, row)
    (a, ra), (b, rb) = results[1], results[3]
    for fa, fb in zip(a.lg, b.lg):                        # blocks concatenated in order
        np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(ra.eta, rb.eta)
    np.testing.assert_array_equal(ra.kl, rb.kl)
    np.testing.assert_array_equal(a.policy.net[0][0], b.policy.net[0][0])


@pytest.mark.parametrize("on_policy", [False, True])
def test_mdgps_samples_from_the_policy_after_iteration_0_only_when_asked(on_policy):
    cfg = gps.Config(**{**TINY.__dict__, "algorithm": "mdgps", "sample_on_policy": on_policy})
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 3)
    lay = gps.environment.layout(fam.dim, cfg.H, cfg.h)
    state = it.init_state(fam, problems, x0, cfg, 0)
    for _ in range(2):
        draws = it._sample(np.random.default_rng(7), fam, problems, x0, state, cfg, lay)
        noise = np.random.default_rng(7).standard_normal(draws.U.shape)    # the same draws
        from_policy = policy.act(state.policy, draws.O, noise) if state.whitened else None
        from_lg = np.stack([gps.lingauss.act(state.lg, t, draws.X[:, :, t], noise[:, :, t])
                            for t in range(cfg.T)], axis=2)
        expected = from_policy if (on_policy and state.whitened) else from_lg
        np.testing.assert_allclose(draws.U, expected, rtol=1e-12, atol=1e-12)
        state, _ = it.iteration(state, fam, problems, x0, cfg, 0)
    assert state.whitened


def test_config_record_leaves_out_only_how_work_is_split():
    base = gps.config_record(gps.Config())
    assert gps.config_record(gps.Config(chunks=5)) == base and "chunks" not in base
    assert gps.config_record(gps.Config(kl_step=0.3)) != base
    assert base["dynamics_fit"] == dataclasses.asdict(gps.Config().dynamics_fit)   # nested
    assert json.loads(json.dumps(base)) == base


@pytest.mark.parametrize("form", ["code", "derivation"])
def test_unstable_dual_ascent_is_reported_for_the_code_form_only(form):
    """ν0 = 5 puts dual_rate·ν² = 5 > 2 from the first ν update (badmm.dual_gain)."""
    cfg = gps.Config(**{**TINY.__dict__, "nu0": 5.0, "badmm_target": form})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(cfg)
    hits = [w for w in caught if "dual ascent may diverge" in str(w.message)]
    assert bool(hits) == (form == "code")
