"""Closed-form Hessians against autograd's Hessian-vector products (oracle: ``autodiff.hessians``,
itself checked against central differences in test_autodiff)."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import autodiff, closed_form, objectives


@settings(max_examples=20)
@given(seeds, st.integers(1, 5), st.floats(0.1, 5.0), st.sampled_from([(2, 2, 2), (3, 4, 3)]))
def test_two_layer_net_hessian_equals_autograds(seed, n, scale, sizes):
    d_in, hidden, classes = sizes
    fam = objectives.two_layer_net(lam=1e-2, d_in=d_in, hidden=hidden, classes=classes)
    rng = rng_from(seed)
    problems = fam.sample(rng, n)
    x = scale * rng.standard_normal((n, fam.dim))
    H = fam.hessian(x, problems)
    expected = autodiff.hessians(functools.partial(fam.loss, problems=problems), x)
    np.testing.assert_allclose(H, expected, rtol=1e-9, atol=1e-12)


def test_blocks_give_the_same_hessians_as_one_pass(monkeypatch):
    fam = objectives.two_layer_net()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 7)
    whole = fam.hessian(x0, problems)
    monkeypatch.setattr(closed_form, "CHUNK", 3)
    np.testing.assert_array_equal(fam.hessian(x0, problems), whole)


def test_families_without_a_closed_form_have_none():
    assert objectives.logistic_regression().hessian is None
    assert objectives.two_layer_net().hessian is not None


def test_wrong_shape_raises():
    fam = objectives.two_layer_net()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, 3)
    with pytest.raises(ValueError, match="x must have shape"):
        closed_form.two_layer_net_hessian(x0[:2], problems)
