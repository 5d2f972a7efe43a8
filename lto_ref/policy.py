"""The learned update formula π: an MLP from the observation to the step (paper 1, §3.6; docs/method.md §6).

    õ = o·scale + shift                    (whitening, fitted once, then frozen)
    h = φ(õ W₁ + b₁),  φ = softplus (paper) or ReLU (released code), 50 units
    μ_θ(o) = h W₂ + b₂                     (linear output, no scaling)
    π_θ(a | o) = N(μ_θ(o), diag(var))      (state-independent variance, for GPS)

A *symmetric* policy (our choice) (``init(..., reflect=R)``, R from ``features.reflection``) is the same
network made reflection-odd: μ(o) = ½[net(õ) − net(õ_R)], õ_R the whitened R·o. The step for the
mirrored history is then the mirrored step, μ(R·o) = −μ(o), and in particular μ = 0 when every
gradient and step is zero: a learned optimizer that stands still at a stationary point.

θ = ``net = [(W₁ (dO, h), b₁ (h,)), (W₂ (h, dU), b₂ (dU,))]`` is a plain list of tuples so that
autograd can differentiate it. The network acts on the last axis and broadcasts over any leading
axes, so the same code serves a coordinate-wise policy (paper 2).
"""
from typing import NamedTuple

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp

from lto_ref import io

__all__ = ["Policy", "init", "mean", "act", "forward", "first_layers", "activation_fn",
           "activation_slopes", "linearize", "fit_whitening", "with_whitening", "save", "load",
           "ACTIVATIONS"]

ACTIVATIONS = ("softplus", "relu")


