"""The figure command: --quick end to end, cache, determinism, bad arguments."""
import dataclasses
import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from paper_figures import __main__ as cli
from paper_figures import _claims

KEYS = {"figure", "quick", "config", "plotted", "claims"}


def _have_offline_data():
    from lto_ref import data
    try:
        data.find("mnist"), data.find("tfd")
    except LookupError:
        return False
    return True


# paper 2's figures need data: CI installs the offline sources; elsewhere they are skipped
NAMES = cli.FIGURES if _have_offline_data() else tuple(n for n in cli.FIGURES
                                                        if not n.startswith("paper2"))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert cli.main(["--quick", "--out", str(out), *NAMES]) == 0
    return out


def _finite_numbers(node):
    if isinstance(node, dict):
        return all(_finite_numbers(v) for v in node.values())
    if isinstance(node, list):
        return all(_finite_numbers(v) for v in node)
    return node is not None and np.isfinite(node)


def test_quick_run_writes_every_figure_with_finite_curves(quick_run):
    for name in NAMES:
        for ext in ("png", "pdf", "json"):
            assert os.path.getsize(quick_run / f"{name}.{ext}") > 0
        record = json.loads((quick_run / f"{name}.json").read_text())
        assert KEYS <= set(record) and record["figure"] == name and record["quick"] is True
        if name.startswith("paper2"):        # a diverged run's curve may end: finite otherwise
            plotted = record["plotted"]
            for data_set, flags in plotted["diverged"].items():
                assert all(_finite_numbers(plotted[data_set][m]) for m, v in flags.items()
                           if v == 0), (name, data_set)
        else:
            assert _finite_numbers(record["plotted"]), name
        assert all({"id", "claim", "measured", "reproduced"} <= set(c) for c in record["claims"])
    claims = (quick_run / "CLAIMS.md").read_text()
    for cid in ("LR-1", "RR-4", "NN-3", "SL-2", "2D-3"):
        assert f"| {cid} |" in claims
    if "paper2_fig1" in NAMES:
        for cid in ("P2F1-ACCEPT", "P2F2-L2L", "P2F3-CG-L2L", "P2F4-L2L", "P2F5-LATE-TFD"):
            assert f"| {cid} |" in claims
        record = json.loads((quick_run / "paper2_fig5.json").read_text())
        assert record["plotted"]["iterations"][-1] == 20 and set(record["tests"]) == {
            "tfd", "cifar10", "cifar100"}
        costs = record["plotted"]["gps_policy_cost"]            # the trainer keeps the best
        assert record["plotted"]["gps_kept_iteration"] == int(np.argmin(costs)) + 1


def test_second_run_replots_from_the_cache_with_the_same_numbers(quick_run, capsys):
    before = {n: (quick_run / f"{n}.json").read_text() for n in NAMES}
    assert cli.main(["--quick", "--out", str(quick_run), "trajectories_2d", "sl_vs_rl"]) == 0
    assert capsys.readouterr().err.count("(from cache)") == 2
    for n in ("trajectories_2d", "sl_vs_rl"):
        assert (quick_run / f"{n}.json").read_text() == before[n]


def test_same_seed_same_numbers_after_retraining(quick_run, tmp_path):
    assert cli.main(["--quick", "--out", str(tmp_path), "--retrain", "fig1_logistic"]) == 0
    again = json.loads((tmp_path / "fig1_logistic.json").read_text())
    first = json.loads((quick_run / "fig1_logistic.json").read_text())
    assert again["plotted"] == first["plotted"] and again["claims"] == first["claims"]


