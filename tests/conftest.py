"""Hypothesis profiles and the helpers shared by the test modules.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``) selects the derandomized profile; ``dev`` is the
default. Seeds come from strategies (``seeds``) and become generators with ``rng_from``, never
the global RNG.
"""
import os

import numpy as np
from hypothesis import settings, strategies as st

from lto_ref import policy
from lto_ref.gps import cost, dynamics, lingauss

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

seeds = st.integers(0, 2**32 - 1)


def rng_from(seed):
    """A fresh generator for a hypothesis-drawn seed (never the global RNG)."""
    return np.random.default_rng(seed)


def random_spd(rng, *shape, scale=1.0):
    """SPD matrices (…, k, k) with eigenvalues ≥ 0.1·scale."""
    k = shape[-1]
    A = rng.standard_normal(shape[:-1] + (k, k))
    return scale * (A @ np.swapaxes(A, -1, -2) / k + 0.1 * np.eye(k))


def random_controller(rng, M, T, dX, dU):
    """Linear-Gaussian controllers with standard-normal gains and offsets, SPD covariances."""
    return lingauss.make(rng.standard_normal((M, T, dU, dX)), rng.standard_normal((M, T, dU)),
                         random_spd(rng, M, T, dU))


def random_dynamics(rng, M, T, dX, dU, noise=0.1, x0_var=0.1):
    """Contractive linear dynamics (spectral norm of F ≤ 0.9) with PSD noise."""
    F = rng.standard_normal((M, T - 1, dX, dX + dU))
    F = 0.9 * F / np.linalg.norm(F, ord=2, axis=(-2, -1))[..., None, None]
    return dynamics.Dynamics(Fm=F, fv=rng.standard_normal((M, T - 1, dX)),
                             dyn_covar=noise * random_spd(rng, M, T - 1, dX),
                             x0mu=rng.standard_normal((M, dX)),
                             x0sigma=x0_var * random_spd(rng, M, dX))


def random_cost(rng, M, T, dX, dU):
    """Convex quadratic costs in z = [x; u] (SPD Cm, zero constants)."""
    return cost.QuadCost(Cm=random_spd(rng, M, T, dX + dU), cv=rng.standard_normal((M, T, dX + dU)),
                         cc=np.zeros((M, T)))


def random_policy(rng, dO, dU, *, hidden=7, activation="softplus", weight_scale=0.5,
                  reflect=None, whitening=True):
    """A policy with random weights, standard-normal biases and (optionally) a random whitening."""
    pol = policy.init(rng, dO, dU, hidden=hidden, activation=activation,
                      weight_scale=weight_scale, reflect=reflect)
    pol = pol._replace(net=[(W, rng.standard_normal(b.shape)) for W, b in pol.net])
    if whitening:
        pol = pol._replace(shift=rng.standard_normal(dO), scale=rng.uniform(0.5, 2, dO))
    return pol
