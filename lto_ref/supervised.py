"""Supervised meta-training: backpropagate the meta-loss through the unrolled optimizer (docs/method.md §8).

The blog's first approach — and Andrychowicz et al.'s — which fits the training functions but on
unseen ones "started off reasonably, but quickly diverged". It trains the same policy on the
same features as GPS, so the two differ only in how they are trained::

    J(θ) = (1 / (M·T)) Σ_m Σ_{t=1}^{T} f_m(x_t^m),   x_{t+1} = x_t + μ_θ(o_t),  x_0 fixed

∇_θ J is reverse-mode autograd through the whole unroll. With ``feature_grad="full"`` the
features' dependence on x_t (gradients, objective changes) is differentiated too, which brings in
Hessian-vector products of f; ``"stop"`` treats f and ∇f as constants, as Andrychowicz et al. do
(no second derivatives of f), while the step blocks of the observation, the policy's own past
outputs, stay differentiated (docs/method.md (90)).
"""
import dataclasses
import functools
import warnings
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp, value_and_grad
from autograd.misc.flatten import flatten
from autograd.tracer import getval

from lto_ref import features, optimizers, policy as policy_lib, rollout

__all__ = ["Config", "LogRow", "SupervisedLog", "meta_objective", "fit_initial_whitening", "descend",
           "train", "plateaued"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Supervised meta-training settings (docs/method.md §8); quick variants by ``replace``."""
    T: int = 40                 # unroll horizon of the meta-objective
    iterations: int = 1000      # Adam steps on θ (full batch)
    lr: float = 1e-3            # Adam step size on θ
    clip: float = 10.0          # global-norm clipping of ∇_θ J
    feature_grad: str = "full"  # "full" or "stop"
    max_skips: int = 50         # consecutive non-finite iterations before aborting
    H: int = 25                 # history length of the features
    variant: str = "code"       # feature variant ("code" or "paper")
    hidden: int = 50            # policy hidden units
    activation: str = "softplus"
    symmetric: bool = False     # paper 1's plain MLP; True: the reflection-odd policy (35)

    def __post_init__(self):
        for name in ("T", "iterations", "max_skips"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0 or not self.clip > 0:
            raise ValueError(f"lr and clip must be > 0, got lr={self.lr}, clip={self.clip}")
        if self.feature_grad not in ("full", "stop"):
            raise ValueError(f"feature_grad must be 'full' or 'stop', got {self.feature_grad!r}")
        if self.activation not in policy_lib.ACTIVATIONS:
            raise ValueError(f"activation must be one of {policy_lib.ACTIVATIONS}, "
                             f"got {self.activation!r}")
        if self.variant not in features.VARIANTS:
            raise ValueError(f"variant must be one of {features.VARIANTS}, got {self.variant!r}")


class LogRow(NamedTuple):
    """One iteration's record."""
    J: float            # meta-objective of θ before the update (nan if non-finite)
    grad_norm: float    # ‖∇_θ J‖ before clipping (nan if non-finite)
    skipped: bool       # update skipped (non-finite J or ∇_θ J)


class SupervisedLog(NamedTuple):
    """Per-iteration arrays of ``train`` (fewer than ``iterations`` rows if it aborted)."""
    J: onp.ndarray          # (I,)
    grad_norm: onp.ndarray  # (I,)
    skipped: onp.ndarray    # (I,) bool


def _traced_value_and_grad(objective, x, feature_grad):
    """f (n,), g (n, d) at x; differentiable in x (nested autograd) unless ``feature_grad="stop"``."""
    if feature_grad == "stop":
        x = getval(x)
    vjp, f = make_vjp(objective)(x)
    return f, vjp(np.ones_like(f))


def meta_objective(net, policy, objective, x0, steps, *, H=25, variant="code",
                   feature_grad="full"):
    """J = mean over problems and t = 1..T of f(x_t) under x_{t+1} = x_t + μ_θ(o_t) (docs/method.md (90)).

    Parameters
    ----------
    net : the differentiated network θ (``policy.net`` structure)
    policy : Policy supplying the whitening and activation
    objective : x (n, d) -> (n,);  x0 : (n, d);  steps : T >= 1
    """
    opt = optimizers.learned(policy._replace(net=net), H=H, variant=variant)
    x, state, total = x0, opt.init(x0), 0.0
    f, g = _traced_value_and_grad(objective, x, feature_grad)
    for _ in range(steps):
        dx, state = opt.step(state, x, f, g)
        x = x + dx
        f, g = _traced_value_and_grad(objective, x, feature_grad)
        total = total + np.sum(objective(x) if feature_grad == "stop" else f)
    return total / (steps * np.shape(x0)[0])


def fit_initial_whitening(policy, objective, x0, steps, *, H=25, variant="code"):
    """``policy`` whitened on observations of tuned-momentum rollouts of the training problems.

    Momentum is tuned on the same problems by score (23) over the grid (24) of docs/method.md, with
    horizon ``steps``; observations of all T + 1 iterates are pooled.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # grid-edge notices are irrelevant here
        best, _ = rollout.tune(optimizers.momentum, rollout.default_grid("momentum"),
                               objective, x0, steps)
    trace = rollout.run(optimizers.momentum(**best), objective, x0, steps)
    _, obs = features.observe_trace(trace.xs, trace.fs, trace.gs, H, variant)
    return policy_lib.with_whitening(policy, obs)


def _clipped(grad, clip):
    norm = float(onp.sqrt(onp.sum(grad ** 2)))
    return grad * min(1.0, clip / norm) if norm > 0 else grad, norm


def train(family, problems, x0, config=Config(), seed=0, *, callback=None, plateau=None):
    """Supervised meta-training of the policy on the training problems with Adam (docs/method.md §8).

    Parameters
    ----------
    family : objectives.Family;  problems : its data for M functions;  x0 : (M, d)
    config : Config (horizon ``T``, ``iterations``, …);  seed : seeds the policy initialisation
    callback : optional ``callback(iteration, LogRow)`` after each iteration
    plateau : optional (chunk, tol): stop before ``config.iterations`` once ``plateaued(J,
        chunk, tol)`` (the number of rows of the log says how many iterations ran)

    Returns
    -------
    policy : the final Policy (whitened on tuned-momentum rollouts, ``fit_initial_whitening``)
    log : SupervisedLog, arrays indexed by iteration

    Raises
    ------
    ValueError : x0 of the wrong shape, a bad ``plateau``.
    """
    x0 = onp.asarray(x0, dtype=float)
    _check_plateau(plateau)
    if x0.ndim != 2 or x0.shape[1] != family.dim:
        raise ValueError(f"x0 must have shape (M, {family.dim}), got {x0.shape}")
    objective = functools.partial(family.loss, problems=problems)
    cfg = config
    d_obs = features.obs_dim(family.dim, cfg.H, cfg.variant)
    reflect = features.reflection(family.dim, cfg.H, cfg.variant) if cfg.symmetric else None
    policy = policy_lib.init(onp.random.default_rng(seed), d_obs, family.dim, hidden=cfg.hidden,
                             activation=cfg.activation, reflect=reflect)
    policy = fit_initial_whitening(policy, objective, x0, cfg.T, H=cfg.H, variant=cfg.variant)
    flat, unflatten = flatten(policy.net)
    J_and_grad = value_and_grad(lambda w: meta_objective(
        unflatten(w), policy, objective, x0, cfg.T, H=cfg.H, variant=cfg.variant,
        feature_grad=cfg.feature_grad))
    flat, log = descend(J_and_grad, flat, cfg, callback, plateau)
    return policy._replace(net=unflatten(flat)), log


def descend(J_and_grad, flat, cfg, callback=None, plateau=None):
    """Adam on θ with global-norm clipping, skipping non-finite steps: (θ, SupervisedLog).

    J_and_grad : θ (P,) -> (J, ∇_θ J (P,));  flat : θ₀ (P,);  cfg : Config (iterations, lr,
    clip, max_skips). A non-finite J or gradient leaves θ and Adam's moments unchanged; after
    ``max_skips`` consecutive skips training stops with a RuntimeWarning. With ``plateau`` =
    (chunk, tol) it also stops once ``plateaued(J so far, chunk, tol)``.
    """
    _check_plateau(plateau)
    adam = optimizers.adam(cfg.lr)
    state = adam.init(flat[None])
    rows, run_of_skips = [], 0
    for i in range(cfg.iterations):
        with onp.errstate(all="ignore"):
            J, grad = J_and_grad(flat)
        ok = bool(onp.isfinite(J) and onp.all(onp.isfinite(grad)))
        grad, norm = _clipped(grad, cfg.clip) if ok else (grad, float("nan"))
        if ok:
            dx, state = adam.step(state, flat[None], None, grad[None])
            flat = flat + dx[0]
        run_of_skips = 0 if ok else run_of_skips + 1
        rows.append(LogRow(J=float(J) if ok else float("nan"), grad_norm=norm, skipped=not ok))
        if callback is not None:
            callback(i, rows[-1])
        if plateau is not None and plateaued(onp.array([r.J for r in rows]), *plateau):
            break
        if run_of_skips >= cfg.max_skips:
            warnings.warn(f"supervised training aborted after {run_of_skips} consecutive "
                          f"non-finite iterations", RuntimeWarning)
            break
    return flat, SupervisedLog(*(onp.array([getattr(r, f) for r in rows], dtype=dtype)
                                 for f, dtype in zip(LogRow._fields, (float, float, bool))))


def plateaued(J, chunk, tol):
    """Whether supervised training has converged: at the end of a chunk of ``chunk`` iterations,
    the mean finite J over it is less than ``tol`` (relative) below the previous chunk's::

        (J̄_prev − J̄_last) / |J̄_prev| < tol,   J̄ = mean of the finite J of a chunk

    J : (I,) the meta-objective per iteration so far (nan where skipped). False unless I is a
    positive multiple of ``chunk`` and I >= 2·chunk, and while either chunk has no finite J.
    A chunk worse than the one before counts as converged. Raises ValueError for chunk not an
    integer >= 1 or tol not a finite number >= 0.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, onp.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < onp.inf:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    J = onp.asarray(J, dtype=float)
    if J.size < 2 * chunk or J.size % chunk:
        return False
    last, prev = J[-chunk:], J[-2 * chunk:-chunk]
    last, prev = last[onp.isfinite(last)], prev[onp.isfinite(prev)]
    if last.size == 0 or prev.size == 0:
        return False
    return bool(prev.mean() - last.mean() < tol * abs(prev.mean()))


def _check_plateau(plateau):
    """ValueError unless ``plateau`` is None or a valid (chunk, tol) of ``plateaued``."""
    if plateau is None:
        return
    if not isinstance(plateau, (tuple, list)) or len(plateau) != 2:
        raise ValueError(f"plateau must be None or (chunk, tol), got {plateau!r}")
    plateaued(onp.zeros(0), *plateau)
