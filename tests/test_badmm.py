"""BADMM duals and step adaptation (docs/method.md (77)–(80))."""
import numpy as np
from hypothesis import given, strategies as st

from conftest import random_controller, random_cost, random_dynamics, rng_from, seeds
from lto_ref.gps import badmm, cost as cost_lib, lingauss, lqr


def test_step_multiplier_formula_and_clipping():
    # predicted 1, actual 0.5: mult = 1 / (2·0.5) = 1 → unchanged
    np.testing.assert_allclose(badmm.step_multiplier(np.array([2.0]), np.array([1.0]),
                                                     np.array([0.5])), [2.0])
    # actual ≈ predicted: mult clipped at 5; a model that overpromised: clipped at 0.1
    out = badmm.step_multiplier(np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, -9.0]))
    np.testing.assert_allclose(out, [5.0, 0.1])
    np.testing.assert_allclose(badmm.step_multiplier(np.array([8.0]), np.ones(1), np.ones(1)), [10.0])


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_lambda_step_is_zero_where_policy_and_controllers_agree(seed, dX, dU):
    rng = rng_from(seed)
    lg = random_controller(rng, 2, 3, dX, dU)
    X = rng.standard_normal((2, 4, 3, dX))
    lam = rng.standard_normal((2, 3, dU))
    nu = rng.uniform(0.1, 1, (2, 3))
    u = np.einsum("mtij,mntj->mnti", lg.K, X) + lg.k[:, None]
    np.testing.assert_allclose(badmm.update_lambda(lam, nu, lg, X, u), lam, rtol=1e-12, atol=1e-13)
    shifted = badmm.update_lambda(lam, nu, lg, X, u + 1.0, alpha=0.2)
    expected = lam + 0.2 * nu[..., None] * np.einsum("mtij,j->mti", lg.inv, np.ones(dU))
    np.testing.assert_allclose(shifted, expected, rtol=1e-10, atol=1e-12)


def test_nu_rule_halves_low_and_doubles_high_kl():
    # mean 1.1, variance (1.21 + 8·0.01 + 3.61)/10 = 0.49, std 0.7: halve below 0.4,
    # double at or above 1.45
    kl = np.array([[0.0] + [1.0] * 8 + [3.0]])
    np.testing.assert_allclose(badmm.update_nu(np.ones((1, 10)), kl), [[0.5] + [1.0] * 8 + [2.0]])


@given(seeds, st.integers(1, 3), st.integers(1, 2), st.integers(1, 4))
def test_model_cost_is_laplace_cost_plus_weighted_policy_kl(seed, dX, dU, T):
    rng = rng_from(seed)
    dyn, cost = random_dynamics(rng, 2, T, dX, dU), random_cost(rng, 2, T, dX, dU)
    lg, pb = random_controller(rng, 2, T, dX, dU), random_controller(rng, 2, T, dX, dU)
    mu, sigma = lqr.forward(dyn, lg)
    J = cost_lib.expected_cost(cost, mu, sigma)
    np.testing.assert_allclose(badmm.model_cost(lg, dyn, cost), J, rtol=1e-12)
    nu = rng.uniform(0, 1, (2, T))
    kl = lingauss.policy_kl(mu[..., :dX], sigma[..., :dX, :dX], lg, pb.K, pb.k, pb.pol_covar)
    np.testing.assert_allclose(badmm.model_cost(lg, dyn, cost, pb, nu), J + (nu * kl).sum(1),
                               rtol=1e-12)
    # a controller is at zero policy-KL from itself
    np.testing.assert_allclose(badmm.model_cost(lg, dyn, cost, lg, nu), J, rtol=1e-9, atol=1e-9)
