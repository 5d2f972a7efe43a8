"""The LSTM policy's S-step: window starts from the forward pass, windows drawn where they say,
the windowed loss and its gradient against a direct computation and central differences, and a
regression that learns a learnable target."""
import numpy as np
import pytest
from autograd import grad
from autograd.misc.flatten import flatten
from hypothesis import given, settings

from conftest import rng_from, seeds
from lto_ref import lstm, lstm_policy as LP
from lto_ref.gps import lstm_sstep as S

SMALL = LP.Config(hidden=3, init_scale=0.5)


@given(seeds)
def test_start_states_are_the_forward_pass_at_each_window_start(seed):
    rng = rng_from(seed)
    pol = LP.init(rng, 2, SMALL)
    O = rng.standard_normal((2, 3, 12, 3))
    starts = S.start_states(pol, O, 4)
    assert starts.h.shape == (2, 3, 3, 3)
    for g in range(2):
        hs = lstm.sequence(pol.cells[g], np.moveaxis(O[g], 1, 0), lstm.zero_state((3,), 3))
        np.testing.assert_array_equal(starts.h[g, :, 0], 0.0)
        for w in (1, 2):
            np.testing.assert_allclose(starts.h[g, :, w], hs[4 * w - 1], rtol=1e-12, atol=1e-15)


def test_windows_are_drawn_from_their_group_sample_and_start():
    G, M, T, L = 2, 5, 12, 4
    code = np.arange(G * M * T, dtype=float).reshape(G, M, T)          # (g, m, t) as one number
    O = np.stack([code, code, code], axis=-1)
    starts = S.Starts(h=np.zeros((G, M, 3, 1)) + code[:, :, ::L, None],
                      c=np.zeros((G, M, 3, 1)))
    O_w, h0, _, target, prec = S._draw(np.random.default_rng(0), starts, O, code, code,
                                       S.Config(window=L, batch=6))
    assert O_w.shape == (L, G * 6, 3) and target.shape == (L, G * 6)
    g, rest = np.divmod(target[0].astype(int), M * T)
    m, t0 = np.divmod(rest, T)
    assert np.all(g == np.repeat([0, 1], 6)) and np.all(t0 % L == 0)
    np.testing.assert_array_equal(target, target[0] + np.arange(L)[:, None])   # consecutive
    np.testing.assert_array_equal(h0[:, 0], target[0])                 # the state at the start
    np.testing.assert_array_equal(O_w[..., 1], prec)


@settings(max_examples=5)
@given(seeds)
def test_window_loss_and_its_gradient(seed):
    rng = rng_from(seed)
    pol = LP.init(rng, 2, LP.Config(hidden=2, init_scale=0.7))
    L, B = 3, 2
    O_w = rng.standard_normal((L, 2 * B, 3))
    h0, c0 = rng.uniform(-0.5, 0.5, (2, 2 * B, 2))
    target, prec = rng.standard_normal((L, 2 * B)), rng.uniform(0.5, 2.0, (L, 2 * B))
    direct = 0.0
    for g in range(2):
        cols = slice(g * B, (g + 1) * B)
        mu = LP.means([pol.cells[g]], [pol.outs[g]], [(0, B)], O_w[:, None, cols],
                      h0[None, cols], c0[None, cols])[:, 0]
        direct += 0.5 * np.sum(prec[:, cols] * (mu - target[:, cols]) ** 2)
    got = S.window_loss(pol.cells, pol.outs, O_w, h0, c0, target, prec, 2)
    np.testing.assert_allclose(got, direct / (2 * B), rtol=1e-12)
    flat, unflatten = flatten((pol.cells, pol.outs))
    g = grad(lambda p: S.window_loss(*unflatten(p), O_w, h0, c0, target, prec, 2))(flat)
    eps, fd = 1e-6, np.zeros_like(flat)
    for i in range(len(flat)):
        e = np.zeros_like(flat)
        e[i] = eps
        fd[i] = (S.window_loss(*unflatten(flat + e), O_w, h0, c0, target, prec, 2)
                 - S.window_loss(*unflatten(flat - e), O_w, h0, c0, target, prec, 2)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)


