"""The benchmark's hand-written gradient is an oracle for autograd's, and the entry point runs."""
import functools

import numpy as np
from hypothesis import given, strategies as st

from lto_ref import benchmark, objectives, rollout


@given(st.integers(0, 10**6), st.floats(0.1, 10.0))
def test_hand_written_logistic_gradient_matches_autograd(seed, scale):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 3, base_seed=seed)
    x = scale * x0
    f, g = benchmark.logistic_value_and_grad_numpy(x, problems)
    f_ag, g_ag = rollout.value_and_grad(functools.partial(fam.loss, problems=problems), x)
    np.testing.assert_allclose(f, f_ag, rtol=1e-12)
    np.testing.assert_allclose(g, g_ag, rtol=1e-9, atol=1e-12)


def test_benchmark_entry_point_prints_ratio_and_throughput(capsys):
    benchmark.main(["--problems", "20", "--repeats", "1", "--steps", "2", "--sl-iterations", "0"])
    out = capsys.readouterr().out
    assert "ratio" in out and all(f"rollout {k}" in out for k in ("gd", "lbfgs", "learned"))


def test_benchmark_gps_option_trains_and_evaluates(capsys, monkeypatch):
    from lto_ref import gps
    tiny = dict(inner_iterations=1, samples=3, T=5, H=3, h=1, sstep_steps=10, hidden=4)
    real = gps.Config
    monkeypatch.setattr(gps, "Config", lambda **kw: real(**{**kw, **tiny}))
    benchmark.main(["--problems", "5", "--repeats", "1", "--steps", "1", "--sl-iterations", "0",
                    "--gps", "2", "--gps-iterations", "1", "--algorithm", "mdgps"])
    out = capsys.readouterr().out
    assert "GPS mdgps, 2 LR functions" in out and "held-out mean f" in out and "momentum" in out
