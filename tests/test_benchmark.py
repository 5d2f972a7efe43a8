"""The benchmark's hand-written gradient is an oracle for autograd's, and the entry point runs."""
import functools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from lto_ref import autodiff, benchmark, nets, objectives


@given(st.integers(0, 10**6), st.floats(0.1, 10.0))
def test_hand_written_logistic_gradient_matches_autograd(seed, scale):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 3, base_seed=seed)
    x = scale * x0
    f, g = benchmark.logistic_value_and_grad_numpy(x, problems)
    f_ag, g_ag = autodiff.value_and_grad(functools.partial(fam.loss, problems=problems), x)
    np.testing.assert_allclose(f, f_ag, rtol=1e-12)
    np.testing.assert_allclose(g, g_ag, rtol=1e-9, atol=1e-12)


@given(st.integers(0, 10**6), st.integers(1, 3))
def test_hand_written_mlp_gradient_matches_autograd(seed, n):
    rng = np.random.default_rng(seed)
    net = nets.mlp(5, 7, 4)
    x, inputs, labels = rng.standard_normal((n, net.dim)), rng.standard_normal((6, 5)), \
        rng.integers(0, 4, 6)
    f, g = benchmark.mlp_value_and_grad_numpy(net, x, inputs, labels)
    f_ag, g_ag = autodiff.value_and_grad(lambda z: nets.loss(net, z, inputs, labels), x)
    np.testing.assert_allclose(f, f_ag, rtol=1e-12)
    np.testing.assert_allclose(g, g_ag, rtol=1e-9, atol=1e-12)


def test_progress_callback_prints_every_kth_and_the_last_row_with_an_estimate(capsys):
    callback = benchmark.progress("GPS", 5, lambda row: f"cost {row:.1f}", every=2)
    for i in range(5):
        callback(i, 10.0 + i)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["GPS 2/5", "GPS 4/5", "GPS 5/5"]
    assert "cost 11.0" in lines[0] and "cost 14.0" in lines[2]
    assert all("s left)" in line for line in lines) and "about 0 s left" in lines[2]


def test_benchmark_entry_point_prints_ratio_and_throughput(capsys):
    benchmark.main(["--problems", "20", "--repeats", "1", "--steps", "2", "--sl-iterations", "0",
                    "--hessian-points", "30"])
    out = capsys.readouterr().out
    assert "ratio" in out and all(f"rollout {k}" in out for k in ("gd", "lbfgs", "learned"))
    line = next(x for x in out.splitlines() if x.startswith("two-layer-net Hessians at 30"))
    assert float(line.split("max |diff| ")[1].rstrip(")")) < 1e-9


def test_benchmark_gps_option_trains_and_evaluates(capsys, monkeypatch):
    from lto_ref import gps
    tiny = dict(inner_iterations=1, samples=3, T=5, H=3, h=1, sstep_steps=10, hidden=4)
    real = gps.Config
    monkeypatch.setattr(gps, "Config", lambda **kw: real(**{**kw, **tiny}))
    benchmark.main(["--problems", "5", "--repeats", "1", "--steps", "1", "--sl-iterations", "0",
                    "--gps", "2", "--gps-iterations", "1", "--algorithm", "mdgps"])
    out = capsys.readouterr().out
    assert "GPS mdgps, 2 LR functions" in out and "held-out mean f" in out and "momentum" in out


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    options = out[out.index("options:"):].split("\n  -")[1:]
    assert len(options) >= 10
    for option in options:          # "-x, --xx ARG   description" (possibly wrapped)
        assert "  " in option.strip(), option


def test_bad_option_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--repeats", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_gps_log_line_names_the_selection_score_only_when_there_is_one():
    from lto_ref.gps.iteration import LogRow
    row = LogRow(controller_cost=131.4, policy_cost=133.0, kl=np.array([1.0, 3.0]),
                 eta=np.ones(2), step_mult=np.ones(2), nu=np.ones(2), sstep_loss=0.1,
                 diverged=0, seconds=12.0)
    line = benchmark.describe_gps(row)
    assert line.startswith("controllers 131.400, policy 133.000, mean KL 2.00")
    assert "selection" not in line
    assert "policy 133.000 (selection runs 128.500)" in benchmark.describe_gps(
        row._replace(select_cost=128.5))
