"""Supervised meta-training: meta-gradient vs finite differences, invariants, training lowers the
meta-loss, non-finite guard (docs/method.md §8)."""
import functools

import numpy as np
import pytest
from autograd.misc.flatten import flatten
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from lto_ref import features, objectives, optimizers as opt, policy as P, rollout, supervised as S

H = 3


def _quad(seed, n=3, d=2):
    fam = objectives.quadratic(d)
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, n, base_seed=seed)
    return fam, problems, x0, functools.partial(fam.loss, problems=problems)


def _small_policy(seed, d, hidden=5):
    rng = np.random.default_rng(seed)
    pol = P.init(rng, features.obs_dim(d, H), d, hidden=hidden, weight_scale=0.3)
    return pol._replace(net=[(W, 0.1 * rng.standard_normal(b.shape)) for W, b in pol.net])


@settings(max_examples=10)
@given(st.integers(0, 1000))
def test_full_meta_gradient_matches_central_differences(seed):
    fam, problems, x0, obj = _quad(seed)
    pol = _small_policy(seed, fam.dim)
    flat, unflatten = flatten(pol.net)
    J = lambda w: S.meta_objective(unflatten(w), pol, obj, x0, 3, H=H)  # noqa: E731
    check_grads(J, modes=["rev"], order=1)(flat)


@settings(max_examples=10)
@given(st.integers(0, 1000))
def test_stop_and_full_agree_for_one_step_and_differ_later(seed):
    """At T = 1 the only observation, o_0, does not depend on θ, so both modes are exact."""
    from autograd import grad
    fam, problems, x0, obj = _quad(seed)
    pol = _small_policy(seed, fam.dim)
    flat, unflatten = flatten(pol.net)

    def g(mode, T):
        return grad(lambda w: S.meta_objective(unflatten(w), pol, obj, x0, T, H=H,
                                               feature_grad=mode))(flat)
    np.testing.assert_allclose(g("stop", 1), g("full", 1), rtol=1e-12, atol=1e-15)
    check_grads(lambda w: S.meta_objective(unflatten(w), pol, obj, x0, 1, H=H, feature_grad="stop"),
                modes=["rev"], order=1)(flat)
    assert not np.allclose(g("stop", 3), g("full", 3), rtol=1e-6)


@given(st.integers(0, 1000), st.integers(1, 6))
def test_zero_output_layer_gives_mean_initial_objective(seed, T):
    fam, problems, x0, obj = _quad(seed)
    pol = _small_policy(seed, fam.dim)
    (W1, b1), (W2, b2) = pol.net
    net = [(W1, b1), (0 * W2, 0 * b2)]
    J = S.meta_objective(net, pol, obj, x0, T, H=H)
    np.testing.assert_allclose(J, np.mean(fam.loss(x0, problems)), rtol=1e-13)


@given(st.integers(0, 1000), st.permutations(range(4)))
def test_meta_objective_invariant_to_function_order(seed, perm):
    fam, problems, x0, obj = _quad(seed, n=4)
    pol = _small_policy(seed, fam.dim)
    perm = list(perm)
    obj_p = functools.partial(fam.loss, problems=objectives.subset(problems, perm))
    a = S.meta_objective(pol.net, pol, obj, x0, 4, H=H)
    b = S.meta_objective(pol.net, pol, obj_p, x0[perm], 4, H=H)
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_meta_objective_equals_rollout_meta_loss_of_learned_optimizer():
    fam, problems, x0, obj = _quad(7, n=3)
    pol = _small_policy(7, fam.dim)
    trace = rollout.run(opt.learned(pol, H=H), obj, x0, 5)
    J = S.meta_objective(pol.net, pol, obj, x0, 5, H=H)
    np.testing.assert_allclose(J, rollout.meta_loss(trace).mean() / 5, rtol=1e-12)


