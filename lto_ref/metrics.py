"""Comparison metrics over objective curves (docs/method.md (93)–(94), (95)).

Every function takes ``curves``, a dict ``{method name: fs}`` with ``fs : (T+1, n)`` the objective
value f_a(i) of method a at iteration i on test function f, all methods with the same shape, and
returns a dict ``{method name: (T+1,)}`` in the same key order::

    MoV_a(i) = (1/n) Σ_f [min_{b≠a} f_b(i) − f_a(i)]                margin of victory (paper)
    W_a(i)   = (1/n) Σ_f 1[a ∈ B_f(i)] / |B_f(i)|,  B_f(i) = argmin_b f_b(i)   win fraction (our choice)

Non-finite values (NaN, ±inf) are first replaced by the largest finite value of their function,
over all methods and iterations, i.e. a diverged run counts as the worst finite result seen on that
function; ``sanitize`` does this and returns how many values it replaced, so callers can report it.

References
----------
Li & Malik, "Learning to Optimize", ICLR 2017, §4 (margin of victory).
"""
import numpy as np

__all__ = ["sanitize", "margin_of_victory", "win_fraction", "diverged"]


def _stack(curves):
    """Validated curves as names and one float64 array F : (K, T+1, n)."""
    if not isinstance(curves, dict):
        raise ValueError("curves must be a dict {name: fs (T+1, n)}, "
                         f"got {type(curves).__name__}")
    if len(curves) < 2:
        raise ValueError(f"curves must hold at least 2 methods, got {len(curves)}")
    names = list(curves)
    arrays = [np.asarray(curves[name], dtype=np.float64) for name in names]
    shape = arrays[0].shape
    for name, fs in zip(names, arrays):
        if fs.ndim != 2 or fs.shape[0] < 1 or fs.shape[1] < 1:
            raise ValueError(f"curves[{name!r}] must have shape (T+1, n) with T+1, n >= 1, "
                             f"got {fs.shape}")
        if fs.shape != shape:
            raise ValueError(f"curves[{name!r}] must have the shape of curves[{names[0]!r}], "
                             f"{shape}, got {fs.shape}")
    return names, np.stack(arrays)


def _sanitized_stack(curves):
    """Names, F : (K, T+1, n) with non-finite values replaced, and the number replaced."""
    names, F = _stack(curves)
    finite = np.isfinite(F)                                        # (K, T+1, n)
    empty = ~np.any(finite, axis=(0, 1))                           # (n,)
    if np.any(empty):
        raise ValueError(f"curves: test function(s) {np.flatnonzero(empty).tolist()} have no "
                         "finite value in any method or iteration")
    worst = np.max(np.where(finite, F, -np.inf), axis=(0, 1))      # (n,) largest finite f
    return names, np.where(finite, F, worst), int(np.sum(~finite))


def sanitize(curves):
    """Replace non-finite values by their function's largest finite value, and count them.

    f_a(i; f) ← max {f_b(j; f) finite : all methods b, iterations j}  wherever f_a(i; f) is not
    finite (docs/method.md (93)–(94)).

    Parameters
    ----------
    curves : dict of str -> array_like (T+1, n)
        Objective values per method; at least 2 methods, all of the same shape.

    Returns
    -------
    clean : dict of str -> ndarray (T+1, n)
        New float64 arrays, all finite; the input is not modified.
    n_replaced : int
        Number of values replaced, over all methods.

    Raises
    ------
    ValueError
        If ``curves`` is not a dict of at least 2 equal-shaped 2-D arrays, or a test function has
        no finite value at all.
    """
    names, F, n_replaced = _sanitized_stack(curves)
    return dict(zip(names, F)), n_replaced


def margin_of_victory(curves):
    """Mean margin of victory of each method over the others (docs/method.md (93)–(94)).

    MoV_a(i) = (1/n) Σ_f [min_{b≠a} f_b(i; f) − f_a(i; f)], positive when a beats every other
    method. Non-finite values are replaced first (see ``sanitize``, which also counts them).

    Parameters
    ----------
    curves : dict of str -> array_like (T+1, n)
        Objective values per method; at least 2 methods, all of the same shape.

    Returns
    -------
    dict of str -> ndarray (T+1,)
        MoV_a for each method a, in the key order of ``curves``.

    Raises
    ------
    ValueError
        As ``sanitize``.

    References
    ----------
    Li & Malik, "Learning to Optimize", ICLR 2017, §4.
    """
    names, F, _ = _sanitized_stack(curves)
    return {name: np.mean(np.min(np.delete(F, a, axis=0), axis=0) - F[a], axis=-1)
            for a, name in enumerate(names)}


def win_fraction(curves):
    """Fraction of test functions on which each method is lowest, ties splitting the credit (docs/method.md (95)).

    W_a(i) = (1/n) Σ_f 1[a ∈ B_f(i)] / |B_f(i)|, B_f(i) = {b : f_b(i; f) = min_c f_c(i; f)}, so
    Σ_a W_a(i) = 1. Exact ties only. Non-finite values are replaced first (see ``sanitize``).

    Parameters
    ----------
    curves : dict of str -> array_like (T+1, n)
        Objective values per method; at least 2 methods, all of the same shape.

    Returns
    -------
    dict of str -> ndarray (T+1,)
        W_a for each method a, in the key order of ``curves``.

    Raises
    ------
    ValueError
        As ``sanitize``.
    """
    names, F, _ = _sanitized_stack(curves)
    best = F == np.min(F, axis=0)                                  # (K, T+1, n) a ∈ B_f(i)
    credit = best / np.sum(best, axis=0)                           # (K, T+1, n)
    return dict(zip(names, np.mean(credit, axis=-1)))


def diverged(trace, x0):
    """docs/method.md (92): a run diverged if it met a non-finite value, ends above its start
    (f(x_T) > f(x_0)) or ends far away (‖x_T‖ > 100(1 + ‖x_0‖)).

    trace : rollout.Trace (xs (T+1, n, d), fs (T+1, n), diverged (n,));  x0 : (n, d)
    Returns (n,) bool.
    """
    big = np.linalg.norm(trace.xs[-1], axis=-1) > 100 * (1 + np.linalg.norm(x0, axis=-1))
    with np.errstate(invalid="ignore"):
        return trace.diverged | ~np.isfinite(trace.fs[-1]) | (trace.fs[-1] > trace.fs[0]) | big
