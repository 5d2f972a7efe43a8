"""Tests of the supervised learner's overfitting map: the convergence criterion, the shares, the
cache names, the command end to end, re-plotting from the JSON and its usage errors."""
import hashlib
import importlib
import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lto_ref import objectives, optimizers, supervised
from paper_figures import _sl_map, _sl_map_plot, _train, sl_map


# --- the convergence criterion ----------------------------------------------------------------

def test_plateaued_on_a_hand_made_loss_sequence():
    J = [10.0, 10.0, 10.0, 9.0, 9.0, 9.0, 8.99, 8.99, 8.99]        # chunks of 3: 10, 9, 8.99
    got = [supervised.plateaued(J[:i], 3, 0.01) for i in range(len(J) + 1)]
    # 10 % better after 6 iterations, 0.11 % after 9; nothing between chunk ends or before two
    assert got == [False] * 9 + [True]
    K = [20.0, 10.0, 10.0, 10.0, 10.0, 5.0]       # flat only over the window ending mid-chunk
    assert [supervised.plateaued(K[:i], 2, 0.01) for i in (4, 5, 6)] == [False] * 3
    assert supervised.plateaued(J[:6], 3, 0.2)                     # 10 % < 20 %
    assert not supervised.plateaued(J, 3, 0.001)                  # 0.11 % >= 0.1 %
    assert supervised.plateaued([1.0, 1.0, 2.0, 2.0], 2, 0.0)      # worse counts as converged
    assert not supervised.plateaued([1.0, 1.0, 1.0, 1.0], 2, 0.0)  # exactly no change: 0 < 0 no
    # the mean of the finite values of a chunk; a chunk with none is not a plateau
    assert supervised.plateaued([np.nan, 4.0, 3.99, np.inf], 2, 0.01)
    assert not supervised.plateaued([4.0, 4.0, 2.0, np.inf], 2, 0.01)
    assert not supervised.plateaued([np.nan, 4.0, 2.0, np.nan], 2, 0.01)
    assert not supervised.plateaued([np.nan, np.nan, 1.0, 1.0], 2, 0.01)


@pytest.mark.parametrize("chunk, tol, word", [(0, 0.1, "chunk"), (1.5, 0.1, "chunk"),
                                              (True, 0.1, "chunk"), (2, -0.1, "tol"),
                                              (2, np.nan, "tol"), (2, "0.1", "tol")])
def test_plateaued_refuses_bad_settings(chunk, tol, word):
    with pytest.raises(ValueError, match=word):
        supervised.plateaued([1.0, 1.0], chunk, tol)


def test_descend_stops_at_the_plateau_and_not_without_one():
    J = iter([10.0, 10.0, 10.0, 9.0, 9.0, 9.0, 8.99, 8.99, 8.99] + [8.0] * 100)
    seq = lambda w: (next(J), np.zeros_like(w))  # noqa: E731
    _, log = supervised.descend(seq, np.zeros(3), supervised.Config(iterations=50),
                                plateau=(3, 0.01))
    assert len(log.J) == 9
    _, log = supervised.descend(seq, np.zeros(3), supervised.Config(iterations=50))
    assert len(log.J) == 50


