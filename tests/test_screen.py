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


def test_imitation_regresses_the_lstm_onto_the_controllers_mean_actions(monkeypatch):
    """The S-step's targets are the first controllers' means −γ_t^k Φ2_now at the recorded states,
    and its observations are Ψ in the design's forms (Ψ2 of the scale-free form lies in [−1, 1])."""
    import dataclasses
    from lto_ref import nets
    from lto_ref.gps import coordinates, coordinatewise, lstm_sstep, nn_trainer
    from paper_figures import _paper2
    rng = np.random.default_rng(0)
    net = nets.mlp(3, 4, 2)
    obj = _paper2.Objective(net, rng.standard_normal((40, 3)), rng.integers(0, 2, 40), "toy", "")
    cfg = dataclasses.replace(coordinatewise.Config(), T=12, batch=8, coords=2,
                              sstep=lstm_sstep.Config(window=4, batch=3))
    design = nn_features.Features(gradient="adagrad")
    seen = {}

    def regress(rng_, policy, O, target, prec, cfg_):
        seen.update(O=O, target=target, prec=prec, steps=cfg_.steps)
        return policy, None, np.zeros(cfg_.steps)
    monkeypatch.setattr(lstm_sstep, "regress", regress)
    blocks = coordinates.run_blocks
    monkeypatch.setattr(coordinates, "run_blocks",
                        lambda runs: seen.setdefault("samples", blocks(runs)))
    screen.imitate(design, cfg, obj, 7, runs=3)
    gains = nn_trainer.fit_gains(net, (obj.inputs, obj.labels), _paper2.start(net, [200])[0],
                                 dataclasses.replace(cfg, features=design, with_phi3=False), 0)
    assert seen["O"].shape == (4, 3 * 2, 12, 3) and seen["steps"] == 7
    assert np.all(np.abs(seen["O"][..., 1]) <= 1.0) and np.all(seen["prec"] == 1.0)
    X = seen["samples"].X                                            # (G, M, T, 52)
    np.testing.assert_allclose(seen["target"], -gains[:, None, :] * X[..., coordinates.PHI2_NOW],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(seen["O"], seen["samples"].O)
    assert not np.allclose(seen["samples"].U[..., 0], seen["target"])   # not the noisy actions
