"""Batched derivatives of objectives whose rows are independent problems (autograd).

An objective maps x (n, d) to f (n,) with problem j's value depending only on row j, so the
gradient of Σ_j f_j holds every per-problem gradient, and a Hessian-vector product with a basis
vector broadcast over the batch gives column i of every problem's Hessian::

    g = ∇_x Σ_j f_j(x)                 (n, d)
    H[:, :, i] = ∇_x Σ_j ⟨g_j(x), e_i⟩  (n, d) per column, i = 1..d
"""
import numpy as onp
from autograd import make_vjp

__all__ = ["value_and_grad", "hessians"]


def value_and_grad(objective, x):
    """Objective values and per-problem gradients of a batch in one reverse pass.

    Parameters
    ----------
    objective : callable, (n, d) -> (n,), problem j's value depending only on row j
    x : (n, d)

    Returns
    -------
    f : (n,)
    g : (n, d)  -- ∇ Σ_j f_j(x) = per-problem gradients, because the rows are independent

    Raises
    ------
    ValueError : the objective does not return shape (n,).
    """
    vjp, f = make_vjp(objective)(x)
    if onp.shape(f) != (x.shape[0],):
        raise ValueError(f"objective must map (n, d) to (n,) = ({x.shape[0]},), "
                         f"got {onp.shape(f)}")
    return onp.asarray(f, dtype=float), onp.asarray(vjp(onp.ones_like(f)), dtype=float)


def hessians(objective, x):
    """Per-problem Hessians ∇²f_j(x_j): (n, d, d), from d Hessian-vector products.

    Rows are independent, so the product with a basis vector e_i broadcast over the batch gives
    column i of every problem's Hessian in one reverse pass of the gradient.
    """
    n, d = x.shape
    vjp_g, _ = make_vjp(lambda z: make_vjp(objective)(z)[0](onp.ones(n)))(x)
    return onp.stack([onp.asarray(vjp_g(onp.broadcast_to(onp.eye(d)[i], (n, d))))
                      for i in range(d)], axis=-1)