def test_train_passes_the_plateau_on():
    family = objectives.logistic_regression()
    problems, x0 = objectives.split_data(family, objectives.TRAIN, 2)
    cfg = supervised.Config(T=2, iterations=40, hidden=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, log = supervised.train(family, problems, x0, cfg, plateau=(2, 1.0))   # 100 %: at once
    assert len(log.J) == 4
    with pytest.raises(ValueError, match="plateau"):
        supervised.train(family, problems, x0, cfg, plateau=(2,))


def test_supervised_cache_names_are_unchanged_without_a_plateau():
    """The figures' cached supervised policies keep their names; a plateau gives another."""
    family = objectives.logistic_regression()
    _, x0 = objectives.split_data(family, objectives.TRAIN, 3)
    cfg = supervised.Config(T=5)
    record = json.dumps({"kind": "sl", "family": family.name, "x0": np.round(x0, 12).tolist(),
                         "config": {f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                         "seed": 0}, sort_keys=True)
    before = f"sl_logistic_regression_3_{hashlib.sha256(record.encode()).hexdigest()[:10]}"
    assert _train._name("sl", family, x0, cfg, 0) == before
    assert _train._name("sl", family, x0, cfg, 0, plateau=(100, 0.005)) != before


# --- the shares ------------------------------------------------------------------------------

def _plain_shares(family, problems, x0, lr, T):
    """Gradient descent written out function by function, and the shares by their definitions:
    diverged at k (docs/method.md (92)): f_k not finite, f_k > f_0 or ‖x_k‖ > 100 (1 + ‖x_0‖);
    rising at k: f_k not finite or more than 1e-3 above min(f_0 … f_T)."""
    out = {label: {"diverged": 0, "rising": 0} for label in ("T", "100", "4T")}
    n = x0.shape[0]
    for j in range(n):
        A, x_star, off = problems.A[j], problems.x_star[j], problems.f_off[j]
        x, fs, xs = x0[j].copy(), [], []
        for _ in range(max(100, 4 * T) + 1):
            fs.append(0.5 * (x - x_star) @ A @ (x - x_star) + off)
            xs.append(x.copy())
            x = x - lr * A @ (x - x_star)
        assert np.all(np.isfinite(fs))
        for label, k in (("T", T), ("100", 100), ("4T", 4 * T)):
            far = np.linalg.norm(xs[k]) > 100 * (1 + np.linalg.norm(x0[j]))
            out[label]["diverged"] += bool(fs[k] > fs[0] or far)
            out[label]["rising"] += bool(fs[k] > min(fs[:T + 1]) + 1e-3)
    return {label: {k: v / n for k, v in row.items()} for label, row in out.items()}


@settings(max_examples=12, deadline=None)
@given(st.floats(1.9, 2.1), st.integers(1, 30), st.integers(0, 2**16))
def test_horizon_shares_match_a_plain_loop(lr, T, seed):
    # eigenvalues 0.1 … 1: GD is stable for lr <= 2, and beyond it grows slowly from where the
    # start puts it, so the functions differ in whether and when they diverge
    family = objectives.quadratic(3, lam_min=0.1, lam_max=1.0)
    problems, x0 = objectives.split_data(family, objectives.TRAIN, 8, base_seed=seed)
    got = _sl_map.horizon_shares(family, problems, x0, optimizers.gd(lr), T)
    want = _plain_shares(family, problems, x0, lr, T)
    assert got == {label: pytest.approx(want[label]) for label in want}


def test_horizon_shares_see_mixed_outcomes():
    """The property above is not vacuous: its range of settings has functions that diverge at
    100 next to ones that do not, and rising ones that have not diverged."""
    family = objectives.quadratic(3, lam_min=0.1, lam_max=1.0)
    problems, x0 = objectives.split_data(family, objectives.TRAIN, 8)
    want = _plain_shares(family, problems, x0, 2.01, 5)
    assert 0 < want["100"]["diverged"] < 1 and want["T"]["rising"] > want["T"]["diverged"]


def test_cells_are_evaluated_on_training_and_validation_functions_never_test(monkeypatch):
    asked, original = [], objectives.split_data

    def split_data(family, split, n, **kw):
        asked.append((split, n))
        return original(family, split, n, **kw)
    monkeypatch.setattr(_sl_map.objectives, "split_data", split_data)
    family = objectives.quadratic(3)
    got = _sl_map._evaluate(family, optimizers.gd(0.5), 3, 4, 5)
    assert asked == [(objectives.TRAIN, 3), (objectives.VALIDATION, 4)]
    assert list(got) == ["train", "validation"]


# --- the grid -------------------------------------------------------------------------------

def test_every_gps_policy_falls_in_a_cell_of_its_row():
    for grid in (sl_map.FULL, sl_map.QUICK):
        for row in grid.rows:
            module = importlib.import_module(f"paper_figures.{row.figure}")
            cfg = module.QUICK if grid.quick else module.FULL
            assert cfg.family == row.family
            assert cfg.n_train in row.n_train and cfg.gps.T in row.T, row
    full = sl_map.cells(sl_map.FULL, [r.family for r in sl_map.FULL.rows])
    assert len(full) == 15 + 5 + 5 and len({c.name for c in full}) == len(full)
    assert all(c.sl == supervised.Config(T=c.sl.T, iterations=2000) for c in full)


def test_a_cell_refuses_a_bad_plateau():
    with pytest.raises(ValueError, match="plateau"):
        _sl_map.Cell("logistic_regression", 3, supervised.Config(), plateau=(100,))
    with pytest.raises(ValueError, match="tol"):
        _sl_map.Cell("logistic_regression", 3, supervised.Config(), plateau=(100, -1.0))


# --- the figure from the JSON ---------------------------------------------------------------

def _shares(train, validation):
    """Shares of a made-up cell: the validation share is halved at T and 0.1 larger at 4T."""
    at = {"T": validation / 2, "100": validation, "4T": validation + 0.1}
    return {"train": {h: {"diverged": train, "rising": train} for h in ("T", "100", "4T")},
            "validation": {h: {"diverged": v, "rising": v} for h, v in at.items()}}


def _record():
    cells = [dict(family="logistic_regression", n_train=n, T=T, iterations=100, stopped="cap",
                  **_shares(0.1, 0.1 + 0.2 * k)) for k, (T, n) in
             enumerate((T, n) for T in (10, 40) for n in (1, 90))]
    gps = dict(family="logistic_regression", n_train=90, T=40, **_shares(0.05, 0.35))
    return {"quick": False, "n_val": 100, "criterion": {"chunk": 100, "tol": 0.005,
                                                        "max_iterations": 2000},
            "rows": [{"family": "logistic_regression", "n_train": [1, 90], "T": [10, 40],
                      "figure": "fig1_logistic", "cells": cells, "gps": gps}]}


def test_the_figure_shows_the_gaps_and_gps_where_it_was_trained():
    fig = _sl_map_plot.plot(_record())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert [t.splitlines()[0] for t in texts] == ["+0.00", "+0.20", "+0.40", "+0.60"]
    assert texts[1].splitlines()[1:3] == ["T +0.05  4T +0.30", "train 0.10"]
    assert [("GPS +0.30" in t) for t in texts] == [False, False, False, True]
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image, [[0.0, 0.2], [0.4, 0.6]])


def test_plot_only_redraws_from_the_json_alone(tmp_path):
    (tmp_path / "sl_map.json").write_text(json.dumps(_record()))
    assert sl_map.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sl_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "cache").exists()


