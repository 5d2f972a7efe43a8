"""Objective families of Learning to Optimize (Li & Malik, ICLR 2017, §4; docs/method.md §2).

A *family* is a distribution over objective functions. ``family.sample(rng, n)`` draws the data of
``n`` functions stacked on a leading axis, ``family.init(rng, n)`` draws their starting points
x0 ~ N(0, I_d) and ``family.loss(x, problems)`` evaluates all ``n`` objectives at once::

    x : (n, d)  ->  f : (n,)          problem j's loss depends only on row j of x

so ``grad(lambda x: np.sum(loss(x, problems)))`` returns every per-problem gradient in one call.

Families (d = number of optimisation variables):

================================  ====  =========================================  ========
factory                           d     objective                                  convex
================================  ====  =========================================  ========
``logistic_regression()``         4     (1/N) Σ softplus(z) − y z + (λ/2)‖w‖²      yes
``robust_linear_regression()``    4     (1/N) Σ r² / (c² + r²)  (Geman–McClure)    no
``two_layer_net()``               12    2-2-2 ReLU net, softmax cross-entropy      no
``logistic_regression_2d()``      2     LR with one feature (blog's 2-D figure)    yes
``quadratic(dim)``                dim   ½ (x − x*)ᵀ A (x − x*) + f_off             yes
================================  ====  =========================================  ========
"""
import functools
from typing import Callable, NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import logsumexp

from lto_ref import closed_form

__all__ = [
    "Family", "Dataset", "Quadratic", "logistic_regression", "robust_linear_regression",
    "two_layer_net", "logistic_regression_2d", "quadratic", "family_by_name", "split_data",
    "subset", "TRAIN", "TEST", "VALIDATION", "FAMILIES",
]

TRAIN, TEST = 0, 1  # split ids of docs/method.md (10)
VALIDATION = 2      # (our choice) functions of the training distribution for design choices, never test


class Family(NamedTuple):
    """An objective family: a distribution over batched objective functions.

    Fields
    ------
    name : str
    family_id : int            -- seeds a family's data streams (docs/method.md (10))
    dim : int                  -- d, the number of optimisation variables
    sample : (rng, n) -> problems      -- data of n functions, leading axis n
    init : (rng, n) -> x0 (n, d)       -- starting points, x0 ~ N(0, I_d)
    loss : (x (n, d), problems) -> f (n,)
    hessian : (x (n, d), problems) -> (n, d, d) in closed form, or None (autograd's, slower)
    """
    name: str
    family_id: int
    dim: int
    sample: Callable
    init: Callable
    loss: Callable
    hessian: Callable = None


class Dataset(NamedTuple):
    """Data of n supervised-learning objectives (LR, RR, NN, LR2D)."""
    a: onp.ndarray  # (n, N, d_in) data points a_i
    y: onp.ndarray  # (n, N) targets: 0/1 labels (LR), reals (RR), class ids (NN)


class Quadratic(NamedTuple):
    """Data of n quadratics f(x) = ½ (x − x*)ᵀ A (x − x*) + f_off."""
    A: onp.ndarray       # (n, d, d) symmetric positive definite
    x_star: onp.ndarray  # (n, d) minimiser
    f_off: onp.ndarray   # (n,) minimum value


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, onp.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _check_x(x, dim, n):
    if x.ndim != 2 or x.shape != (n, dim):
        raise ValueError(f"x must have shape (n, d) = ({n}, {dim}), got {tuple(x.shape)}")


def _make_init(dim):
    def init(rng, n):
        """x0 ~ N(0, I_d), shape (n, d) (released code)."""
        _check_n(n)
        return rng.standard_normal((n, dim))
    return init


def _stacked(sample_one):
    """sample(rng, n): n functions drawn one after another by sample_one(rng) -> (a, y)."""
    def sample(rng, n):
        _check_n(n)
        a, y = zip(*(sample_one(rng) for _ in range(n)))
        return Dataset(a=onp.stack(a), y=onp.stack(y))
    return sample


def _gaussian_points(rng, mean_dim, n_points):
    """One cluster a = μ + A ε, μ ~ N(0, I), A_ij ~ N(0, 1): (n_points, mean_dim); draw order μ, A, ε."""
    mu = rng.standard_normal(mean_dim)
    A = rng.standard_normal((mean_dim, mean_dim))
    eps = rng.standard_normal((n_points, mean_dim))
    return mu + eps @ A.T


def _sample_two_gaussians(rng, n, d_in, per_class=50):
    """LR / LR2D data: class c ∈ {0, 1}, 50 points each from N(μ_c, A_c A_cᵀ) (docs/method.md (4),
    §2.4)."""
    _check_n(n)
    a = onp.stack([onp.concatenate([_gaussian_points(rng, d_in, per_class) for _ in range(2)])
                   for _ in range(n)])
    y = onp.tile(onp.repeat([0.0, 1.0], per_class), (n, 1))
    return Dataset(a=a, y=y)


