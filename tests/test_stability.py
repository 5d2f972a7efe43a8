"""Linear stability of a learned optimizer at a minimiser: oracle (heavy ball) and linearisation."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import rng_from, seeds
from lto_ref import features, policy as P
from lto_ref.analysis import stability


def _heavy_ball_maps(gamma, mu, d, H):
    """u_t = −γ g_t + μ Δ_t as the (P, Q) blocks of ``stability.jacobian_at_rest``."""
    Pg, Q = np.zeros((H + 1, d, d)), np.zeros((H, d, d))
    Pg[H], Q[H - 1] = -gamma * np.eye(d), mu * np.eye(d)
    return Pg, Q


@given(seeds, st.floats(0.01, 2.0), st.floats(0.0, 0.99), st.integers(1, 3), st.integers(1, 4))
def test_heavy_ball_radius_is_the_largest_root_of_polyaks_polynomial(seed, gamma, mu, d, H):
    rng = rng_from(seed)
    lam = rng.uniform(0.05, 3.0, d)
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = (U * lam) @ U.T
    Pg, Q = _heavy_ball_maps(gamma, mu, d, H)
    roots = [np.roots([1.0, -(1 + mu - gamma * l), mu]) for l in lam]
    expected = max(np.max(np.abs(r)) for r in roots)
    assert stability.spectral_radius(Pg, Q, A) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_gradient_descent_is_stable_exactly_below_two_over_lambda():
    Pg, Q = _heavy_ball_maps(0.5, 0.0, 1, 2)
    radii = stability.spectral_radius(Pg, Q, np.array([[[3.9]], [[4.1]]]))
    np.testing.assert_allclose(radii, [0.95, 1.05])


@given(seeds, st.integers(1, 3), st.integers(1, 4))
def test_the_companion_matrix_is_the_policys_first_order_step(seed, d, H):
    """One step of a reflection-odd policy from a tiny history on a quadratic equals M(A)·E_t
    to first order (relative error O(ε))."""
    rng = rng_from(seed)
    dO = features.obs_dim(d, H)
    pol = P.init(rng, dO, d, hidden=6, weight_scale=0.7, reflect=features.reflection(d, H))
    pol = pol._replace(net=[(W, rng.standard_normal(b.shape)) for W, b in pol.net],
                       shift=rng.standard_normal(dO), scale=rng.uniform(0.5, 2, dO))
    B = rng.standard_normal((d, d))
    A = B @ B.T + 0.5 * np.eye(d)
    eps = 1e-6
    e = eps * rng.standard_normal((H + 1, d))               # e_{t−H} … e_t, oldest first
    f = 1.0 + 0.5 * np.einsum("ki,ij,kj->k", e, A, e)
    g = e @ A
    hist = features.History(x=e[-1:], f=f[-1:], g=g[-1:], fs=f[None, :-1], gs=g[None, :-1],
                            dxs=np.diff(e, axis=0)[None], filled=np.ones((1, H)))
    u = P.mean(pol, features.observe(hist)[1])[0]
    Pg, Q = stability.jacobian_at_rest(pol, d, H)
    E = e[::-1].reshape(-1)                                 # [e_t, e_{t−1}, …, e_{t−H}]
    u_lin = stability.companion(Pg, Q, A)[:d] @ E - e[-1]
    scale = np.max(np.abs(Pg)) * np.abs(A).max() * eps + np.max(np.abs(Q)) * eps
    np.testing.assert_allclose(u, u_lin, rtol=0, atol=1e-4 * scale)
    assert np.max(np.abs(u_lin)) > 1e-3 * scale              # the comparison is not 0 ≈ 0


def test_bad_shapes_raise():
    Pg, Q = _heavy_ball_maps(0.1, 0.9, 2, 3)
    with pytest.raises(ValueError, match="Q must have shape"):
        stability.companion(Pg, Q[:2], np.eye(2))
    with pytest.raises(ValueError, match="A must have shape"):
        stability.companion(Pg, Q, np.eye(3))
    with pytest.raises(ValueError, match="P must have shape"):
        stability.companion(Pg[0], Q, np.eye(2))
    pol = P.init(np.random.default_rng(0), features.obs_dim(2, 3), 2)
    with pytest.raises(ValueError, match="dO = "):
        stability.jacobian_at_rest(pol, 2, 4)