# --- the command ----------------------------------------------------------------------------

def _usage(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        sl_map.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["--families", "quadratic"], ["--families", "quadratic", "logistic_regression"]),
    (["--jobs", "0"], ["--jobs", ">= 1"]),
    (["--nosuch"], ["--nosuch"]),
    (["--plot-only"], ["--plot-only", "sl_map.json"]),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, words):
    err = _usage(capsys, argv + ["--out", str(tmp_path)])
    assert all(w in err for w in words), err


def test_a_malformed_json_or_an_unwritable_out_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "sl_map.json").write_text(json.dumps({"rows": [{"family": "x"}]}))
    assert "n_train" in _usage(capsys, ["--plot-only", "--out", str(tmp_path)])
    (tmp_path / "file").write_text("")
    assert "not writable" in _usage(capsys, ["--quick", "--out", str(tmp_path / "file")])


@pytest.mark.slow
def test_quick_end_to_end_then_from_the_cache(tmp_path, capsys):
    out = str(tmp_path)
    assert sl_map.main(["--quick", "--out", out]) == 0
    first = json.loads((tmp_path / "sl_map.json").read_text())
    assert (tmp_path / "sl_map.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["family"] for r in first["rows"]] == [r.family for r in sl_map.QUICK.rows]
    for row, grid_row in zip(first["rows"], sl_map.QUICK.rows):
        assert row["gps"] is None                  # never trained here, and not in this cache
        assert [(c["T"], c["n_train"]) for c in row["cells"]] == [
            (T, n) for T in grid_row.T for n in grid_row.n_train]
        for c in row["cells"]:
            assert 1 <= c["iterations"] <= sl_map.QUICK.sl.iterations
            assert c["at"] == {"T": c["T"], "100": 100, "4T": 4 * c["T"]}
            assert all(0 <= c[s][h][m] <= 1 for s in ("train", "validation")
                       for h in ("T", "100", "4T") for m in ("diverged", "rising"))
    err = capsys.readouterr().err
    assert "left" in err and "warning: fig1_logistic's GPS policy" in err
    policies = os.listdir(tmp_path / "cache" / "policies")
    assert sum(p.startswith("sl_") and p.endswith(".json") for p in policies) == 12  # 6 + logs
    assert sl_map.main(["--quick", "--out", out, "--families", "logistic_regression"]) == 0
    second = json.loads((tmp_path / "sl_map.json").read_text())
    assert second["rows"] == first["rows"][:1] and "(cached)" in capsys.readouterr().err
