"""Tests of python -m paper_figures.validate: settings, the table, errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from paper_figures import fig3_neural_net, validate


def test_settings_reach_nested_configurations_and_parse_their_values():
    cfg = validate.configure(fig3_neural_net.FULL, ["gps.h=5", "gps.symmetric=false",
                                                    "gps.dynamics_fit.prior.pooled=True",
                                                    "gps.init_grid=wide", "stabilise=true",
                                                    "gps.kl_step=0.5"])
    assert cfg.gps.h == 5 and cfg.gps.symmetric is False and cfg.stabilise is True
    assert cfg.gps.dynamics_fit.prior.pooled is True and cfg.gps.init_grid == "wide"
    assert cfg.gps.kl_step == 0.5
    untouched = fig3_neural_net.FULL
    assert untouched.gps.h == 1 and untouched.gps.dynamics_fit.prior.pooled is False
    assert untouched.gps.init_grid == "released"
    assert cfg.gps.dynamics_fit.prior.pooled_points == untouched.gps.dynamics_fit.prior.pooled_points


@pytest.mark.parametrize("setting, word", [("gps.hh=2", "'hh'"), ("h=2", "'h'"), ("gps", "KEY"),
                                           ("gps.h=0", "gps.h=0"), ("tune=best", "tune")])
def test_bad_settings_raise_naming_the_setting(setting, word):
    with pytest.raises(ValueError, match=word):
        validate.configure(fig3_neural_net.FULL, [setting])


@pytest.mark.parametrize("text, value", [("false", False), ("False", False), ("no", False),
                                         ("off", False), ("0", False), ("true", True),
                                         ("YES", True), ("on", True), ("1", True)])
def test_switches_read_as_booleans(text, value):
    cfg = validate.configure(fig3_neural_net.FULL, [f"gps.symmetric={text}", f"stabilise={text}"])
    assert cfg.gps.symmetric is value and cfg.stabilise is value


@pytest.mark.parametrize("setting, words", [
    ("gps.symmetric=maybe", ["gps.symmetric", "true or false"]),
    ("stabilise=", ["stabilise", "true or false"]),
    ("gps=5", ["gps", "gps.KEY=VALUE", "symmetric"]),
    ("gps.h.x=1", ["gps.h", "single setting"]),
    ("seed=abc", ["seed", "integer"]),
    ("seed=1.5", ["seed", "integer"]),
    ("seed=-1", ["seed", ">= 0"]),
    ("n_train=-4", ["n_train", ">= 1"]),
    ("steps=0", ["steps", ">= 1"]),
    ("n_test=0", ["n_test", ">= 1"]),
    ("family=nosuch", ["family", "logistic_regression"]),
    ("gps.kl_step=abc", ["gps.kl_step", "number"]),
    ("gps.kl_step=nan", ["gps.kl_step", "finite"]),
    ("gps.activation=tanh", ["activation", "softplus"]),
    ("panels=0,x", ["panels", "integer"]),
    ("panels=0,6", ["panels", "0..5"]),
    ("gps.hh=2", ["gps.hh", "gps.symmetric"]),
])
def test_bad_values_are_refused_naming_the_key_and_what_it_takes(setting, words):
    with pytest.raises(ValueError) as err:
        validate.configure(fig3_neural_net.QUICK, [setting])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_values_take_their_fields_types():
    cfg = validate.configure(fig3_neural_net.QUICK, ["gps.kl_step=1", "panels=2,3", "seed=7",
                                                     "gps.dynamics_fit.x0_var_floor=1e-3"])
    assert type(cfg.gps.kl_step) is float and cfg.panels == (2, 3) and type(cfg.seed) is int
    assert cfg.gps.dynamics_fit.x0_var_floor == 1e-3


def test_settings_are_checked_together_whatever_their_order():
    from paper_figures import sl_vs_rl
    for order in (["sl.T=50", "steps=60"], ["steps=60", "sl.T=50"]):
        cfg = validate.configure(sl_vs_rl.QUICK, order)
        assert (cfg.sl.T, cfg.steps) == (50, 60)
    with pytest.raises(ValueError, match="steps"):
        validate.configure(sl_vs_rl.QUICK, ["sl.T=50"])       # beyond the test horizon
    cfg = validate.configure(fig3_neural_net.QUICK, ["gps.h=30", "gps.H=30"])
    assert cfg.gps.h == 30


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "paper_figures.validate", *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("argv, word", [
    (["fig1_logistic", "--quick", "gps.symmetric=maybe"], "gps.symmetric"),
    (["fig1_logistic", "--quick", "gps=5"], "gps"),
    (["fig1_logistic", "--quick", "steps=0"], "steps"),
    (["fig1_logistic", "--quick", "family=nosuch"], "family"),
    (["fig1_logistic", "--quick", "--n", "0"], "--n"),
    (["nosuch", "--quick"], "nosuch"),
    (["fig1_logistic", "--quick", "--n", "2", "--json", "/proc/no/such/v.json"], "--json"),
    (["fig1_logistic", "--quick", "--n", "2", "--json", "."], "--json"),
    (["fig1_logistic", "--quick", "--n", "2", "--cache", "/proc/no/such"], "--cache"),
])
def test_cli_mistakes_are_one_line_exit_2_before_any_work(argv, word, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("the evaluation ran")
    monkeypatch.setattr(validate, "evaluate", no_work)
    monkeypatch.setattr(validate._train, "Context", no_work)
    with pytest.raises(SystemExit) as stop:
        validate.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and word in err, err


def test_cli_module_refuses_a_bad_switch_without_traceback():
    run = _run_cli("fig1_logistic", "--quick", "--n", "2", "gps.symmetric=maybe")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_help_lists_every_figure_with_a_description(capsys):
    with pytest.raises(SystemExit) as stop:
        validate.main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    listing = out[out.index("figures:"):].splitlines()[1:]
    assert [line.split()[0] for line in listing] == list(validate.FIGURES)
    assert all(len(line.split()) > 3 for line in listing)


def test_quick_validation_table(tmp_path, capsys):
    out = tmp_path / "v.json"
    assert validate.main(["fig1_logistic", "--quick", "--n", "4", "gps.hidden=8",
                          "--json", str(out), "--cache", str(tmp_path / "c")]) == 0
    record = json.loads(out.read_text())
    assert record["settings"] == ["gps.hidden=8"] and record["config"]["gps"]["hidden"] == 8
    table = record["table"]
    assert set(table) == {"gd", "momentum", "conjugate_gradient", "lbfgs", "learned"}
    for row in table.values():
        assert 0 <= row["diverged"] <= 1 and 0 <= row["best_mean"] <= 1
    assert sum(row["best_mean"] for row in table.values()) == pytest.approx(1.0)
    assert 0 <= table["learned"]["mov_positive"] <= 1
    assert "learned" in capsys.readouterr().out
    assert list((tmp_path / "c" / "policies").iterdir())          # kept where asked


def test_evaluate_uses_the_validation_functions(tmp_path):
    """The table's gradient-descent row is GD (tuned on the training functions) on split 2."""
    import functools
    from lto_ref import metrics, objectives, optimizers, rollout
    from paper_figures import _protocol, _train, fig1_logistic
    cfg = validate.configure(fig1_logistic.QUICK, ["gps.hidden=8"])
    table = validate.evaluate(cfg, _train.Context(cache=str(tmp_path), progress=False), 5)
    fam = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(fam, objectives.TRAIN, cfg.n_train)
    tuned, _ = _protocol.tune_baselines(fam, train, x0, cfg.steps, names=("gd",))
    val, x0v = objectives.split_data(fam, objectives.VALIDATION, 5)
    tr = rollout.run(optimizers.gd(**tuned["gd"]), functools.partial(fam.loss, problems=val),
                     x0v, cfg.steps)
    div = metrics.diverged(tr, x0v)
    assert table["gd"]["diverged"] == np.mean(div)
    assert table["gd"]["median_final"] == pytest.approx(np.median(np.where(div, np.inf,
                                                                           tr.fs[-1])))