def _logistic_loss(x, data, lam):
    """f(w, b) = (1/N) Σ_i [softplus(z_i) − y_i z_i] + (λ/2)‖w‖², z_i = wᵀa_i + b; x = [w, b]."""
    w, b = x[:, :-1], x[:, -1]                                   # (n, d_in), (n,)
    z = np.matmul(data.a, w[:, :, None])[:, :, 0] + b[:, None]   # (n, N); matmul: einsum is slow
    return np.mean(np.logaddexp(0.0, z) - data.y * z, axis=1) + 0.5 * lam * np.sum(w ** 2, axis=1)


def logistic_regression(lam=5e-4, *, d_in=3, n_points=100):
    """Regularised logistic regression, d = d_in + 1 (docs/method.md (3)–(4); paper 1 §4).

    f(w, b) = −(1/N) Σ_i [y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))] + (λ/2)‖w‖², the bias
    unregularised. Data: two classes of N/2 points, a ~ N(μ_c, A_c A_cᵀ), μ_c ~ N(0, I),
    A_c entries ~ N(0, 1) (released code).
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if n_points < 2 or n_points % 2:
        raise ValueError(f"n_points must be a positive even integer, got {n_points}")
    dim = d_in + 1

    def loss(x, problems):
        _check_x(x, dim, problems.a.shape[0])
        return _logistic_loss(x, problems, lam)

    return Family("logistic_regression", 0, dim,
                  lambda rng, n: _sample_two_gaussians(rng, n, d_in, n_points // 2),
                  _make_init(dim), loss)


def logistic_regression_2d(lam=5e-4, *, n_points=100):
    """Logistic regression with one feature and a bias, d = 2, x = [w, b] (docs/method.md §2.4).

    The blog's 2-D trajectory figure. Data: a = μ_c + s_c ε with μ_c, s_c, ε ~ N(0, 1).
    """
    fam = logistic_regression(lam, d_in=1, n_points=n_points)
    return fam._replace(name="logistic_regression_2d", family_id=3)


def robust_linear_regression(c=1.0, *, d_in=3, clusters=4, per_cluster=25):
    """Robust linear regression with the Geman–McClure M-estimator, d = d_in + 1 (docs/method.md (5)–(6)).

    f(w, b) = (1/N) Σ_i r_i² / (c² + r_i²), r_i = y_i − wᵀa_i − b. Non-convex. Data: 4 clusters
    of 25 points, a = μ_k + ε, y = w_kᵀa + b_k + η with μ_k, w_k ~ N(0, I), b_k, η ~ N(0, 1).
    """
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c}")
    dim = d_in + 1

    def sample_one(rng):
        a, y = [], []
        for _ in range(clusters):  # draw order: μ_k, points, w_k, b_k, noise (docs/method.md (10))
            mu = rng.standard_normal(d_in)
            pts = mu + rng.standard_normal((per_cluster, d_in))
            w_k, b_k = rng.standard_normal(d_in), rng.standard_normal()
            a.append(pts)
            y.append(pts @ w_k + b_k + rng.standard_normal(per_cluster))
        return onp.concatenate(a), onp.concatenate(y)

    def loss(x, problems):
        _check_x(x, dim, problems.a.shape[0])
        w, b = x[:, :-1], x[:, -1]
        r = problems.y - np.matmul(problems.a, w[:, :, None])[:, :, 0] - b[:, None]  # (n, N)
        r2 = r ** 2
        return np.mean(r2 / (c ** 2 + r2), axis=1)

    return Family("robust_linear_regression", 1, dim, _stacked(sample_one), _make_init(dim), loss)


def two_layer_net(lam=5e-4, *, d_in=2, hidden=2, classes=2, clusters=4, per_cluster=25):
    """Two-layer ReLU classifier with softmax cross-entropy, d = 12 by default (docs/method.md (7)–(8)).

    f = (1/N) Σ_i [logsumexp(z_i) − z_{i, y_i}] + (λ/2)(‖W‖² + ‖U‖²), z_i = U relu(W a_i + b) + c.
    x = [W (h×d_in), b (h), U (p×h), c (p)], row-major. Data: 4 clusters of 25 points with random
    means and covariances; one label per cluster, redrawn until not all labels are equal.
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if classes < 2 or clusters < 2:
        raise ValueError(f"classes and clusters must be >= 2, got {classes}, {clusters}")
    dim = hidden * d_in + hidden + classes * hidden + classes

    def sample_one(rng):
        a = onp.concatenate([_gaussian_points(rng, d_in, per_cluster) for _ in range(clusters)])
        labels = rng.integers(0, classes, size=clusters)
        while onp.all(labels == labels[0]):  # not all clusters in one class (paper)
            labels = rng.integers(0, classes, size=clusters)
        return a, onp.repeat(labels, per_cluster)

    def loss(x, problems):
        _check_x(x, dim, problems.a.shape[0])
        W, b, U, c = closed_form.unpack_net(x, d_in, hidden, classes)
        hid = np.maximum(np.matmul(problems.a, np.swapaxes(W, 1, 2)) + b[:, None, :], 0.0)
        z = np.matmul(hid, np.swapaxes(U, 1, 2)) + c[:, None, :]        # (n, N, p)
        onehot = problems.y[..., None] == onp.arange(classes)              # (n, N, p)
        nll = logsumexp(z, axis=2) - np.sum(z * onehot, axis=2)
        return np.mean(nll, axis=1) + 0.5 * lam * (np.sum(W ** 2, axis=(1, 2))
                                                   + np.sum(U ** 2, axis=(1, 2)))

    hessian = functools.partial(closed_form.two_layer_net_hessian, d_in=d_in, hidden=hidden,
                                classes=classes, lam=lam)
    return Family("two_layer_net", 2, dim, _stacked(sample_one), _make_init(dim), loss, hessian)


