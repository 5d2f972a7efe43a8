"""L2LBGDBGD (Andrychowicz et al. 2016): LogAndSign, the coordinate-wise optimizer, the truncated
meta-gradient against finite differences of a reference written here, state carried between
unrolls, meta-training, and the parameter files."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from autograd import numpy as anp
from autograd.misc.flatten import flatten
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import l2l, lstm, nets, rollout

TINY = dataclasses.replace(l2l.Config(), layers=(3, 2), unroll=3, T=6, output_scale=0.3,
                           init_scale=0.5, dtype="float64")


# ------------------------------------------------------------------ a reference written here

def _ref_log_and_sign(g, k):
    """The piecewise definition: (log|g|/k, sign g) if |g| ≥ e⁻ᵏ, else (−1, eᵏ g)."""
    big = np.abs(g) >= math.exp(-k)
    with np.errstate(divide="ignore"):
        magnitude = np.where(big, np.log(np.abs(g)) / k, -1.0)
    return np.stack([magnitude, np.where(big, np.sign(g), math.exp(k) * g)], axis=-1)


def _ref_step(params, hs, cs, g, cfg):
    """One optimizer step in plain numpy: the LSTM on every coordinate, read-out × scale."""
    inp, new_h, new_c = _ref_log_and_sign(g, cfg.k).reshape(-1, 2), [], []
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    for (W, b), h, c in zip(params[:-1], hs, cs):
        H = len(b) // 4
        z = np.concatenate([inp, h], axis=1) @ W + b
        c = sig(z[:, H:2 * H]) * c + sig(z[:, :H]) * np.tanh(z[:, 2 * H:3 * H])
        inp = sig(z[:, 3 * H:]) * np.tanh(c)
        new_h.append(inp), new_c.append(c)
    W_out, b_out = params[-1]
    return cfg.output_scale * (inp @ W_out + b_out).reshape(g.shape), new_h, new_c


def _quadratics(rng, P, points=8):
    """Minibatch quadratics f̂(x; batch) = mean_{p ∈ batch} ½ Σ_j a_pj (x_j − c_pj)²."""
    A, C = rng.uniform(0.5, 2.0, (points, P)), rng.standard_normal((points, P))

    def objective(x, batch):
        r = x[:, None, :] - C[batch][None]                             # (n, B, P)
        return 0.5 * anp.mean(anp.sum(A[batch][None] * r ** 2, axis=-1), axis=-1)

    def f_and_g(x, batch):
        r = x[:, None, :] - C[batch][None]
        return (0.5 * np.mean(np.sum(A[batch] * r ** 2, -1), -1),
                np.mean(A[batch] * r, axis=1))
    return objective, f_and_g


def _ref_unroll(params, x, hs, cs, g, batches, f_and_g, cfg, held=None):
    """Σ_{k=1}^{K} f̂_{t+k}(x_{t+k}) averaged over problems; the optimizer reads held[k] if given
    (gradients as constants), else the gradient at the current iterate. Returns the loss, the
    gradients read, and the final x, h, c."""
    total, read = 0.0, []
    for k, batch in enumerate(batches):
        read.append(g if held is None else held[k])
        dx, hs, cs = _ref_step(params, hs, cs, read[-1], cfg)
        x = x + dx
        f, g = f_and_g(x, batch)
        total += f.sum() / len(x)
    return total, read, x, hs, cs


def _central_differences(fun, w, h=1e-5):
    return np.array([(fun(w + h * e) - fun(w - h * e)) / (2 * h) for e in np.eye(len(w))])


def _random_carry(rng, n, P, cfg, f_and_g, batch):
    x = rng.standard_normal((n, P))
    hs = [rng.uniform(-0.5, 0.5, (n * P, m)) for m in cfg.layers]
    cs = [rng.standard_normal((n * P, m)) for m in cfg.layers]
    f, g = f_and_g(x, batch)
    state = l2l.L2LState(lstm=tuple(lstm.LSTMState(h, c) for h, c in zip(hs, cs)))
    return l2l.Carry(x=x, state=state, f=f, g=g), hs, cs


# ------------------------------------------------------------------------------ LogAndSign

@given(seeds, st.sampled_from([1.0, 5.0, 10.0]))
def test_log_and_sign_is_the_piecewise_definition(seed, k):
    rng = rng_from(seed)
    g = rng.choice([-1, 1], 200) * 10.0 ** rng.uniform(-12, 3, 200)
    t = math.exp(-k)
    g = np.r_[g, 0.0, -0.0, t, -t, t * (1 + 1e-9), t * (1 - 1e-9), -t * (1 + 1e-9), -t * (1 - 1e-9)]
    u = l2l.log_and_sign(g, k)
    assert u.shape == g.shape + (2,)
    # eps = 2⁻⁵² inside the log moves log|g|/k by at most eps eᵏ / k ≤ 5e-12 for |g| ≥ e⁻ᵏ
    np.testing.assert_allclose(u, _ref_log_and_sign(g, k), rtol=0, atol=5e-12)
    np.testing.assert_array_equal(u[-8:-6, 0], -1.0)                      # g = ±0
    np.testing.assert_array_equal(u[-8:-6, 1], 0.0)
    np.testing.assert_allclose(u[-6:, 1], [1, -1, 1, 1 - 1e-9, -1, -(1 - 1e-9)], rtol=1e-15)


def test_log_and_sign_on_a_matrix_with_default_k():
    g = np.array([[1.0, -math.e ** 2], [-1e-3, 2e-3]])
    u = l2l.log_and_sign(g)
    np.testing.assert_allclose(u[..., 0], [[0.0, 0.4], [-1.0, -1.0]], atol=1e-14)
    np.testing.assert_allclose(u[..., 1], [[1, -1], [-1e-3 * math.exp(5), 2e-3 * math.exp(5)]],
                               rtol=1e-14)


# ---------------------------------------------------------------------------- the optimizer

@settings(max_examples=10)
@given(seeds, st.integers(1, 3), st.integers(2, 6))
def test_steps_match_the_reference_and_are_coordinatewise(seed, n, P):
    rng = rng_from(seed)
    params = l2l.init(rng, TINY)
    opt = l2l.optimizer(params, TINY)
    gs = rng.standard_normal((4, n, P)) * 10.0 ** rng.uniform(-4, 1, (4, n, P))
    perm = rng.permutation(P)
    s, s_perm = opt.init(gs[0]), opt.init(gs[0])
    hs = [np.zeros((n * P, m)) for m in TINY.layers]
    cs = [np.zeros((n * P, m)) for m in TINY.layers]
    for g in gs:
        dx, s = opt.step(s, None, None, g)
        dx_perm, s_perm = opt.step(s_perm, None, None, g[:, perm])
        dx_ref, hs, cs = _ref_step(params, hs, cs, g, TINY)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-16)
        # not bitwise: a row at another position of the matmul may be rounded differently
        np.testing.assert_allclose(dx_perm, dx[:, perm], rtol=1e-14, atol=1e-17)
    for i in range(n):  # problem i alone
        s_i = opt.init(gs[0, i:i + 1])
        for g in gs:
            dx_i, s_i = opt.step(s_i, None, None, g[i:i + 1])
        np.testing.assert_allclose(dx_i[0], dx[i], rtol=1e-14, atol=1e-17)


def test_fresh_state_and_read_out_scale():
    params = l2l.init(np.random.default_rng(0), TINY)
    opt = l2l.optimizer(params, TINY)
    state = opt.init(np.zeros((2, 5)))
    assert [s.h.shape for s in state.lstm] == [(10, 3), (10, 2)]
    assert all(np.all(s.h == 0) and np.all(s.c == 0) for s in state.lstm)
    zero_out = params[:-1] + [(np.zeros((2, 1)), np.array([1.5]))]
    dx, _ = l2l.optimizer(zero_out, TINY).step(state, None, None, np.ones((2, 5)))
    np.testing.assert_array_equal(dx, 0.3 * 1.5)   # Δx = output_scale · b_out
    with pytest.raises(ValueError, match="params"):
        l2l.optimizer(params[1:], TINY)


@settings(max_examples=5)
@given(seeds)
def test_float32_lstm_agrees_with_float64_to_single_precision(seed):
    rng = rng_from(seed)
    params = l2l.init(rng, TINY)
    single = dataclasses.replace(TINY, dtype="float32")
    opts = [l2l.optimizer(params, c) for c in (TINY, single)]
    gs = rng.standard_normal((4, 2, 5))
    states = [opt.init(gs[0]) for opt in opts]
    assert [s.h.dtype for s in states[1].lstm] == [np.float32] * 2
    for g in gs:
        (dx64, states[0]), (dx32, states[1]) = (opt.step(s, None, None, g)
                                                for opt, s in zip(opts, states))
        assert dx32.dtype == np.float64 and states[1].lstm[0].c.dtype == np.float32
        # |h| ≤ 1, so single-precision rounding is relative to the read-out's largest output
        bound = TINY.output_scale * (np.abs(params[-1][0]).sum() + np.abs(params[-1][1]).sum())
        np.testing.assert_allclose(dx32, dx64, rtol=0, atol=1e-6 * bound)
    assert not np.array_equal(dx32, dx64)          # the single-precision path was taken


# ------------------------------------------------------------------------ the meta-gradient

def _unroll_setup(seed, P, n_batches, n=2):
    """(rng, n, P, objective, f_and_g, θ, batches (n_batches, 3)) of the unroll tests."""
    rng = rng_from(seed)
    objective, f_and_g = _quadratics(rng, P)
    params = l2l.init(rng, TINY)
    return rng, n, P, objective, f_and_g, params, rng.integers(0, 8, (n_batches, 3))


@settings(max_examples=3)
@given(seeds)
def test_meta_gradient_is_that_of_the_loss_with_optimizee_gradients_held_fixed(seed):
    rng, n, P, objective, f_and_g, params, batches = _unroll_setup(seed, 3, TINY.unroll + 1)
    carry, hs, cs = _random_carry(rng, n, P, TINY, f_and_g, batches[0])
    L, grad, end = l2l.unroll_grad(params, carry, objective, batches[1:], TINY)
    L_ref, read, x, hs_end, cs_end = _ref_unroll(params, carry.x, hs, cs, carry.g, batches[1:],
                                                f_and_g, TINY)
    np.testing.assert_allclose(L, L_ref, rtol=1e-12)
    np.testing.assert_allclose(end.x, x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(end.g, f_and_g(x, batches[-1])[1], rtol=1e-12, atol=1e-14)
    for state, h, c in zip(end.state.lstm, hs_end, cs_end):
        np.testing.assert_allclose(state.h, h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state.c, c, rtol=1e-12, atol=1e-14)
    flat, unflatten = flatten(params)
    held = _central_differences(lambda w: _ref_unroll(
        unflatten(w), carry.x, hs, cs, carry.g, batches[1:], f_and_g, TINY, held=read)[0], flat)
    full = _central_differences(lambda w: _ref_unroll(
        unflatten(w), carry.x, hs, cs, carry.g, batches[1:], f_and_g, TINY)[0], flat)
    got = flatten(grad)[0]
    scale = np.abs(held).max()
    np.testing.assert_allclose(got, held, rtol=1e-6, atol=1e-7 * scale)
    # second derivatives are left out: the full derivative is farther by 100 × the FD error
    assert np.abs(got - full).max() > max(100 * np.abs(got - held).max(), 1e-5 * scale)


@settings(max_examples=10)
@given(seeds)
def test_two_unrolls_equal_one_run_of_the_optimizer(seed):
    rng, n, P, objective, _, params, batches = _unroll_setup(seed, 4, 2 * TINY.unroll + 1)
    x0 = rng.standard_normal((n, P))
    carry = l2l.start(x0, objective, batches[0], TINY)
    L1, carry = l2l.unroll(params, carry, objective, batches[1:4], TINY)
    L2, carry = l2l.unroll(params, carry, objective, batches[4:7], TINY)
    opt, none = l2l.optimizer(params, TINY), lambda x: np.zeros(len(x))
    six = rollout.run_minibatch(opt, objective, batches[:6], none, x0)
    seven = rollout.run_minibatch(opt, objective, batches, none, x0)
    np.testing.assert_array_equal(carry.x, six.x)
    np.testing.assert_allclose([L1, L2], [seven.fhat[1:4].sum() / n, seven.fhat[4:7].sum() / n],
                               rtol=1e-13)
    dx, _ = opt.step(carry.state, carry.x, carry.f, carry.g)  # the carried state takes step 7
    np.testing.assert_array_equal(carry.x + dx, seven.x)


# ---------------------------------------------------------------------------- meta-training

def _toy_data(rng, N=64):
    inputs = rng.standard_normal((N, 3))
    return inputs, (inputs @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)


def test_training_lowers_the_meta_loss_and_logs_every_unroll():
    inputs, labels = _toy_data(np.random.default_rng(0))
    net = nets.mlp(3, 4, 2)
    cfg = dataclasses.replace(l2l.Config(), layers=(8,), unroll=5, T=20, batch=16, epochs=30,
                              lr=1e-2)
    rows, inputs_before, labels_before = [], inputs.copy(), labels.copy()
    params, log = l2l.train(net, inputs, labels, cfg, seed=1,
                            callback=lambda i, row: rows.append((i, row)))
    np.testing.assert_array_equal(inputs, inputs_before)  # the data are left as they were
    np.testing.assert_array_equal(labels, labels_before)
    U = cfg.T // cfg.unroll
    assert log.loss.shape == log.grad_norm.shape == log.skipped.shape == (cfg.epochs * U,)
    assert log.epoch_loss.shape == (cfg.epochs,) and not log.skipped.any()
    assert [i for i, _ in rows] == list(range(cfg.epochs * U))
    assert [r.epoch for _, r in rows] == list(np.repeat(np.arange(cfg.epochs), U))
    np.testing.assert_array_equal([r.loss for _, r in rows], log.loss)
    np.testing.assert_allclose(log.epoch_loss, log.loss.reshape(-1, U).sum(1) / cfg.T)
    assert log.epoch_loss[-5:].mean() < log.epoch_loss[:5].mean() - 0.05, log.epoch_loss
    again, _ = l2l.train(net, inputs, labels, cfg, seed=1)
    for (W, b), (W2, b2) in zip(params, again):
        np.testing.assert_array_equal(W, W2), np.testing.assert_array_equal(b, b2)


def test_first_logged_meta_loss_is_that_of_the_fresh_optimizer_on_the_first_run():
    """train's documented seeding: θ from the first spawned stream, run 0 from child 0 of the
    second (x⁽⁰⁾, then T + 1 minibatches); unroll 0 scores f̂_1(x_1) … f̂_K(x_K)."""
    inputs, labels = _toy_data(np.random.default_rng(0))
    net = nets.mlp(3, 4, 2)
    cfg = dataclasses.replace(l2l.Config(), layers=(4,), unroll=3, T=6, batch=8, epochs=1, runs=2)
    _, log = l2l.train(net, inputs, labels, cfg, seed=5)
    rng_params, rng_runs = np.random.default_rng(5).spawn(2)
    rng = rng_runs.spawn(1)[0]
    x0 = nets.init(rng, net, 2, scale=cfg.x0_scale)
    batches = nets.minibatches(rng, len(labels), cfg.batch, cfg.T + 1)
    run = rollout.run_minibatch(l2l.optimizer(l2l.init(rng_params, cfg), cfg),
                                lambda x, b: nets.loss(net, x, inputs[b], labels[b]),
                                batches[:4], lambda x: np.zeros(len(x)), x0)
    # the optimizer's single-precision tanh(c) is numpy's, training's 2σ(2c) − 1: last bits differ
    np.testing.assert_allclose(log.loss[0], run.fhat[1:4].sum() / 2, rtol=1e-10)


def test_non_finite_unrolls_are_skipped_and_logged():
    inputs, labels = _toy_data(np.random.default_rng(0))
    cfg = dataclasses.replace(l2l.Config(), layers=(2,), unroll=2, T=4, batch=8, epochs=2,
                              output_scale=1e300)
    params, log = l2l.train(nets.mlp(3, 4, 2), inputs, labels, cfg)
    assert log.skipped.all() and np.isnan(log.loss).all() and np.isnan(log.epoch_loss).all()
    fresh = l2l.init(np.random.default_rng(0).spawn(2)[0], cfg)
    assert all(np.array_equal(a, b) for p, q in zip(params, fresh) for a, b in zip(p, q))


def test_bad_config_and_data_raise():
    for bad in (dict(T=30), dict(unroll=0), dict(layers=()), dict(layers=(2.5,)), dict(lr=0.0),
                dict(k=-1.0), dict(epochs=True), dict(init_scale=-1.0)):
        with pytest.raises(ValueError, match=next(iter(bad)) if "T" not in bad else "T must"):
            dataclasses.replace(l2l.Config(), **bad)
    inputs, labels = _toy_data(np.random.default_rng(0))
    net = nets.mlp(3, 4, 2)
    with pytest.raises(ValueError, match="inputs"):
        l2l.train(net, inputs[:, :2], labels)
    with pytest.raises(ValueError, match="labels"):
        l2l.train(net, inputs, labels + 1)
    with pytest.raises(ValueError, match="batch"):
        l2l.train(net, inputs[:10], labels[:10])


# ------------------------------------------------------------------------------------ files

def test_save_load_round_trip_and_malformed_files_refused(tmp_path):
    params = l2l.init(np.random.default_rng(3), l2l.Config())
    l2l.save(tmp_path / "opt", params, seed=3, config={"layers": [20, 20]})
    back, meta = l2l.load(tmp_path / "opt")
    assert meta["seed"] == 3 and meta["layers"] == [20, 20] and meta["kind"] == "l2l"
    assert len(back) == 3 and all(np.array_equal(a, b) for p, q in zip(params, back)
                                  for a, b in zip(p, q))
    json_path = tmp_path / "opt.json"
    record = json.loads(json_path.read_text())
    edits = [lambda m: m.update(kind="policy"), lambda m: m.update(layers=[20]),
             lambda m: m.update(layers="20,20"), lambda m: m.update(layers=[20, 0])]
    for edit in edits:
        bad = dict(record)
        edit(bad)
        json_path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=str(json_path)):
            l2l.load(tmp_path / "opt")
    nan_params = params[:-1] + [(np.full((20, 1), np.nan), params[-1][1])]
    l2l.save(tmp_path / "nan", nan_params)
    with pytest.raises(ValueError, match="nan.json"):
        l2l.load(tmp_path / "nan")
    Path(tmp_path / "opt.npz").write_bytes(b"not a zip")
    json_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="opt.npz"):
        l2l.load(tmp_path / "opt")
