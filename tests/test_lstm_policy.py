"""Paper 2's coordinate-wise LSTM policy: each coordinate through its group's LSTM as a plain loop
written here, permutations within a group, the S-step's forward pass against the optimizer's
steps, and the parameter files."""
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import lstm_policy as LP, nets, nn_features

SMALL = LP.Config(hidden=4, init_scale=0.5)
GROUPS = [(0, 3), (3, 5), (5, 9)]            # three groups, P = 9


def _ref_coordinate(cell, out, psis):
    """One coordinate's means over time, the LSTM written out with scalar-free numpy."""
    (W, b), (w, beta) = cell, out
    H = len(b) // 4
    h, c, mus = np.zeros(H), np.zeros(H), []
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    for psi in psis:
        z = np.concatenate([psi, h]) @ W + b
        c = sig(z[H:2 * H]) * c + sig(z[:H]) * np.tanh(z[2 * H:3 * H])
        h = sig(z[3 * H:]) * np.tanh(c)
        mus.append(h @ w[:, 0] + beta[0])
    return np.array(mus)


def _run(policy, groups, fs, gs, xs):
    opt = LP.optimizer(policy, groups)
    state, steps = opt.init(xs[0]), []
    for t in range(len(fs)):
        dx, state = opt.step(state, xs[t], fs[t], gs[t])
        steps.append(dx)
    return np.stack(steps)


def _history(rng, T=5, n=2, P=9):
    return (rng.uniform(0.5, 2.0, (T, n)), rng.standard_normal((T, n, P)),
            rng.standard_normal((T, n, P)))


@settings(max_examples=10)
@given(seeds, st.booleans())
def test_each_coordinate_goes_through_its_groups_lstm(seed, shared):
    rng = rng_from(seed)
    cfg = dataclasses.replace(SMALL, shared=shared)
    policy = LP.init(rng, len(GROUPS), cfg)
    assert len(policy.cells) == (1 if shared else 3)
    fs, gs, xs = _history(rng)
    steps = _run(policy, GROUPS, fs, gs, xs)                               # (T, n, P)
    psis = nn_features.psi(fs, gs, xs)                                     # (T, n, P, 3)
    for k, (start, stop) in enumerate(GROUPS):
        cell, out = policy.cells[0 if shared else k], policy.outs[0 if shared else k]
        for i in range(2):
            for j in range(start, stop):
                np.testing.assert_allclose(steps[:, i, j], _ref_coordinate(cell, out,
                                                                           psis[:, i, j]),
                                           rtol=1e-12, atol=1e-15)


@given(seeds)
def test_permuting_coordinates_within_a_group_permutes_the_steps(seed):
    rng = rng_from(seed)
    policy = LP.init(rng, len(GROUPS), SMALL)
    fs, gs, xs = _history(rng)
    perm = np.concatenate([rng.permutation(np.arange(a, b)) for a, b in GROUPS])
    np.testing.assert_allclose(_run(policy, GROUPS, fs, gs[..., perm], xs[..., perm]),
                               _run(policy, GROUPS, fs, gs, xs)[..., perm], rtol=1e-13,
                               atol=1e-16)


@given(seeds)
def test_means_over_recorded_observations_equal_the_optimizers_steps(seed):
    rng = rng_from(seed)
    policy = LP.init(rng, len(GROUPS), SMALL)
    fs, gs, xs = _history(rng)
    zero = LP.zero_state(xs[0], SMALL.hidden)
    mus = LP.means(policy.cells, policy.outs, GROUPS, nn_features.psi(fs, gs, xs), zero.h, zero.c)
    # the optimizer's step goes through lstm.forward (numpy's tanh), means through lstm.sequence
    np.testing.assert_allclose(mus, _run(policy, GROUPS, fs, gs, xs), rtol=1e-12, atol=1e-15)


def test_ranges_follow_the_nets_groups():
    assert LP.ranges(nets.mlp(2, 3, 2)) == [(0, 6), (6, 9), (9, 15), (15, 17)]


def test_save_load_round_trip_and_malformed_files_refused(tmp_path):
    policy = LP.init(np.random.default_rng(1), 3, SMALL)
    LP.save(tmp_path / "p", policy, seed=1)
    back, meta = LP.load(tmp_path / "p")
    assert meta["seed"] == 1 and meta["hidden"] == 4 and meta["groups"] == 3
    for (W, b), (W2, b2) in zip(policy.cells + policy.outs, back.cells + back.outs):
        np.testing.assert_array_equal(W, W2), np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(back.var, policy.var)
    record = json.loads((tmp_path / "p.json").read_text())
    for bad, word in [(dict(kind="policy"), "not an LSTM policy"), (dict(cells=2), "not an LSTM"),
                      (dict(hidden=5), "shapes")]:
        (tmp_path / "q.json").write_text(json.dumps({**record, **bad}))
        (tmp_path / "q.npz").write_bytes((tmp_path / "p.npz").read_bytes())
        with pytest.raises(ValueError, match=word):
            LP.load(tmp_path / "q")
    for fix in (np.nan, -1.0):
        broken = policy._replace(var=np.array([1e-4, fix, 1e-4]))
        LP.save(tmp_path / "r", broken)
        with pytest.raises(ValueError, match="r.json"):
            LP.load(tmp_path / "r")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="hidden"):
        LP.Config(hidden=0)
    with pytest.raises(ValueError, match="init_var"):
        LP.Config(init_var=0.0)
    with pytest.raises(ValueError, match="n_groups"):
        LP.init(np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="ranges"):
        LP.optimizer(LP.init(np.random.default_rng(0), 2, SMALL), GROUPS)


@given(seeds)
def test_single_precision_steps_agree_with_double_precision(seed):
    rng = rng_from(seed)
    policy = LP.init(rng, len(GROUPS), SMALL)
    fs, gs, xs = _history(rng)
    opts = [LP.optimizer(policy, GROUPS, dtype=d) for d in ("float64", "float32")]
    states = [opt.init(xs[0]) for opt in opts]
    assert states[1].h.dtype == np.float32
    bound = sum(np.abs(w).sum() + np.abs(beta).sum() for w, beta in policy.outs)   # |h| ≤ 1
    for t in range(len(fs)):
        (d64, states[0]), (d32, states[1]) = (opt.step(s, xs[t], fs[t], gs[t])
                                              for opt, s in zip(opts, states))
        assert d32.dtype == np.float64
        np.testing.assert_allclose(d32, d64, rtol=0, atol=1e-5 * bound)
    assert not np.array_equal(d32, d64)
    with pytest.raises(ValueError, match="dtype"):
        LP.optimizer(policy, GROUPS, dtype="float16")
