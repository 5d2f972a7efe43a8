"""Tests of python -m paper_figures.validate: settings, the table, errors."""
import json

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
