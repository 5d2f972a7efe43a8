"""Paper 2's Figures 1–5: the claims on hand-made curves, and the evaluation grid through a
process pool equals the serial one."""
import concurrent.futures
import json

import numpy as np
import pytest

from paper_figures import _claims, _claims_paper2 as C, _learned

METHODS = list(_learned.METHODS)


def _curves(finals, K=5):
    """(methods, K, 2) runs descending linearly from 2.0 to each method's final value."""
    ramp = np.linspace(0.0, 1.0, K)[:, None]
    return np.stack([np.repeat(2.0 + (f - 2.0) * ramp, 2, axis=1) for f in finals])


def _by_id(rows):
    return {r["id"]: r for r in rows}


def test_auc_and_final_are_the_mean_curve_statistics():
    c = _curves([1.0] * len(METHODS))
    c[2, :, 1] = np.nan                                   # a diverged run: inf mean
    m = C._mean(c)
    np.testing.assert_allclose(C.auc(m)[0], np.mean(np.linspace(2.0, 1.0, 5)))
    assert C.final(m)[0] == 1.0 and np.isinf(C.auc(m)[2])


def test_figure_1_claims_follow_the_curves():
    finals = [0.5, 1.0, 0.9, 1.2, 0.8, 0.7, 1.1, 0.95, 0.6]   # learned lowest, L2L second
    curves = {n: _curves(finals) for n in ("tfd", "cifar10", "cifar100")}
    curves["cifar10"] = _curves([0.75] + finals[1:])          # L2L (0.6) lowest on CIFAR-10
    rows = _by_id(C.figure(1, curves, METHODS))
    assert rows["P2F1-AUC-TFD"]["reproduced"] and not rows["P2F1-AUC-CIFAR-10"]["reproduced"]
    assert "l2l lowest" in rows["P2F1-AUC-CIFAR-10"]["measured"]
    assert rows["P2F1-ACCEPT"]["reproduced"]                    # 2 of 3 lowest, 2 below Adam
    curves["tfd"] = _curves([0.75] + finals[1:])
    assert not _by_id(C.figure(1, curves, METHODS))["P2F1-ACCEPT"]["reproduced"]
    assert not rows["P2F1-RANK"]["reproduced"]                  # same baseline order everywhere
    assert rows["P2F1-L2L"]["reproduced"]       # above learned on TFD, best on the CIFARs
    assert "ranks 1 of 8" in rows["P2F1-L2L"]["measured"]
    curves["cifar100"] = _curves(finals[:-1] + [1.15])         # L2L 7th of 8 on CIFAR-100
    assert not _by_id(C.figure(1, curves, METHODS))["P2F1-L2L"]["reproduced"]


def test_figures_2_to_5_claims_follow_the_curves():
    good = [0.5, 1.0, 0.9, 1.2, 0.8, 0.7, 1.1, 0.95, 2.5]     # L2L diverges (2.5 > 2.0)
    curves = {n: _curves(good) for n in ("tfd", "cifar10", "cifar100")}
    two = _by_id(C.figure(2, curves, METHODS))
    assert all(two[f"P2F2-BEATS-{n}"]["reproduced"] for n in ("TFD", "CIFAR-10", "CIFAR-100"))
    assert two["P2F2-L2L"]["reproduced"]                        # ends above its minimum
    three = _by_id(C.figure(3, curves, METHODS))
    assert not three["P2F3-CG-L2L"]["reproduced"]               # CG does not diverge
    four = _by_id(C.figure(4, curves, METHODS))
    assert four["P2F4-FINAL-TFD"]["reproduced"] and four["P2F4-L2L"]["reproduced"]
    rising = {n: _curves(good, K=9) for n in curves}
    rising["tfd"][0, -1] = 1.9                                  # learned rises at the end
    five = _by_id(C.figure(5, rising, METHODS))
    assert not five["P2F5-LATE-TFD"]["reproduced"] and five["P2F5-LATE-CIFAR-10"]["reproduced"]


@pytest.mark.slow
def test_the_evaluation_grid_through_a_pool_equals_the_serial_grid():
    from lto_ref import data, l2l, lstm_policy, nn_features
    from paper_figures import _paper2
    try:
        data.find("tfd")
    except LookupError:
        pytest.skip("no TFD source (python -m lto_ref.data info)")
    rng = np.random.default_rng(0)
    spec = {"learned": ("learned", (lstm_policy.init(rng, 4, lstm_policy.Config(hidden=4)),
                                    "float32", nn_features.Features(gradient="adagrad"))),
            "adam": ("baseline", {"lr": 0.01}),
            "l2l": ("l2l", (l2l.init(rng), l2l.Config()))}
    jobs = [(_paper2.Problem(data="tfd", steps=6, every=3), None, spec, seed) for seed in (0, 1)]
    serial = list(map(_learned.evaluate, jobs))
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        pooled = list(pool.map(_learned.evaluate, jobs))
    for a, b in zip(serial, pooled):
        for name in spec:
            np.testing.assert_array_equal(a[0][name], b[0][name])
        np.testing.assert_array_equal(a[2], [0, 3, 6])
    assert not np.array_equal(serial[0][0]["adam"], serial[1][0]["adam"])   # seeds differ
    assert serial[0][3][0].startswith("TFD")


