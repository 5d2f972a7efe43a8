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
