"""Rest-stability projection: gradients against finite differences and autograd, the projection
against the closed-form stability of gradient descent, Hessians against the quadratic family."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import random_policy, rng_from, seeds
from lto_ref import features, objectives, policy as P
from lto_ref.analysis import stabilise, stability


def _random_policy(rng, d, H, activation="softplus", scale=0.3):
    return random_policy(rng, features.obs_dim(d, H), d, hidden=6, activation=activation,
                         weight_scale=scale, reflect=features.reflection(d, H))


def _gradient_descent_policy(d, H, gamma):
    """A reflection-odd softplus policy that is exactly u = −γ g_t to first order at rest."""
    dO = features.obs_dim(d, H)
    g_t = H + H * d                                   # offset of g_t in the observation (§5)
    W1, W2 = np.zeros((dO, d)), np.zeros((d, d))
    W1[g_t:g_t + d] = np.eye(d)
    W2[:] = -2 * gamma * np.eye(d)                    # softplus'(0) = ½
    pol = P.init(np.random.default_rng(0), dO, d, hidden=d, reflect=features.reflection(d, H))
    return pol._replace(net=[(W1, np.zeros(d)), (W2, np.zeros(d))])


@given(seeds, st.integers(1, 3), st.integers(1, 3), st.sampled_from(["softplus", "relu"]))
def test_jacobian_at_rest_matches_autograd_and_its_vjp_finite_differences(seed, d, H, act):
    rng = rng_from(seed)
    pol = _random_policy(rng, d, H, act)
    J, vjp = stabilise.jacobian_and_vjp(pol)
    Pg, Q = stability.jacobian_at_rest(pol, d, H)
    np.testing.assert_allclose(stability.blocks(J, d, H)[0], Pg, atol=1e-12)
    np.testing.assert_allclose(stability.blocks(J, d, H)[1], Q, atol=1e-12)
    G = rng.standard_normal(J.shape)
    dirs = [(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in pol.net]
    e = 1e-6

    def inner(sign):
        net = [(W + sign * e * dW, b + sign * e * db) for (W, b), (dW, db) in zip(pol.net, dirs)]
        return np.sum(G * stabilise.jacobian_and_vjp(pol._replace(net=net))[0])
    analytic = sum(np.sum(g * dv) for layer, dl in zip(vjp(G), dirs) for g, dv in zip(layer, dl))
    assert analytic == pytest.approx((inner(1) - inner(-1)) / (2 * e), rel=1e-5, abs=1e-8)


@given(seeds, st.integers(1, 3), st.integers(1, 3), st.floats(0.5, 1.0))
def test_excess_is_the_eigenvalues_outside_r_and_its_gradient_finite_differences(seed, d, H, r):
    rng = rng_from(seed)
    dO = features.obs_dim(d, H)
    J = 0.3 * rng.standard_normal((d, dO))
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = (U * rng.uniform(0.1, 3.0, d)) @ U.T
    value, G = stabilise.excess_and_grad(J, A, H, r)
    mod = np.abs(np.linalg.eigvals(stability.companion(*stability.blocks(J, d, H), A)))
    assert value == pytest.approx(np.sum(np.maximum(mod - r, 0) ** 2), rel=1e-9, abs=1e-12)
    D, e = rng.standard_normal(J.shape), 1e-7
    fd = (stabilise.excess_and_grad(J + e * D, A, H, r)[0]
          - stabilise.excess_and_grad(J - e * D, A, H, r)[0]) / (2 * e)
    assert np.sum(G * D) == pytest.approx(fd, rel=1e-4, abs=1e-7)


def test_rest_hessians_of_quadratics_are_their_matrices_at_their_centres():
    fam = objectives.quadratic(dim=3, lam_min=0.2, lam_max=2.0)
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 5)
    x_star, A = stabilise.rest_hessians(fam, problems, x0)
    np.testing.assert_allclose(x_star, problems.x_star, atol=1e-6)
    np.testing.assert_allclose(A, problems.A, atol=1e-10)


def test_projection_makes_too_long_gradient_steps_stable_and_leaves_stable_ones_alone():
    """Gradient descent at rest has ρ = max_λ |1 − γλ|: γ = 2.5 on λ ≤ 1 is unstable (ρ = 1.5),
    γ = 1 on λ ∈ [0.1, 1] is stable (ρ = 0.9 and 0.5) and must come back unchanged."""
    d, H = 2, 2
    A = np.stack([np.diag([0.1, 1.0]), np.diag([0.5, 0.8])])
    O = 0.1 * rng_from(1).standard_normal((50, features.obs_dim(d, H)))
    stable = _gradient_descent_policy(d, H, 1.0)
    same, info = stabilise.project(stable, O, A, H)
    assert info["nit"] == 0 and info["active"] == 0
    np.testing.assert_allclose(info["rho_before"], [0.9, 0.5])
    for (W, b), (W0, b0) in zip(same.net, stable.net):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    tighter, info = stabilise.project(stable, O, A, H, r=0.85, kappa=100.0)  # 0.9: too slow
    assert np.all(info["rho_after"] < 0.86)
    unstable = _gradient_descent_policy(d, H, 2.5)
    fixed, info = stabilise.project(unstable, O, A, H, r=0.95)
    np.testing.assert_allclose(info["rho_before"], [1.5, 1.0])
    assert np.all(info["rho_after"] < 0.97)
    np.testing.assert_allclose(info["rho_after"],
                               stability.spectral_radius(*stability.jacobian_at_rest(fixed, d, H),
                                                         A))


@settings(max_examples=5, deadline=None)
@given(seeds)
def test_stabilise_on_quadratics_bounds_the_radius_at_the_scaled_hessians(seed):
    fam = objectives.quadratic(dim=2, lam_min=0.3, lam_max=1.0)
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 4, base_seed=seed % 1000)
    pol = _gradient_descent_policy(2, 3, 2.2)
    new, info = stabilise.stabilise(pol, fam, problems, x0, H=3, h=2, T=10, margin=1.2)
    expected = stability.spectral_radius(*stability.jacobian_at_rest(new, 2, 3), 1.2 * problems.A)
    np.testing.assert_allclose(info["rho_after"], expected)
    assert np.max(info["rho_before"]) > 1.2 and np.max(expected) < 1.0


def test_projection_warns_when_it_cannot_reach_r():
    d, H = 2, 2
    O = 0.1 * rng_from(1).standard_normal((50, features.obs_dim(d, H)))
    with pytest.warns(RuntimeWarning, match="left ρ > 0.95"):
        stabilise.project(_gradient_descent_policy(d, H, 2.5), O, np.diag([0.1, 1.0])[None], H,
                          r=0.95, maxiter=1)


def test_bad_input_raises():
    d, H = 2, 2
    pol = _gradient_descent_policy(d, H, 1.0)
    O, A = np.zeros((3, features.obs_dim(d, H))), np.eye(d)[None]
    with pytest.raises(ValueError, match="reflection-odd"):
        stabilise.project(pol._replace(reflect=None), O, A, H)
    with pytest.raises(ValueError, match="reflection-odd"):
        stabilise.jacobian_and_vjp(pol._replace(reflect=None))
    with pytest.raises(ValueError, match="r = 1.5"):
        stabilise.project(pol, O, A, H, r=1.5)
    with pytest.raises(ValueError, match="kappa = 0"):
        stabilise.project(pol, O, A, H, kappa=0)
    with pytest.raises(ValueError, match=r"A must have shape \(n, 2, 2\)"):
        stabilise.project(pol, O, np.eye(3)[None], H)
    fam = objectives.quadratic(dim=2)
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 2)
    with pytest.raises(ValueError, match="margin must be > 0"):
        stabilise.stabilise(pol, fam, problems, x0, H=H, margin=0.0)