def quadratic(dim=4, *, lam_min=0.1, lam_max=1.0, f_off=0.0):
    """Random convex quadratics f(x) = ½ (x − x*)ᵀ A (x − x*) + f_off, for tests (docs/method.md (9)).

    A = Q diag(λ) Qᵀ, Q Haar-orthogonal (QR with sign fix), λ_1 = lam_min, λ_d = lam_max, the
    others log-uniform in between (for dim = 1, A = [[lam_min]]); x* ~ N(0, I).
    ∇f = A (x − x*), ∇²f = A.
    """
    if not isinstance(dim, (int, onp.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not 0 < lam_min <= lam_max:
        raise ValueError(f"need 0 < lam_min <= lam_max, got lam_min={lam_min}, lam_max={lam_max}")

    def sample_one(rng):
        Q, R = onp.linalg.qr(rng.standard_normal((dim, dim)))
        Q = Q * onp.where(onp.diag(R) < 0, -1.0, 1.0)
        inner = onp.exp(rng.uniform(onp.log(lam_min), onp.log(lam_max), size=max(dim - 2, 0)))
        lams = onp.concatenate([[lam_min], inner, [lam_max]]) if dim > 1 else onp.array([lam_min])
        A = (Q * lams) @ Q.T
        return 0.5 * (A + A.T), rng.standard_normal(dim)

    def sample(rng, n):
        _check_n(n)
        A, x_star = zip(*(sample_one(rng) for _ in range(n)))
        return Quadratic(A=onp.stack(A), x_star=onp.stack(x_star), f_off=onp.full(n, float(f_off)))

    def loss(x, problems):
        _check_x(x, dim, problems.A.shape[0])
        r = x - problems.x_star
        return 0.5 * np.einsum("ni,nij,nj->n", r, problems.A, r) + problems.f_off

    return Family("quadratic", 4, dim, sample, _make_init(dim), loss)


_FACTORIES = {
    "logistic_regression": logistic_regression,
    "robust_linear_regression": robust_linear_regression,
    "two_layer_net": two_layer_net,
    "logistic_regression_2d": logistic_regression_2d,
    "quadratic": quadratic,
}
FAMILIES = tuple(_FACTORIES)   # the names family_by_name knows


def family_by_name(name, **kwargs):
    """The family called ``name`` (one of the factory names above), built with ``kwargs``."""
    if name not in _FACTORIES:
        raise ValueError(f"name must be one of {sorted(_FACTORIES)}, got {name!r}")
    return _FACTORIES[name](**kwargs)


def split_data(family, split, n, *, base_seed=0):
    """Data and starting points of a family's train (0), test (1) or validation (2) functions.

    One generator per (family, split): ``default_rng(SeedSequence([base_seed, family_id,
    split]))``; the data of all n functions are drawn first, then x0 (docs/method.md (10)).

    Returns
    -------
    problems : the family's data, leading axis n
    x0 : (n, d)
    """
    if isinstance(split, bool) or not isinstance(split, (int, onp.integer)) or split not in (0, 1, 2):
        raise ValueError(f"split must be 0 (train), 1 (test) or 2 (validation), got {split!r}")
    rng = onp.random.default_rng(onp.random.SeedSequence([base_seed, family.family_id, split]))
    problems = family.sample(rng, n)
    return problems, family.init(rng, n)


def subset(problems, idx):
    """The problems selected by ``idx`` (an index array or slice on the leading axis)."""
    return type(problems)(*(onp.asarray(field)[idx] for field in problems))