def test_regression_learns_a_learnable_target_and_keeps_the_variances():
    rng = np.random.default_rng(0)
    pol = LP.init(rng, 3, LP.Config(hidden=8))
    O = rng.standard_normal((3, 8, 40, 3))
    target = 0.1 * O[..., 1]                           # a step proportional to Ψ2
    cfg = S.Config(window=10, batch=4, steps=300, lr=1e-2, dtype="float64")
    new, _, losses = S.regress(rng, pol, O, target, np.ones((3, 8, 40)), cfg)
    assert losses.shape == (300,) and losses[-20:].mean() < 0.01 * losses[:5].mean()
    np.testing.assert_array_equal(new.var, pol.var)
    single, _, losses32 = S.regress(np.random.default_rng(0).spawn(1)[0], pol, O, target,
                                    np.ones((3, 8, 40)), S.Config(window=10, batch=4, steps=300,
                                                                  lr=1e-2, dtype="float32"))
    again, _, losses64 = S.regress(np.random.default_rng(0).spawn(1)[0], pol, O, target,
                                   np.ones((3, 8, 40)), cfg)
    assert all(W.dtype == np.float64 for W, _ in single.cells)       # θ stays double
    np.testing.assert_allclose(losses32, losses64, rtol=1e-4, atol=1e-9)
    assert not np.array_equal(losses32, losses64)                     # single precision was used
    with pytest.raises(ValueError, match="window"):
        S.regress(rng, pol, O[:, :, :5], target[:, :, :5], np.ones((3, 8, 5)), cfg)
    with pytest.raises(ValueError, match="batch"):
        S.Config(batch=0)
    with pytest.raises(ValueError, match="dtype"):
        S.Config(dtype="float16")


def test_policy_variance_is_the_inverse_weighted_mean_precision_per_group():
    prec = np.stack([np.full((2, 3), 4.0), np.array([[1.0, 3.0, 2.0], [2.0, 2.0, 2.0]])])
    np.testing.assert_allclose(S.policy_variance(prec, np.ones((2, 2, 3))), [0.25, 0.5])
    w = np.stack([np.ones((2, 3)), np.array([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])])
    np.testing.assert_allclose(S.policy_variance(prec, w), [0.25, 4.0 / (3.0 + 3.0)])


def test_ops_give_the_policys_means_at_the_samples_and_an_s_step_per_group():
    from lto_ref.gps import environment, iteration
    rng = np.random.default_rng(1)
    pol = LP.init(rng, 2, LP.Config(hidden=4, init_scale=0.5))
    G, M, T = 2, 3, 8
    O = rng.standard_normal((G, M, T, 3))
    samples = environment.Samples(X=np.zeros((G, M, T, 5)), U=np.zeros((G, M, T, 1)), O=O,
                                  fs=np.zeros((G, M, T + 1)), new=np.zeros((G, M, T, 4)),
                                  diverged=np.zeros((G, M), dtype=bool))
    ops = S.ops(S.Config(window=4, batch=2, steps=5, dtype="float64"))
    mu = ops.mean(pol, samples)
    single = S.ops(S.Config(window=4, batch=2, steps=5, dtype="float32")).mean(pol, samples)
    assert single.dtype == np.float64
    np.testing.assert_allclose(single, mu, rtol=1e-4, atol=1e-6)
    assert mu.shape == (G, M, T, 1)
    for g in range(G):
        for m in range(M):
            ref = LP.means([pol.cells[g]], [pol.outs[g]], [(0, 1)], O[g, m][:, None, None],
                           np.zeros((1, 1, 4)), np.zeros((1, 1, 4)))[:, 0, 0]
            np.testing.assert_allclose(mu[g, m, :, 0], ref, rtol=1e-12, atol=1e-15)
    state = iteration.GPSState(0, None, None, None, None, None, pol, False, None, None, None,
                               None)
    prec = np.stack([np.full((T, 1, 1), 4.0), np.full((T, 1, 1), 0.5)])
    new, whitened, adam, loss = ops.s_step(rng, state, samples, mu, prec, np.ones((G, M, T)))
    np.testing.assert_allclose(new.var, [0.25, 2.0])
    assert whitened and np.isfinite(loss) and loss < 1e-20     # the policy's own means: no loss
