"""Supervised meta-training: backpropagate the meta-loss through the unrolled optimizer (SPEC §7).

The blog's first approach — and Andrychowicz et al.'s — which fits the training functions but on
unseen ones "started off reasonably, but quickly diverged". It trains the same policy on the
same features as GPS, so the two differ only in how they are trained::

    J(θ) = (1 / (M·T)) Σ_m Σ_{t=1}^{T} f_m(x_t^m),   x_{t+1} = x_t + μ_θ(o_t),  x_0 fixed

∇_θ J is reverse-mode autograd through the whole unroll. With ``feature_grad="full"`` the
features' dependence on x_t (gradients, objective changes) is differentiated too, which brings in
Hessian-vector products of f; ``"stop"`` treats the observations as constants.
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

__all__ = ["Config", "SupervisedLog", "meta_objective", "fit_initial_whitening", "train"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Supervised meta-training settings; defaults are SPEC §7.3–7.4 [I]."""
    lr: float = 1e-3            # Adam step size on θ
    clip: float = 10.0          # global-norm clipping of ∇_θ J
    feature_grad: str = "full"  # "full" or "stop"
    max_skips: int = 50         # consecutive non-finite iterations before aborting
    H: int = 25                 # history length of the features
    variant: str = "code"       # feature variant ("code" or "paper")
    hidden: int = 50            # policy hidden units
    activation: str = "softplus"
    symmetric: bool = True      # reflection-odd policy, as GPS's default (README deviations)

    def __post_init__(self):
        if not self.lr > 0 or not self.clip > 0:
            raise ValueError(f"lr and clip must be > 0, got lr={self.lr}, clip={self.clip}")
        if self.feature_grad not in ("full", "stop"):
            raise ValueError(f"feature_grad must be 'full' or 'stop', got {self.feature_grad!r}")
        if not isinstance(self.max_skips, int) or self.max_skips < 1:
            raise ValueError(f"max_skips must be an integer >= 1, got {self.max_skips!r}")
        if self.variant not in features.VARIANTS:
            raise ValueError(f"variant must be one of {features.VARIANTS}, got {self.variant!r}")


class SupervisedLog(NamedTuple):
    """Per-iteration record of ``train``."""
    J: onp.ndarray          # (iterations,) meta-objective before the update (nan if non-finite)
    grad_norm: onp.ndarray  # (iterations,) ‖∇_θ J‖ before clipping
    skipped: onp.ndarray    # (iterations,) bool: update skipped (non-finite J or ∇_θ J)
    aborted: bool           # max_skips consecutive skips ended training early
    best_policy: object     # policy_lib.Policy with the lowest finite J seen (SPEC §7.4)
    best_iteration: int     # its iteration (-1 if no finite J was seen)


def _traced_value_and_grad(objective, x, feature_grad):
    """f (n,), g (n, d) at x; differentiable in x (nested autograd) unless ``feature_grad="stop"``."""
    if feature_grad == "stop":
        x = getval(x)
    vjp, f = make_vjp(objective)(x)
    return f, vjp(np.ones_like(f))


def meta_objective(net, policy, objective, x0, steps, *, H=25, variant="code",
                   feature_grad="full"):
    """J = mean over problems and t = 1..T of f(x_t) under x_{t+1} = x_t + μ_θ(o_t) (SPEC §7.1).

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

    Momentum is tuned on the same problems over SPEC §3.9's grid with horizon ``steps``
    (SPEC §7.3); observations of all T + 1 iterates are pooled.
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


def train(family, problems, x0, *, steps=40, iterations=1000, seed=0, config=Config(),
          policy=None, callback=None):
    """Supervised meta-training of the policy on the training problems with Adam (SPEC §7).

    Parameters
    ----------
    family : objectives.Family; problems : its data for M functions; x0 : (M, d)
    steps : unroll horizon T; iterations : Adam steps (full batch)
    seed : seeds the policy initialisation (ignored when ``policy`` is given)
    policy : optional starting Policy; by default a fresh one whitened by ``fit_initial_whitening``
    callback : optional ``callback(i, J, grad_norm, skipped)`` after each iteration

    Returns
    -------
    policy : the final Policy;  log : SupervisedLog
    """
    x0 = onp.asarray(x0, dtype=float)
    if x0.ndim != 2 or x0.shape[1] != family.dim:
        raise ValueError(f"x0 must have shape (M, {family.dim}), got {x0.shape}")
    for name, v in (("steps", steps), ("iterations", iterations)):
        if not isinstance(v, (int, onp.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    objective = functools.partial(family.loss, problems=problems)
    cfg = config
    if policy is None:
        d_obs = features.obs_dim(family.dim, cfg.H, cfg.variant)
        reflect = features.reflection(family.dim, cfg.H, cfg.variant) if cfg.symmetric else None
        policy = policy_lib.init(onp.random.default_rng(seed), d_obs, family.dim,
                                 hidden=cfg.hidden, activation=cfg.activation, reflect=reflect)
        policy = fit_initial_whitening(policy, objective, x0, steps, H=cfg.H, variant=cfg.variant)
    flat, unflatten = flatten(policy.net)
    J_and_grad = value_and_grad(lambda w: meta_objective(
        unflatten(w), policy, objective, x0, steps, H=cfg.H, variant=cfg.variant,
        feature_grad=cfg.feature_grad))
    flat, best_flat, log = _descend(J_and_grad, flat, iterations, cfg, callback)
    log = log._replace(best_policy=policy._replace(net=unflatten(best_flat)))
    return policy._replace(net=unflatten(flat)), log


def _descend(J_and_grad, flat, iterations, cfg, callback):
    """Adam on θ with clipping, skipping non-finite steps (SPEC §7.4): (θ, best θ, log)."""
    adam = optimizers.adam(cfg.lr)
    state = adam.init(flat[None])
    Js, norms, skipped, run_of_skips = [], [], [], 0
    best_flat, best_i = flat, -1
    for i in range(iterations):
        with onp.errstate(all="ignore"):
            J, grad = J_and_grad(flat)
        ok = bool(onp.isfinite(J) and onp.all(onp.isfinite(grad)))
        if ok and (best_i < 0 or J < Js[best_i]):
            best_flat, best_i = flat, i  # J is the objective of θ before this update
        grad, norm = _clipped(grad, cfg.clip) if ok else (grad, float("nan"))
        if ok:
            dx, state = adam.step(state, flat[None], None, grad[None])
            flat = flat + dx[0]
        run_of_skips = 0 if ok else run_of_skips + 1
        Js.append(float(J) if ok else float("nan")), norms.append(norm), skipped.append(not ok)
        if callback is not None:
            callback(i, Js[-1], norm, not ok)
        if run_of_skips >= cfg.max_skips:
            warnings.warn(f"supervised training aborted after {run_of_skips} consecutive "
                          f"non-finite iterations", RuntimeWarning)
            break
    log = SupervisedLog(J=onp.array(Js), grad_norm=onp.array(norms), skipped=onp.array(skipped),
                        aborted=run_of_skips >= cfg.max_skips, best_policy=None,
                        best_iteration=best_i)
    return flat, best_flat, log
