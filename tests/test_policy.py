"""Policy network, whitening, linearisation and the learned optimizer."""
import functools
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import random_policy as _random_policy, rng_from, seeds
from lto_ref import features, objectives, optimizers as opt, policy as P, rollout


@given(seeds, st.integers(1, 6), st.integers(1, 4), st.sampled_from(P.ACTIVATIONS))
def test_mean_matches_a_plain_mlp(seed, dO, dU, activation):
    rng = rng_from(seed)
    pol = _random_policy(rng, dO, dU, activation=activation)
    obs = rng.standard_normal((3, dO))
    (W1, b1), (W2, b2) = pol.net
    out = []
    for o in obs:  # per sample, written from docs/method.md §6
        a = (o * pol.scale + pol.shift) @ W1 + b1
        h = np.log1p(np.exp(a)) if activation == "softplus" else np.where(a > 0, a, 0.0)
        out.append(h @ W2 + b2)
    np.testing.assert_allclose(P.mean(pol, obs), out, rtol=1e-12, atol=1e-14)
    assert P.mean(pol, obs[None]).shape == (1, 3, dU)  # broadcasts over leading axes


def test_init_follows_spec():
    pol = P.init(np.random.default_rng(0), 229, 4)
    (W1, b1), (W2, b2) = pol.net
    assert W1.shape == (229, 50) and W2.shape == (50, 4) and pol.activation == "softplus"
    assert np.all(b1 == 0) and np.all(b2 == 0) and np.all(pol.var == 0.01)
    assert 0.008 < W1.std() < 0.012  # N(0, 0.01²), 11,450 draws
    np.testing.assert_array_equal(pol.scale, 1.0)
    np.testing.assert_array_equal(pol.shift, 0.0)


@given(seeds, st.integers(1, 5), st.integers(1, 3))
def test_act_is_mean_plus_scaled_noise(seed, dO, dU):
    rng = rng_from(seed)
    pol = _random_policy(rng, dO, dU)._replace(var=rng.uniform(0.1, 2, dU))
    obs, noise = rng.standard_normal((4, dO)), rng.standard_normal((4, dU))
    np.testing.assert_allclose(P.act(pol, obs, noise), P.mean(pol, obs) + np.sqrt(pol.var) * noise,
                               rtol=1e-13)
    big = P.act(pol, np.zeros((20000, dO)), np.random.default_rng(seed).standard_normal((20000, dU)))
    np.testing.assert_allclose(big.var(0), pol.var, rtol=0.05)  # ≈ 5 standard errors at n = 2e4
    with pytest.raises(ValueError, match="noise"):
        P.act(pol, obs, noise[:, :0])


@given(seeds, st.integers(1, 5), st.integers(1, 3), st.sampled_from(P.ACTIVATIONS))
def test_linearize_matches_central_differences(seed, dO, dU, activation):
    rng = rng_from(seed)
    pol = _random_policy(rng, dO, dU, activation=activation)
    obs = rng.standard_normal((4, dO))
    mu, J = P.linearize(pol, obs)
    np.testing.assert_array_equal(mu, P.mean(pol, obs))
    h = 1e-6
    for j in range(dO):
        e = np.zeros(dO)
        e[j] = h
        fd = (P.mean(pol, obs + e) - P.mean(pol, obs - e)) / (2 * h)
        np.testing.assert_allclose(J[:, :, j], fd, rtol=1e-6, atol=1e-7)


@given(seeds, st.integers(1, 6))
def test_whitening_gives_zero_mean_unit_std_with_floor(seed, dO):
    rng = rng_from(seed)
    obs = rng.standard_normal((50, dO)) * rng.uniform(0.1, 10, dO) + rng.standard_normal(dO)
    obs[:, 0] = 3.0  # a constant dimension: std 0 is floored at 1e-3
    shift, scale = P.fit_whitening(obs)
    white = obs * scale + shift
    np.testing.assert_allclose(white.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(white[:, 1:].std(0), 1, rtol=1e-10)
    assert scale[0] == 1e3
    pol = P.with_whitening(P.init(rng, dO, 2), obs)
    np.testing.assert_array_equal(pol.scale, scale)


def test_bad_policy_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="d_obs"):
        P.init(rng, 0, 2)
    with pytest.raises(ValueError, match="activation"):
        P.init(rng, 3, 2, activation="tanh")
    with pytest.raises(ValueError, match="obs"):
        P.mean(P.init(rng, 3, 2), np.ones((2, 4)))
    with pytest.raises(ValueError, match="obs"):
        P.linearize(P.init(rng, 3, 2), np.ones(3))
    with pytest.raises(ValueError, match="obs"):
        P.fit_whitening(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="policy"):
        opt.learned([(np.ones((3, 2)), np.ones(2))])