def test_digest_follows_every_array_element_setting_and_key():
    import dataclasses
    from lto_ref import l2l
    from paper_figures import _cache

    def spec(w=0.5, lr=0.01, dtype=np.float64, cfg=l2l.Config()):
        return ({"learned": ("learned", ([np.array([[1.0, w]], dtype=dtype)], "float32")),
                 "adam": ("baseline", {"lr": lr}), "l2l": ("l2l", cfg)}, 3)
    base = _cache.digest(spec())
    assert _cache.digest(spec()) == base                     # fresh arrays, same content
    changed = [spec(w=0.25), spec(lr=0.02), spec(dtype=np.float32),
               spec(cfg=dataclasses.replace(l2l.Config(), T=20)),
               ({"learned": spec()[0]["learned"], "adam": spec()[0]["adam"]}, 3)]
    digests = [_cache.digest(v) for v in changed]
    assert base not in digests and len(set(digests)) == len(digests)
    assert _cache.digest((1, 2)) != _cache.digest(((1, 2),))      # nesting counts
    with pytest.raises(ValueError, match="object"):
        _cache.digest({"a": object()})


@pytest.mark.slow
def test_a_figure_read_off_longer_runs_equals_its_own_runs(tmp_path):
    """Figure 2 from Figure 5's runs: the first 6 of 9 steps, curves and divergence flags as a
    6-step run gives them (SGD with lr 1e300 blows up within the first steps; Adam does not); a
    second call reads every run from the cache."""
    from lto_ref import data
    from paper_figures import _paper2, _train
    try:
        data.find("tfd")
    except LookupError:
        pytest.skip("no TFD source (python -m lto_ref.data info)")
    spec = {"adam": ("baseline", {"lr": 0.01}), "gd": ("baseline", {"lr": 1e300})}
    problem = _paper2.Problem(data="tfd", steps=9, every=3)
    jobs = [(problem, None, spec, seed) for seed in (0, 1)]
    calls = []

    def counting_map(fn, items):
        items = list(items)
        calls.append(len(items))
        return map(fn, items)
    ctx = _train.Context(cache=str(tmp_path), map_fn=counting_map, progress=False)
    long = _learned._runs(jobs, ctx)
    again = _learned._runs(jobs, ctx)
    assert calls == [2, 0]
    short_jobs = [((problem.__class__)(data="tfd", steps=6, every=3), None, spec, s)
                  for s in (0, 1)]
    for run, cached, job in zip(long, again, short_jobs):
        curves, diverged, its, source = _learned._prefix(run, 6)
        own = _learned.evaluate(job)
        np.testing.assert_array_equal(its, [0, 3, 6])
        for m in spec:
            np.testing.assert_array_equal(curves[m], own[0][m])
            np.testing.assert_array_equal(cached[0][m], run[0][m])
            assert diverged[m] == (own[1][m] < 6)
        assert diverged["gd"] and not diverged["adam"] and source == own[3]
    with pytest.raises(ValueError, match="steps"):
        _learned._prefix(long[0], 5)


def test_panels_keep_a_positive_log_axis_for_curves_near_zero():
    """Curves from 2.5 down to 0.07 with a 3 × f(x0) top: a linear autoscale put the lower
    limit below 0 and emptied the log-scaled panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from paper_figures import _paper2
    its = np.arange(0, 81) * 10
    curve = 2.5 * np.exp(-its / 200.0) + 0.07                  # (K,)
    methods = ["learned", "gd"]
    result = {"arrays": {"its": its, "tfd_curves": np.stack([curve, curve])[..., None]},
              "meta": {"tests": ["tfd"], "methods": methods,
                       "sources": {"tfd": {"title": "TFD"}}}}
    fig, ax = plt.subplots()
    _paper2.panels([ax], result, "learned")
    low, high = ax.get_ylim()
    assert 0 < low < curve.min() and high == pytest.approx(3 * curve[0])
    assert [h.get_label() for h in ax.get_lines()] == ["learned optimizer", "SGD"]
    plt.close(fig)
    result["meta"]["features"] = "gradients over √Σg² (111a), (115a)"
    fig, ax = plt.subplots()
    _paper2.panels([ax], result, "learned")
    assert [h.get_label() for h in ax.get_lines()] == [
        "learned optimizer (scale-free features)", "SGD"]
    plt.close(fig)
    from lto_ref import nn_features
    result["meta"]["features"] = nn_features.PAPER.describe()
    fig, ax = plt.subplots()
    _paper2.panels([ax], result, "learned")
    assert ax.get_lines()[0].get_label() == "learned optimizer (paper's features)"
    plt.close(fig)


def test_claims_state_the_features_of_paper_2s_figures(tmp_path):
    assert _claims.features(str(tmp_path)) is None
    for name, quick, text in (("fig1_logistic", False, "not paper 2's"), ("paper2_fig3", True,
                              "the quick one"), ("paper2_fig1", False, "the full one")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"quick": quick, "features": text}))
    assert _claims.features(str(tmp_path)) == "the full one"
    assert _claims.features(str(tmp_path), quick=True) == "the quick one"