def test_supervised_validation_is_the_plain_learner_on_split_2(tmp_path):
    import functools
    from lto_ref import metrics, objectives, optimizers, rollout
    from paper_figures import _train, sl_vs_rl
    cfg = validate.configure(sl_vs_rl.QUICK, ["sl.T=5", "n_train=3"])
    ctx = _train.Context(cache=str(tmp_path), progress=False)
    table = validate.evaluate_supervised(cfg, ctx, 4)
    fam = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(fam, objectives.TRAIN, 3)
    pol, log = _train.supervised_policy(fam, train, x0, cfg.sl, cfg.seed, ctx)   # cached
    assert table["J_final"] == log["J"][-1]
    val, x0v = objectives.split_data(fam, objectives.VALIDATION, 4)
    for steps, key in ((5, "diverged_T"), (cfg.steps, "diverged_end")):
        tr = rollout.run(optimizers.learned(pol, H=cfg.sl.H),
                         functools.partial(fam.loss, problems=val), x0v, steps)
        assert table["validation"][key] == np.mean(metrics.diverged(tr, x0v))


def test_trajectory_measures_on_validation_functions_match_a_plain_loop(tmp_path):
    import functools
    from lto_ref import objectives, optimizers, rollout
    from paper_figures import _train, trajectories_2d
    cfg = validate.configure(trajectories_2d.QUICK, ["gps.hidden=8"])
    ctx = _train.Context(cache=str(tmp_path), progress=False)
    table = validate.evaluate_2d(cfg, ctx, 8)
    fam = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(fam, objectives.TRAIN, cfg.n_train)
    pol, _ = _train.gps_policy(fam, train, x0, cfg.gps, cfg.seed, ctx)          # cached
    val, x0v = objectives.split_data(fam, objectives.VALIDATION, 8)
    objective = functools.partial(fam.loss, problems=val)
    methods = {n: optimizers.by_name(n, **table["tuned"][n]) for n in table["tuned"]}
    methods["learned"] = optimizers.learned(pol, H=cfg.gps.H)
    with np.errstate(all="ignore"):
        xs = {n: rollout.run(m, objective, x0v, cfg.steps).xs for n, m in methods.items()}
    larger, ratios = 0, []
    for j in range(8):
        mean_step = {n: np.mean([np.linalg.norm(xs[n][t + 1, j] - xs[n][t, j])
                                 for t in range(10)]) for n in xs}
        rivals = [v for n, v in mean_step.items() if n != "learned"]
        larger += all(mean_step["learned"] > v for v in rivals)
        ratios.append(mean_step["learned"] / max(rivals))
    assert table["larger_steps"] == larger / 8
    assert table["median_step_ratio"] == pytest.approx(np.median(ratios), rel=1e-12)
