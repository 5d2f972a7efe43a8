"""The controller screen: designs parsed into feature forms, and a quick screen whose controllers
are those fitted to AdaGrad."""
import json

import numpy as np
import pytest

from lto_ref import nn_features
from paper_figures import screen


def test_designs_parse_into_feature_forms_and_bad_ones_name_the_item():
    assert screen.parse_design("paper") == nn_features.PAPER
    assert screen.parse_design("gradient=adagrad,psi1=clip") == nn_features.Features(
        gradient="adagrad", psi1="clip")
    with pytest.raises(ValueError, match="'grad=adagrad'"):
        screen.parse_design("grad=adagrad")
    with pytest.raises(ValueError, match="psi3"):
        screen.parse_design("psi3=sideways")


def test_bad_designs_are_one_line_and_exit_2(capsys):
    assert screen.main(["gradient=rms", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gradient" in err
    assert screen.main(["paper", "--quick", "--train", "--set", "nois=0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'nois'" in err


@pytest.mark.slow
def test_a_quick_screen_runs_the_fitted_controllers_against_adagrad(tmp_path, capsys):
    out = tmp_path / "screen.json"
    assert screen.main(["paper", "gradient=adagrad", "--quick", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.count("\n") >= 5 and "controllers gradient=adagrad" in table
    record = json.loads(out.read_text())
    assert len(record["results"]) == len(screen.SETTINGS)
    for res in record["results"]:
        auc, final = (np.array(v) for v in res["controllers gradient=adagrad"])
        assert np.all(np.isfinite(auc)) and np.all(np.isfinite(final))
        assert set(res) == {"controllers paper", "controllers gradient=adagrad", "adagrad", "adam"}