# ---------------------------------------------------------------- the learned optimizer

def _lr_batch(n=4, seed=0):
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0, functools.partial(fam.loss, problems=problems)


def _gd_policy(alpha, d, H=25):
    """A ReLU 'policy' computing −α·g_t from the observation: relu(g) − relu(−g) = g."""
    dO = features.obs_dim(d, H)
    off = H + H * d                               # CUR_GRAD's offset in O (docs/method.md (25)–(29))
    W1 = np.zeros((dO, 2 * d))
    W1[off:off + d, :d], W1[off:off + d, d:] = np.eye(d), -np.eye(d)
    W2 = np.vstack([-alpha * np.eye(d), alpha * np.eye(d)])
    return P.Policy([(W1, np.zeros(2 * d)), (W2, np.zeros(d))], np.zeros(dO), np.ones(dO),
                    np.ones(d), "relu")


@given(st.integers(0, 1000), st.floats(1e-3, 2.0))
def test_policy_computing_minus_alpha_g_reproduces_gd_exactly(seed, alpha):
    fam, problems, x0, obj = _lr_batch(seed=seed)
    a = rollout.run(opt.learned(_gd_policy(alpha, fam.dim)), obj, x0, 30)
    b = rollout.run(opt.gd(alpha), obj, x0, 30)
    np.testing.assert_array_equal(a.xs, b.xs)


@given(st.integers(0, 1000), st.integers(1, 20))
def test_zero_output_layer_gives_no_step_and_meta_loss_T_f0(seed, T):
    fam, problems, x0, obj = _lr_batch(seed=seed)
    pol = P.init(np.random.default_rng(seed), features.obs_dim(fam.dim), fam.dim)
    (W1, b1), (W2, b2) = pol.net
    pol = pol._replace(net=[(W1, b1), (np.zeros_like(W2), np.zeros_like(b2))])
    trace = rollout.run(opt.learned(pol), obj, x0, T)
    np.testing.assert_array_equal(trace.xs, np.broadcast_to(x0, trace.xs.shape))
    np.testing.assert_allclose(rollout.meta_loss(trace), T * fam.loss(x0, problems), rtol=1e-13)


