"""S-step: hand-written gradient vs autograd, its Adam vs ``optimizers.adam``, fixed point,
targets, weights, policy variance (docs/method.md §7.12)."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import given, settings, strategies as st

from conftest import random_controller, random_policy, random_spd, rng_from, seeds
from lto_ref import optimizers, policy as P
from lto_ref.gps import badmm, lingauss, sstep as S


def _problem(rng, B=7, dO=5, dU=2, hidden=4, activation="softplus"):
    pol = random_policy(rng, dO, dU, hidden=hidden, activation=activation, weight_scale=0.7,
                        whitening=False)
    return pol, rng.standard_normal((B, dO)), rng.standard_normal((B, dU)), random_spd(rng, B, dU)


def _autograd_loss(pol, o, target, prec):
    def loss(net):
        err = target - P.mean(pol._replace(net=net), o)
        return 0.5 * anp.mean(anp.einsum("bi,bij,bj->b", err, prec, err))
    return loss


@given(seeds, st.sampled_from(P.ACTIVATIONS), st.booleans())
def test_hand_written_gradient_matches_autograd(seed, activation, symmetric):
    rng = rng_from(seed)
    pol, o, target, prec = _problem(rng, activation=activation)
    if symmetric:
        pol = pol._replace(reflect=rng.choice([-1.0, 1.0], size=o.shape[1]),
                           scale=rng.uniform(0.5, 2, o.shape[1]),
                           shift=rng.standard_normal(o.shape[1]))
    loss = _autograd_loss(pol, o, target, prec)
    value, grads = S.loss_and_grad(pol, o, target, prec)
    np.testing.assert_allclose(value, loss(pol.net), rtol=1e-12)
    for (gW, gb), (aW, ab) in zip(grads, grad(loss)(pol.net)):
        np.testing.assert_allclose(gW, aW, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gb, ab, rtol=1e-9, atol=1e-12)


@settings(max_examples=20)
@given(seeds, st.sampled_from([0.9, 0.5]), st.sampled_from([0.999, 0.9]), st.booleans())
def test_s_step_adam_is_optimizers_adam_step_for_step(seed, b1, b2, symmetric):
    """Full-batch S-steps, one Adam step per call with the state carried, against
    ``optimizers.adam`` fed the same gradients: same iterates up to rounding."""
    rng = rng_from(seed)
    pol, o, target, prec = _problem(rng, B=9)
    if symmetric:
        pol = pol._replace(reflect=rng.choice([-1.0, 1.0], size=o.shape[1]))
    adam = optimizers.adam(1e-2, b1=b1, b2=b2, eps=1e-8)
    flat = S.flatten(pol.net)
    ref_state, state, cur = adam.init(flat[None]), None, pol
    for t in range(1, 7):
        g = S.flatten(S.loss_and_grad(pol._replace(net=S.unflatten(flat, pol.net)), o, target,
                                      prec)[1])
        dx, ref_state = adam.step(ref_state, flat[None], None, g[None])
        flat = flat + dx[0]
        cur, state, _ = S.regress(rng, cur, o, target, prec, state=state, steps=1, batch=9,
                                  lr=1e-2, b1=b1, b2=b2, eps=1e-8)
        assert state.t == t
        # atol: a gradient entry that nearly cancels carries the rows' summation order into
        # m/√v at ~1e-8 relative; a wrong Adam differs by O(lr) = 1e-2
        np.testing.assert_allclose(S.flatten(cur.net), flat, rtol=1e-9, atol=1e-9)


@settings(max_examples=20)
@given(seeds, st.booleans())
def test_targets_from_the_policy_itself_are_a_fixed_point(seed, symmetric):
    rng = rng_from(seed)
    pol, o, _, prec = _problem(rng, B=40)
    pol = P.with_whitening(pol, o)
    if symmetric:
        pol = pol._replace(reflect=rng.choice([-1.0, 1.0], size=o.shape[1]))
    new, state, losses = S.regress(rng, pol, o, P.mean(pol, o), prec, steps=30, batch=8)
    for (W, b), (W2, b2) in zip(pol.net, new.net):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(losses, 0.0)
    assert state.t == 30


def test_regression_fits_a_learnable_target():
    rng = np.random.default_rng(0)
    pol, o, _, _ = _problem(rng, B=400, hidden=16)
    target = np.tanh(o @ rng.standard_normal((5, 2)))
    prec = np.broadcast_to(np.eye(2), (400, 2, 2))
    new, _, losses = S.regress(rng, pol, o, target, prec, steps=3000, batch=25, lr=1e-2)
    before = S.loss_and_grad(pol, o, target, prec)[0]
    after = S.loss_and_grad(new, o, target, prec)[0]
    assert after < 0.1 * before and losses[-100:].mean() < losses[:100].mean()


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_targets_follow_the_controller_and_badmm_duals(seed, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, 2, 3, dX, dU)
    X = rng.standard_normal((2, 4, 3, dX))
    mu, prec = S.targets(lg, X)
    nu = rng.uniform(0.1, 1, (2, 3))
    lam_k = rng.standard_normal((2, 3, dU))
    mu_b, _ = S.targets(lg, X, nu=nu, lam_k=lam_k)
    mu_d, _ = S.targets(lg, X, nu=nu, lam_k=lam_k, form="derivation")
    for m, n, t in [(0, 0, 0), (1, 3, 2), (1, 2, 1)]:
        u = lg.K[m, t] @ X[m, n, t] + lg.k[m, t]
        np.testing.assert_allclose(mu[m, n, t], u, rtol=1e-12, atol=1e-14)
        corr = nu[m, t] * lg.pol_covar[m, t] @ lam_k[m, t]
        np.testing.assert_allclose(mu_b[m, n, t], u - corr, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mu_d[m, n, t], u - corr / nu[m, t] ** 2, rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_array_equal(prec, lg.inv)
    with pytest.raises(ValueError, match="form"):
        S.targets(lg, X, nu=nu, lam_k=lam_k, form="paper")


@pytest.mark.parametrize("form, stable", [("code", False), ("derivation", True)])
def test_dual_ascent_with_a_perfect_s_step(form, stable):
    """λ update (docs/method.md §7.11) after an S-step that fits its target exactly, controller mean 0:
    λ ← (1 − α ν s) λ with s = ν (code form) or 1/ν (derivation). With α = 0.2 and ν = 5 the code
    form's factor is −4 (the dual variable explodes, as ν's doubling makes it do after ~9 GPS
    iterations), the derivation's 0.8."""
    lg = lingauss.make(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1)), np.full((1, 1, 1, 1), 1e-3))
    X, nu, lam_k = np.zeros((1, 1, 1, 1)), np.full((1, 1), 5.0), np.ones((1, 1, 1))
    for _ in range(5):
        target, _ = S.targets(lg, X, nu=nu, lam_k=lam_k, form=form)
        lam_k = badmm.update_lambda(lam_k, nu, lg, X, target, alpha=0.2)
    factor = 1 - 0.2 * 5.0 * (5.0 if form == "code" else 0.2)           # −4 or 0.8
    np.testing.assert_allclose(1 - badmm.dual_gain(nu, 0.2, form), factor)
    expected = factor ** 5
    np.testing.assert_allclose(lam_k[0, 0, 0], expected, rtol=1e-9)
    assert (abs(lam_k[0, 0, 0]) < 1) == stable


def test_weights_are_mean_normalised_and_clipped_at_twice_the_median():
    np.testing.assert_allclose(S.weights(np.full((2, 3), 0.01), 4), 1.0)
    w = S.weights(np.array([[1.0, 1.0, 1.0, 10.0]]), 2)   # normalised: 4/13·(1,1,1,10)
    # median of the normalised weights is 4/13; divide by it and clip at 2
    np.testing.assert_allclose(w[0, 0], [1.0, 1.0, 1.0, 2.0])


@given(seeds, st.integers(1, 3))
def test_policy_variance_is_the_inverse_weighted_mean_precision(seed, dU):
    rng = rng_from(seed)
    prec = random_spd(rng, 6, dU)
    w = rng.uniform(0.1, 2, 6)
    expected = w.sum() / np.array([np.sum(w * prec[:, j, j]) for j in range(dU)])
    np.testing.assert_allclose(S.policy_variance(prec, w), expected, rtol=1e-12)
    same = np.broadcast_to(prec[0], prec.shape)
    np.testing.assert_allclose(S.policy_variance(same, w), 1 / np.diag(prec[0]), rtol=1e-12)