class Policy(NamedTuple):
    """Everything needed to act: the network θ, the frozen whitening and the action variance."""
    net: list           # [(W1 (dO, h), b1 (h,)), (W2 (h, dU), b2 (dU,))], differentiated
    shift: np.ndarray   # (dO,) whitening bias = −mean·scale
    scale: np.ndarray   # (dO,) whitening scale = 1 / max(std, floor)
    var: np.ndarray     # (dU,) σ² of the Gaussian policy
    activation: str     # "softplus" or "relu"
    reflect: object = None  # (dO,) ±1 signs R of the mirrored observation (odd policy), or None


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def init(rng, d_obs, d_act, *, hidden=50, activation="softplus", weight_scale=0.01, var=0.01,
         reflect=None):
    """A fresh policy: weights i.i.d. N(0, weight_scale²), biases 0 (released code); identity whitening.

    Parameters
    ----------
    rng : np.random.Generator
    d_obs, d_act : dO and dU
    hidden : units of the hidden layer (50 (paper))
    var : initial action variance σ² (0.01 (released code))
    reflect : None (plain MLP (paper)) or (d_obs,) signs ±1 making the policy reflection-odd (our choice)
    """
    for name, v in (("d_obs", d_obs), ("d_act", d_act), ("hidden", hidden)):
        if not isinstance(v, (int, onp.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    _check_activation(activation)
    if not weight_scale >= 0 or not var > 0:
        raise ValueError(f"need weight_scale >= 0 and var > 0, got {weight_scale}, {var}")
    if reflect is not None:
        reflect = onp.asarray(reflect, dtype=float)
        if reflect.shape != (d_obs,) or not onp.all(onp.abs(reflect) == 1):
            raise ValueError(f"reflect must be None or ({d_obs},) signs ±1, got shape "
                             f"{reflect.shape}")
    W1 = weight_scale * rng.standard_normal((d_obs, hidden))
    W2 = weight_scale * rng.standard_normal((hidden, d_act))
    net = [(W1, onp.zeros(hidden)), (W2, onp.zeros(d_act))]
    return Policy(net=net, shift=onp.zeros(d_obs), scale=onp.ones(d_obs),
                  var=onp.full(d_act, float(var)), activation=activation, reflect=reflect)


def activation_fn(a, activation="softplus"):
    """φ(a): softplus log(1 + eᵃ) (paper) or ReLU max(a, 0) (released code), elementwise and differentiable."""
    return np.logaddexp(0.0, a) if activation == "softplus" else np.maximum(a, 0.0)


def activation_slopes(a, activation="softplus"):
    """φ'(a) and φ''(a), elementwise (plain arrays): σ(a) and σ(a)(1 − σ(a)) for softplus."""
    if activation == "softplus":
        s = 0.5 * (1.0 + onp.tanh(0.5 * a))                # σ(a), stable for any a
        return s, s * (1.0 - s)
    return (a > 0).astype(float), onp.zeros_like(a)


def first_layers(policy):
    """The first layer with the whitening folded in, one (W (dO, h), b (h,)) per half.

    õ W₁ + b₁ = o (scale·W₁) + (shift W₁ + b₁); the mirrored half of a symmetric policy reads
    õ_R = (R·o)·scale + shift, i.e. the weights R·(scale·W₁) with the same bias.
    """
    (W1, b1) = policy.net[0]
    W = policy.scale[:, None] * W1
    b = np.dot(policy.shift, W1) + b1
    return [(W, b)] if policy.reflect is None else [(W, b), (policy.reflect[:, None] * W, b)]


def forward(policy, obs, *, stacked=False):
    """The network's forward pass: (μ_θ(o), a, h), differentiable in ``policy.net``.

    mu : (..., dU), the mean step, ½[net(õ) − net(õ_R)] for a symmetric policy;
    a, h : lists with the first layer's pre-activations and activations, one (..., hidden) array
    per half (one half, or two for a symmetric policy). With ``stacked`` (obs (B, dO)) both halves
    go through the output layer as one (2B, hidden) product and a, h hold that one array — the
    S-step's batch; the two orders of evaluation agree up to rounding.
    """
    dO = np.shape(policy.net[0][0])[0]
    if np.shape(obs)[-1] != dO:
        raise ValueError(f"obs must have last dimension dO = {dO}, got shape {np.shape(obs)}")
    a = [np.matmul(obs, W) + b for W, b in first_layers(policy)]  # matmul: np.dot is slow on N-d
    if stacked:
        a = [np.concatenate(a)]
    h = [activation_fn(a_k, policy.activation) for a_k in a]
    W2, b2 = policy.net[1]
    out = [np.matmul(h_k, W2) + b2 for h_k in h]
    if stacked and policy.reflect is not None:
        B = np.shape(obs)[0]
        out = [out[0][:B], out[0][B:]]
    return (out[0] if len(out) == 1 else 0.5 * (out[0] - out[1])), a, h


def mean(policy, obs):
    """The deterministic step μ_θ(o): obs (..., dO) -> (..., dU) (used at test time).

    Symmetric policies: ½[net(õ) − net(õ_R)] with õ_R = (R·o)·scale + shift. The whitening is
    folded into the first layer, so a large batch of observations is read only by the matmul.
    """
    return forward(policy, obs)[0]


def act(policy, obs, noise):
    """A draw from π_θ(a | o) = N(μ_θ(o), diag(var)) with pre-drawn standard-normal ``noise``.

    obs : (..., dO), noise : (..., dU)  ->  a = μ_θ(o) + √var · noise, (..., dU)
    """
    mu = mean(policy, obs)
    if np.shape(noise) != np.shape(mu):
        raise ValueError(f"noise must have shape {np.shape(mu)}, got {np.shape(noise)}")
    return mu + np.sqrt(policy.var) * noise


def linearize(policy, obs):
    """Per-sample linearisation of the mean: μ(o') ≈ μ(o) + J (o' − o).

    obs : (n, dO)  ->  mu : (n, dU), J : (n, dU, dO), J[i] = ∂μ(o_i)/∂o_i.
    Rows are independent, so one reverse pass per action dimension gives every J[i].
    """
    obs = onp.asarray(obs, dtype=float)
    if obs.ndim != 2:
        raise ValueError(f"obs must have shape (n, dO), got {obs.shape}")
    vjp, mu = make_vjp(lambda o: mean(policy, o))(obs)
    dU = mu.shape[-1]
    J = onp.stack([vjp(onp.broadcast_to(onp.eye(dU)[j], mu.shape)) for j in range(dU)], axis=1)
    return onp.asarray(mu), J


def fit_whitening(obs, floor=1e-3):
    """Per-dimension whitening of observations: scale = 1/max(std, floor), shift = −mean·scale.

    obs : (..., dO), pooled over all leading axes  ->  shift (dO,), scale (dO,)  (released code)
    """
    obs = onp.asarray(obs, dtype=float).reshape(-1, onp.shape(obs)[-1])
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    if not onp.all(onp.isfinite(obs)):
        raise ValueError("obs must be finite to fit a whitening")
    scale = 1.0 / onp.maximum(obs.std(axis=0), floor)
    return -obs.mean(axis=0) * scale, scale


def with_whitening(policy, obs, floor=1e-3):
    """``policy`` with its whitening fitted on ``obs`` (..., dO); network and variance unchanged."""
    shift, scale = fit_whitening(obs, floor)
    return policy._replace(shift=shift, scale=scale)


def save(path, policy, **meta):
    """Write ``policy`` to ``path``.npz + ``path``.json (atomic; see ``lto_ref.io``).

    ``meta`` (JSON-serialisable) records how it was made: family, feature variant, H, seed,
    training method, ...; the policy's own sizes and activation are added.
    """
    (W1, b1), (W2, b2) = policy.net
    arrays = dict(W1=W1, b1=b1, W2=W2, b2=b2, shift=policy.shift, scale=policy.scale,
                  var=policy.var)
    if policy.reflect is not None:
        arrays["reflect"] = policy.reflect
    record = dict(meta, kind="policy", activation=policy.activation, d_obs=int(onp.shape(W1)[0]),
                  hidden=int(onp.shape(W1)[1]), d_act=int(onp.shape(W2)[1]),
                  symmetric=policy.reflect is not None)
    return io.save_arrays(path, {k: onp.asarray(v, dtype=float) for k, v in arrays.items()}, record)


def load(path):
    """Read a policy written by ``save``: returns (Policy, meta). Malformed files raise ValueError."""
    arrays, meta = io.load_arrays(path)
    json_path = io.paths(path)[1]
    dO, h, dU = (meta.get(k) for k in ("d_obs", "hidden", "d_act"))
    activation = meta.get("activation")
    if not all(type(v) is int and v >= 1 for v in (dO, h, dU)):
        raise ValueError(f"{json_path}: not a policy file (d_obs, hidden, d_act must be "
                         f"positive integers, got {dO!r}, {h!r}, {dU!r})")
    shapes = dict(W1=(dO, h), b1=(h,), W2=(h, dU), b2=(dU,), shift=(dO,), scale=(dO,), var=(dU,))
    symmetric = meta.get("symmetric", False)
    if symmetric is True:
        shapes["reflect"] = (dO,)
    found = {k: arrays[k].shape if k in arrays else None for k in shapes}
    if (meta.get("kind") != "policy" or found != shapes or activation not in ACTIVATIONS
            or symmetric not in (True, False) or set(arrays) != set(shapes)):
        raise ValueError(f"{json_path}: policy arrays {found} do not match d_obs={dO}, hidden={h}, "
                         f"d_act={dU} (or kind/activation invalid)")
    a = {k: arrays[k].astype(float) for k in shapes}
    bad = [k for k, v in a.items() if not onp.isfinite(v).all()]
    if bad:
        raise ValueError(f"{io.paths(path)[0]}: non-finite values in {', '.join(bad)}")
    if symmetric and not onp.all(onp.abs(a["reflect"]) == 1):
        raise ValueError(f"{json_path}: reflect must hold signs ±1")
    net = [(a["W1"], a["b1"]), (a["W2"], a["b2"])]
    return Policy(net, a["shift"], a["scale"], a["var"], activation, a.get("reflect")), meta