def test_training_lowers_the_meta_loss_on_quadratics():
    fam, problems, x0, obj = _quad(11, n=8, d=4)
    cfg = S.Config(T=10, iterations=60, H=H, hidden=10, lr=3e-3)
    rows = []
    pol, log = S.train(fam, problems, x0, cfg, seed=0, callback=lambda i, r: rows.append((i, r)))
    assert log.J.shape == (60,) and not log.skipped.any()
    assert log.J[-1] < 0.8 * log.J[0]
    assert [i for i, _ in rows] == list(range(60))            # one callback row per iteration
    np.testing.assert_array_equal([r.J for _, r in rows], log.J)
    # J[i] is the objective of θ before update i: J[0] is the initial policy's
    initial = pol._replace(net=P.init(np.random.default_rng(0), features.obs_dim(4, H), 4,
                                      hidden=10).net)
    np.testing.assert_allclose(log.J[0], S.meta_objective(initial.net, pol, obj, x0, 10, H=H),
                               rtol=1e-12)
    # independent check: the returned policy's own rollouts
    before = rollout.meta_loss(rollout.run(opt.learned(initial, H=H), obj, x0, 10)).mean()
    after = rollout.meta_loss(rollout.run(opt.learned(pol, H=H), obj, x0, 10)).mean()
    assert after < 0.8 * before


def test_non_finite_meta_gradient_skips_the_update_and_aborts():
    calls = []

    def J_and_grad(w):
        calls.append(w.copy())
        return (np.nan, w) if len(calls) > 2 else (float(w @ w), 2 * w)
    w0 = np.array([1.0, -2.0])
    with pytest.warns(RuntimeWarning, match="aborted"):
        w, log = S.descend(J_and_grad, w0, S.Config(iterations=10, max_skips=3, lr=0.1))
    assert log.skipped.tolist() == [False, False, True, True, True]
    assert np.all(np.isnan(log.J[2:])) and np.all(np.isnan(log.grad_norm[2:]))
    np.testing.assert_allclose(log.J[:2], [5.0, float(calls[1] @ calls[1])])
    np.testing.assert_array_equal(w, calls[2])         # skipped steps leave θ unchanged
    np.testing.assert_array_equal(calls[2], calls[4])
    # the two accepted steps are Adam's (its first step moves every entry by lr against g)
    np.testing.assert_allclose(calls[1], w0 - 0.1 * np.sign(w0), rtol=1e-6)


def test_skipped_steps_leave_adams_moments_unchanged():
    """A finite step after skipped ones is the step Adam takes with no skips in between."""
    grads = iter([np.array([1.0]), None, None, np.array([3.0])])

    def with_skips(w):
        g = next(grads)
        return (np.nan, w) if g is None else (1.0, g)
    plain = iter([np.array([1.0]), np.array([3.0])])
    w_skip, _ = S.descend(with_skips, np.array([0.0]), S.Config(iterations=4, lr=0.1))
    w_plain, _ = S.descend(lambda w: (1.0, next(plain)), np.array([0.0]),
                           S.Config(iterations=2, lr=0.1))
    np.testing.assert_array_equal(w_skip, w_plain)


def test_gradient_clipping_bounds_the_first_adam_input():
    clipped, norm = S._clipped(np.array([3.0, 4.0]), 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped, [0.6, 0.8], rtol=1e-15)


@pytest.mark.parametrize("kwargs,arg", [({"lr": 0}, "lr"), ({"feature_grad": "half"}, "feature_grad"),
                                        ({"max_skips": 0}, "max_skips"), ({"variant": "x"}, "variant"),
                                        ({"T": 0}, "T"), ({"iterations": 0}, "iterations")])
def test_bad_config_raises(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        S.Config(**kwargs)


def test_bad_train_arguments_raise():
    fam, problems, x0, _ = _quad(0)
    with pytest.raises(ValueError, match="x0"):
        S.train(fam, problems, x0[:, :1], S.Config(T=2, iterations=1))
