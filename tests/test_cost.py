"""GPS cost quadratisation with exact Hessians, and the Laplace expected cost (docs/method.md (60)–(61))."""
import functools

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import random_spd, rng_from, seeds
from lto_ref import autodiff, objectives
from lto_ref.gps import cost as C


def _model(cost, m, t, z):
    return 0.5 * z @ cost.Cm[m, t] @ z + z @ cost.cv[m, t] + cost.cc[m, t]


@given(seeds, st.integers(1, 4), st.sampled_from([1.0, 3.0, 0.25]))
def test_quadratic_objective_is_modelled_exactly_everywhere(seed, N, s):
    rng = rng_from(seed)
    fam = objectives.quadratic(3)
    problems, _ = objectives.split_data(fam, objectives.TRAIN, 2, base_seed=seed % 1000)
    X = rng.standard_normal((2, N, 2, 7))               # dX = 7, CUR_LOC = first 3 entries
    cost, raw = C.quadratize(fam, problems, X, dU=3, scale=s)
    z = rng.standard_normal(10)
    for m in range(2):
        f = fam.loss(z[None, :3], objectives.subset(problems, [m]))[0]
        for t in range(2):
            np.testing.assert_allclose(_model(cost, m, t, z), s * f, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(cost.Cm[..., 3:, :], 0.0)  # no action or lagged-state terms
    f_samples = fam.loss(X[1, :, 0, :3], objectives.subset(problems, np.ones(N, dtype=int)))
    np.testing.assert_allclose(raw[1, :, 0], s * f_samples, rtol=1e-12)


@settings(max_examples=20)
@given(seeds)
def test_single_sample_model_matches_value_gradient_and_hessian_at_the_sample(seed):
    rng = rng_from(seed)
    fam = objectives.two_layer_net()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 1, base_seed=seed % 1000)
    X = np.concatenate([x0 + 0.1 * rng.standard_normal((1, 12)), rng.standard_normal((1, 3))], 1)
    cost, _ = C.quadratize(fam, problems, X[None, None, None, 0], dU=12)
    obj = functools.partial(fam.loss, problems=problems)
    f, g = autodiff.value_and_grad(obj, X[:, :12])
    z = np.concatenate([X[0], np.zeros(12)])
    np.testing.assert_allclose(_model(cost, 0, 0, z), f[0], rtol=1e-10)
    np.testing.assert_allclose((cost.Cm[0, 0] @ z + cost.cv[0, 0])[:12], g[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(cost.Cm[0, 0, :12, :12], autodiff.hessians(obj, X[:, :12])[0])


@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_expected_cost_matches_monte_carlo(seed, T, D):
    rng = rng_from(seed)
    cost = C.QuadCost(Cm=random_spd(rng, 1, T, D), cv=rng.standard_normal((1, T, D)),
                        cc=rng.standard_normal((1, T)))
    mu, sigma = rng.standard_normal((1, T, D)), random_spd(rng, 1, T, D, scale=0.5)
    J = C.expected_cost(cost, mu, sigma)
    draws = np.stack([rng.multivariate_normal(mu[0, t], sigma[0, t], size=4000) for t in range(T)])
    vals = sum(np.array([_model(cost, 0, t, z) for z in draws[t]]) for t in range(T))
    assert abs(J[0] - vals.mean()) < 5 * vals.std() / np.sqrt(len(vals))
    np.testing.assert_allclose(C.expected_cost(cost, mu, 0 * sigma),
                               [sum(_model(cost, 0, t, mu[0, t]) for t in range(T))], rtol=1e-12)
