"""Shared hypothesis profiles and strategies.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``) selects the derandomized profile.
"""
import os

import numpy as np
from hypothesis import settings, strategies as st

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

seeds = st.integers(0, 2**32 - 1)


def rng_from(seed):
    """A fresh generator for a hypothesis-drawn seed (never the global RNG)."""
    return np.random.default_rng(seed)