@settings(max_examples=20)
@given(st.integers(0, 1000), st.sampled_from(["code", "paper"]))
def test_learned_optimizer_batch_equals_each_problem_alone(seed, variant):
    fam, problems, x0, obj = _lr_batch(n=3, seed=seed)
    H = 5
    pol = _random_policy(np.random.default_rng(seed), features.obs_dim(fam.dim, H, variant),
                         fam.dim, activation="softplus")._replace(scale=np.full(
                             features.obs_dim(fam.dim, H, variant), 0.1))
    o = opt.learned(pol, H=H, variant=variant)
    together = rollout.run(o, obj, x0, 8)
    for i in range(3):
        one = functools.partial(fam.loss, problems=objectives.subset(problems, [i]))
        alone = rollout.run(o, one, x0[i:i + 1], 8)
        np.testing.assert_allclose(together.xs[:, i], alone.xs[:, 0], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- symmetric (reflection-odd) policy

def _symmetric_policy(rng, d, H, variant="code", activation="softplus"):
    dO = features.obs_dim(d, H, variant)
    pol = _random_policy(rng, dO, d, activation=activation)
    return pol._replace(reflect=features.reflection(d, H, variant))


@given(seeds, st.integers(1, 4), st.integers(1, 6), st.sampled_from(["code", "paper"]))
def test_reflection_is_the_observation_of_the_mirrored_problem(seed, d, H, variant):
    rng = rng_from(seed)
    fam = objectives.quadratic(d)
    problems = fam.sample(rng, 3)
    x0 = rng.standard_normal((3, d))
    obj = functools.partial(fam.loss, problems=problems)
    mirrored = lambda x: fam.loss(-x, problems)  # noqa: E731  f̃(x) = f(−x)
    a = rollout.run(opt.momentum(0.3, 0.5), obj, x0, 7)
    b = rollout.run(opt.momentum(0.3, 0.5), mirrored, -x0, 7)
    _, O = features.observe_trace(a.xs, a.fs, a.gs, H, variant)
    _, O_m = features.observe_trace(b.xs, b.fs, b.gs, H, variant)
    np.testing.assert_allclose(O_m, O * features.reflection(d, H, variant), rtol=1e-12, atol=1e-14)


@given(seeds, st.integers(1, 4), st.integers(1, 5), st.sampled_from(P.ACTIVATIONS))
def test_symmetric_policy_is_odd_under_reflection(seed, d, H, activation):
    rng = rng_from(seed)
    pol = _symmetric_policy(rng, d, H, activation=activation)
    obs = rng.standard_normal((5, features.obs_dim(d, H)))
    np.testing.assert_array_equal(P.mean(pol, obs * pol.reflect), -P.mean(pol, obs))
    still = obs * (pol.reflect > 0)            # every gradient and step zero: no step
    np.testing.assert_array_equal(P.mean(pol, still), 0.0)
    (W1, b1), (W2, b2) = pol.net              # ½[plain(o) − plain(R·o)], written out
    plain = pol._replace(reflect=None)
    np.testing.assert_allclose(P.mean(pol, obs), 0.5 * (P.mean(plain, obs)
                                                        - P.mean(plain, obs * pol.reflect)),
                               rtol=1e-12, atol=1e-14)


@settings(max_examples=20)
@given(st.integers(0, 1000))
def test_symmetric_learned_optimizer_mirrors_its_trajectory_on_the_mirrored_problem(seed):
    fam, problems, x0, obj = _lr_batch(seed=seed)
    pol = _symmetric_policy(np.random.default_rng(seed), fam.dim, 25)
    pol = pol._replace(scale=np.full(pol.scale.shape, 0.1))
    flipped = problems._replace(y=1.0 - problems.y)  # LR: f(−x; y) = f(x; 1 − y)
    mirrored = functools.partial(fam.loss, problems=flipped)
    a = rollout.run(opt.learned(pol), obj, x0, 15)
    b = rollout.run(opt.learned(pol), mirrored, -x0, 15)
    np.testing.assert_allclose(b.xs, -a.xs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.fs, a.fs, rtol=1e-10)


def test_symmetric_policy_round_trips_and_bad_reflect_is_refused(tmp_path):
    pol = _symmetric_policy(np.random.default_rng(0), 4, 25)
    P.save(str(tmp_path / "p"), pol, family="logistic_regression")
    back, meta = P.load(str(tmp_path / "p"))
    assert meta["symmetric"] is True
    np.testing.assert_array_equal(back.reflect, pol.reflect)
    obs = np.random.default_rng(1).standard_normal((3, 229))
    np.testing.assert_array_equal(P.mean(back, obs), P.mean(pol, obs))
    with pytest.raises(ValueError, match="reflect"):
        P.init(np.random.default_rng(0), 229, 4, reflect=np.ones(228))
    with pytest.raises(ValueError, match="reflect"):
        P.init(np.random.default_rng(0), 3, 1, reflect=np.array([1.0, 0.5, -1.0]))


@pytest.mark.parametrize("name, bad", [("W1", np.nan), ("b2", np.inf), ("var", -np.inf),
                                       ("shift", np.nan)])
def test_non_finite_weights_are_refused_naming_the_file(tmp_path, name, bad):
    pol = P.init(np.random.default_rng(0), 5, 2, hidden=3)
    path = str(tmp_path / "p")
    npz_path, _ = P.save(path, pol)
    arrays = dict(np.load(npz_path))
    arrays[name].flat[0] = bad
    np.savez(npz_path, **arrays)
    with pytest.raises(ValueError, match=f"{re.escape(npz_path)}.*{name}"):
        P.load(path)