@pytest.mark.parametrize("argv, word", [
    (["no_such_figure"], "unknown figure"),
    (["--jobs", "-1"], "--jobs"),
    (["--seed", "-3"], "--seed"),
    (["--frobnicate"], "unrecognized"),
])
def test_bad_arguments_give_one_line_and_exit_code_2(argv, word, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv + ["--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert word in err and "\n" not in err and "Traceback" not in err


def test_unwritable_out_gives_one_line_and_exit_code_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--out", str(blocker / "sub")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and "\n" not in err


@pytest.mark.filterwarnings("ignore:rest-stability projection left")   # a 2-iteration policy
def test_stabilised_policy_is_the_projection_of_the_cached_gps_policy(tmp_path):
    """The figures' rest-stability step is ``stabilise.stabilise`` of the GPS policy, cached
    beside it; a second call reads it back; a finished training leaves no checkpoint."""
    from lto_ref import gps, objectives
    from lto_ref.analysis import stabilise
    from paper_figures import _train
    fam = objectives.logistic_regression()
    train, x0 = objectives.split_data(fam, objectives.TRAIN, 3)
    cfg = gps.Config(iterations=2, inner_iterations=2, samples=5, T=6, H=4, h=2, sstep_steps=40,
                     hidden=8)
    ctx = _train.Context(cache=str(tmp_path), progress=False)
    plain, log = _train.gps_policy(fam, train, x0, cfg, 0, ctx)
    assert not os.path.exists(tmp_path / "checkpoints")            # nor an empty folder
    expected, info = stabilise.stabilise(plain, fam, train, x0, H=4, h=2, T=6)
    assert info["nit"] > 0                                  # the projection changes it
    for _ in range(2):                                      # computed, then from the cache
        pol, log2 = _train.gps_policy(fam, train, x0, cfg, 0, ctx, stabilised=True)
        for (a, b), (c, d) in zip(pol.net, expected.net):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)
        np.testing.assert_array_equal(log2["policy_cost"], log["policy_cost"])


def test_claims_table_reports_failures_with_numbers():
    rows = _claims.sl_vs_rl(5.0, 4.0, 0.11, 0.5, 0.1)
    assert [r["id"] for r in rows] == ["SL-1", "SL-2", "SL-3", "RL-1"]
    assert [r["reproduced"] for r in rows] == [False, True, False, True]
    assert [r["reproduced"] for r in _claims.sl_vs_rl(4.0, 4.0, 0.1, 0.49, 0.11)] == [
        True, False, True, False]
    table = _claims.markdown([("sl_vs_rl", rows)])
    assert "| sl_vs_rl | SL-1 |" in table and "5.000 vs 4.000 | no |" in table
    assert "| SL-3 | supervised does not diverge on its training functions: <= 10% | 11% | no |" \
        in table
    assert "learned optimizer reads" not in table and "Paper 2's learned optimizer reads g.\n" \
        in _claims.markdown([("sl_vs_rl", rows)], "g")


@given(st.integers(1, 8), st.integers(0, 6), st.data())
def test_sl_vs_rl_shares_match_a_plain_loop(T, extra, data):
    from paper_figures import sl_vs_rl
    steps, n = T + extra, data.draw(st.integers(1, 6))
    values = st.one_of(st.floats(0.0, 2.0), st.sampled_from([np.inf, np.nan]))
    fs = np.array(data.draw(st.lists(st.lists(values, min_size=n, max_size=n),
                                     min_size=steps + 1, max_size=steps + 1)))
    flags = [np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
             for _ in range(2)]
    got = sl_vs_rl.shares(fs, flags[0], flags[1], T)
    rising = 0
    for j in range(n):
        window, last = list(fs[:T + 1, j]), fs[-1, j]
        rising += (not np.isfinite(last) or any(np.isnan(v) for v in window)
                   or last > min(window) + sl_vs_rl.RISE)
    assert got == {"rising": rising / n, "diverged_T": np.mean(flags[0]),
                   "diverged_end": np.mean(flags[1])}


def test_readme_claims_table_is_the_committed_results():
    """The README shows what ``paper_figures/results`` holds (``python -m paper_figures.readme``)."""
    from paper_figures import readme
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    results = os.path.join(root, "paper_figures", "results")
    assert readme.update(text, results) == text
    with open(os.path.join(results, "CLAIMS.md"), encoding="utf-8") as fh:
        rows = [line for line in fh if line.startswith("| fig1_logistic |")]
    yes = sum(line.rstrip().endswith("| yes |") for line in rows)
    assert f"| fig1_logistic | {yes} of {len(rows)} |" in readme.table(results)   # one row a figure
    assert "no: LR-1" in readme.table(results)
    with pytest.raises(ValueError, match="claims"):
        readme.update("no markers here", results)


def _paper1_inputs(T, n, learned_final):
    """Mean curves, mean margins, divergence flags and per-function curves of the five methods:
    every baseline at 1 − i/(2T) on every function, the learned optimizer's last value given."""
    names = ("gd", "momentum", "conjugate_gradient", "lbfgs", "learned")
    base = np.repeat((1 - np.arange(T + 1) / (2 * T))[:, None], n, axis=1)
    curves = {k: base.copy() for k in names}
    curves["learned"][-1] = learned_final
    F = {k: v.mean(axis=1) for k, v in curves.items()}
    mov = {k: np.zeros(T + 1) for k in names}
    div = {k: np.zeros(n, bool) for k in names}
    div["learned"] = ~np.isfinite(learned_final) | (learned_final > 1)
    return F, mov, div, curves


def test_lr2_does_not_pass_on_the_zero_margin_at_iteration_0():
    F, mov, div, curves = _paper1_inputs(40, 3, np.full(3, 0.5))
    mov["learned"][1:] = -0.01                     # behind at every iteration ≥ 1; 0 at i = 0
    rows = {r["id"]: r for r in _claims.paper1("logistic_regression", F, mov, div, curves)}
    assert not rows["LR-2"]["reproduced"] and "max -0.0100" in rows["LR-2"]["measured"]
    mov["learned"][5] = 0.02
    rows = {r["id"]: r for r in _claims.paper1("logistic_regression", F, mov, div, curves)}
    assert rows["LR-2"]["reproduced"]


def test_nn2_reports_the_median_margin_and_the_diverged_share():
    final = np.array([0.25, 0.25, 0.25, 1e18])     # one function of four blows up
    F, mov, div, curves = _paper1_inputs(40, 4, final)
    rows = {r["id"]: r for r in _claims.paper1("two_layer_net", F, mov, div, curves)}
    measured = rows["NN-2"]["measured"]
    assert "median margin at 40 0.25" in measured          # 0.5 − 0.25 on three of four
    assert "diverged on 25%" in measured and not rows["NN-2"]["reproduced"]


def test_trajectory_claims_ignore_a_nan_baseline():
    from paper_figures import trajectories_2d
    K, T, n = len(trajectories_2d.METHODS), 20, 4
    k = trajectories_2d.METHODS.index("learned")
    steps = np.ones((K, 1, 1, 1)) * np.arange(T + 1)[None, :, None, None]
    xs = np.broadcast_to(steps * np.array([1.0, 0.0]), (K, T + 1, n, 2)).copy()
    xs[k] *= 2.0                                            # the learned steps twice as far
    fs = np.ones((K, T + 1, n))
    fs[k, -1] = 0.5                                         # and ends lowest
    xs[0, :, 0] = np.nan                                    # a baseline breaks on function 0
    fs[0, :, 0] = np.nan
    g0 = np.ones((n, 2))
    ratio, rise_ok, slow_win = trajectories_2d.measure(xs, fs, g0)
    np.testing.assert_allclose(ratio, 2.0)
    assert slow_win.all() and len(slow_win) == n


def test_released_tuning_and_the_step_size_sweep_of_a_paper1_figure(tmp_path):
    """tune="released" tunes by the final objective at GPS's horizon T; the sweep's row at each
    tuned step size is what the figure's own test runs of that baseline show."""
    import functools
    from lto_ref import objectives, optimizers, rollout
    from paper_figures import _paper1, _train, fig2_robust
    with pytest.raises(ValueError, match="tune"):
        dataclasses.replace(fig2_robust.QUICK, tune="best")
    cfg = dataclasses.replace(fig2_robust.QUICK, tune="released")
    ctx = _train.Context(cache=str(tmp_path), progress=False)
    result = _paper1.compute(cfg, ctx)
    meta, a = result["meta"], result["arrays"]
    fam = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(fam, objectives.TRAIN, cfg.n_train)
    objective = functools.partial(fam.loss, problems=train)
    for k, name in enumerate(meta["methods"][:4]):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # grid-edge notices
            best, _ = rollout.tune(functools.partial(optimizers.by_name, name),
                                   rollout.default_grid(name), objective, x0, cfg.gps.T,
                                   criterion="final")
        assert meta["tuned"][name] == best
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            best_ours, _ = rollout.tune(functools.partial(optimizers.by_name, name),
                                        rollout.default_grid(name), objective, x0, cfg.steps)
        assert meta["tuned_meta_loss"][name] == best_ours
        row = meta["sensitivity"][name]
        i = row["lr"].index(best["lr"])
        div = a["diverged"][k].astype(bool)
        assert row["diverged"][i] == pytest.approx(div.mean())
        if not div.all():
            assert row["final_mean"][i] == pytest.approx(a["curves"][k, -1][~div].mean())


def test_pretraining_starts_the_longest_trainings_first():
    from paper_figures import _train, fig1_logistic, fig3_neural_net, sl_vs_rl
    ctx = _train.Context(cache="unused")
    jobs = (fig1_logistic.trainings(fig1_logistic.FULL, ctx)
            + sl_vs_rl.trainings(sl_vs_rl.FULL, ctx)
            + fig3_neural_net.trainings(fig3_neural_net.FULL, ctx) + [("lstm_gps", ctx)])
    ordered = sorted(jobs, key=cli._order)
    assert ordered[0][0] == "lstm_gps" and ordered[1][:3] == ("gps", ctx, "two_layer_net")
    assert ordered[2:] == [j for j in jobs if j[0] != "lstm_gps" and j[2] != "two_layer_net"]


def test_figure_reports_the_gps_iteration_it_uses():
    from paper_figures import _paper1, fig1_logistic, fig3_neural_net
    log = {"controller_cost": np.zeros(3), "select_cost": np.array([3.0, np.inf, 1.5])}
    assert _paper1._iteration(fig3_neural_net.FULL, log) == {"used": 3,
                                                             "select_cost": [3.0, None, 1.5]}
    log["select_cost"] = np.array([2.0, 1.0, 1.0])                 # ties: the first minimum
    assert _paper1._iteration(fig3_neural_net.FULL, log)["used"] == 2
    assert _paper1._iteration(fig1_logistic.FULL, log) == {"used": 3, "select_cost": None}
    assert fig3_neural_net.FULL.gps.select_steps == fig3_neural_net.FULL.steps
    assert fig3_neural_net.QUICK.gps.select_steps == fig3_neural_net.QUICK.steps
    assert fig1_logistic.FULL.gps.select_steps == 0
