"""S-step of GPS: regress the neural policy onto the controllers' actions (docs/method.md (81)–(86)).

    min_θ (1/2B) Σ_b (μ̃_b − μ_θ(o_b))ᵀ P̃_b (μ̃_b − μ_θ(o_b))

over minibatches of all M·N·T sampled (observation, state) pairs, with targets μ̃ from the
controllers (BADMM: μ̃ = K_t x + k_t − ν_t G_t λ_k,t, the released code's form) and precisions
P̃ = w·G_t⁻¹ weighted by the BADMM weights ν. Adam (lr 1e-4, batch 25; the released code takes
20,000 steps per S-step, this project 5,000 by default).

The gradient of this loss for the one-hidden-layer network of ``policy`` is written out by hand
(``loss_and_grad``, checked against autograd in the tests), and Adam works in place: autograd's
per-call overhead made a 20,000-step S-step about 5× slower (docs/deviations.md).
"""
from typing import NamedTuple

import numpy as np

from lto_ref import policy as policy_lib

__all__ = ["AdamState", "adam_init", "flatten", "unflatten", "targets", "weights", "loss_and_grad", "regress",
           "policy_variance"]


class AdamState(NamedTuple):
    """Adam moments of the network's parameters, flattened in ``net`` order (W1, b1, W2, b2)."""
    m: np.ndarray  # (n_params,)
    v: np.ndarray  # (n_params,)
    t: int         # steps taken


def flatten(net):
    """The parameters of ``net`` in one vector, order W1, b1, W2, b2 (a new array)."""
    return np.concatenate([p.ravel() for layer in net for p in layer])


def unflatten(flat, net):
    """The network of the same shapes as ``net`` with parameters from ``flat`` (views)."""
    out, i = [], 0
    for W, b in net:
        W_new = flat[i:i + W.size].reshape(W.shape)
        i += W.size
        out.append((W_new, flat[i:i + b.size]))
        i += b.size
    return out


def adam_init(net):
    n = sum(p.size for layer in net for p in layer)
    return AdamState(m=np.zeros(n), v=np.zeros(n), t=0)


def targets(lg, X, *, nu=None, lam_k=None, form="code"):
    """Regression targets μ̃ (M, N, T, dU) and controller precisions P (M, T, dU, dU).

    BADMM (docs/method.md (81)–(82)), with the duals λ_k,t (λ_K is always zero and omitted):
      form="code"        μ̃ = K_t x + k_t − ν_t G_t λ_k,t   (released code)
      form="derivation"  μ̃ = K_t x + k_t − G_t λ_k,t / ν_t (the minimiser of the BADMM
                         Lagrangian's policy terms ν/2‖μ − Kx − k‖²_P + λᵀμ)
    Without duals (nu None) μ̃ = K_t x + k_t.
    """
    if form not in ("code", "derivation"):
        raise ValueError(f"form must be 'code' or 'derivation', got {form!r}")
    mu = np.einsum("mtij,mntj->mnti", lg.K, X) + lg.k[:, None]
    if nu is not None:
        G_lam = np.einsum("mtij,mtj->mti", lg.pol_covar, lam_k)           # (M, T, dU)
        scale = nu if form == "code" else 1.0 / nu
        mu = mu - (scale[..., None] * G_lam)[:, None]
    return mu, lg.inv


def weights(nu, N):
    """Per-sample weights from ν (M, T): normalised to mean 1, clipped at twice the median (docs/method.md (83)).

    Returns w (M, N, T).
    """
    w = np.broadcast_to(nu[:, None, :], (nu.shape[0], N, nu.shape[1])).astype(float)
    w = w * (w.size / w.sum())
    med = np.median(w[w > 1e-2])
    return np.minimum(w, 2 * med) / med


def _loss_and_grad_into(policy, grads, o, target, prec):
    """The loss of ``loss_and_grad``; its gradient is written into the arrays of ``grads``.

    The forward pass is ``policy_lib.forward`` with both halves of a symmetric policy stacked, so
    a policy's own outputs are an exact fixed point of the regression.
    """
    (W1, _), (W2, _) = policy.net
    (gW1, gb1), (gW2, gb2) = grads
    B = o.shape[0]
    mu, (a,), (h,) = policy_lib.forward(policy, o, stacked=True)          # a, h: (B or 2B, hid)
    err = target - mu                                                      # (B, dU)
    Pe = np.matmul(prec, err[:, :, None])[:, :, 0]                         # P̃_b e_b
    d_mu = Pe * (-1.0 / B)                                                 # ∂loss/∂μ
    d_out = d_mu if policy.reflect is None else np.concatenate([0.5 * d_mu, -0.5 * d_mu])
    da = np.dot(d_out, W2.T) * policy_lib.activation_slopes(a, policy.activation)[0]
    g_white = np.dot(o.T, da[:B])                                          # ∂loss/∂W₁_white
    if policy.reflect is not None:
        g_white += policy.reflect[:, None] * np.dot(o.T, da[B:])
    da.sum(axis=0, out=gb1)
    np.multiply(policy.scale[:, None], g_white, out=gW1)                   # chain rule back
    gW1 += np.outer(policy.shift, gb1)                                     # to W₁ and b₁
    np.dot(h.T, d_out, out=gW2)
    d_out.sum(axis=0, out=gb2)
    return 0.5 * np.sum(err * Pe) / B


def loss_and_grad(policy, o, target, prec):
    """Weighted squared error ½ mean_b (μ̃_b − μ_b)ᵀ P̃_b (μ̃_b − μ_b) and its gradient in θ.

    policy : Policy (network, whitening, reflection, activation);  o : (B, dO) observations;
    target : (B, dU);  prec : (B, dU, dU).  Returns (loss, [(gW1, gb1), (gW2, gb2)]).
    """
    grads = [(np.empty(np.shape(W)), np.empty(np.shape(b))) for W, b in policy.net]
    return _loss_and_grad_into(policy, grads, o, target, prec), grads


def _adam_update(flat, grad, m, v, t, lr, b1, b2, eps, tmp, step):
    """One in-place Adam step on ``flat`` (t ≥ 1 counts this step): the update of
    ``optimizers.adam`` with its bias corrections folded into the step size (same up to rounding).
    """
    m *= b1                                       # m ← β₁ m + (1 − β₁) g
    m += np.multiply(grad, 1 - b1, out=tmp)
    v *= b2                                       # v ← β₂ v + (1 − β₂) g²
    np.multiply(grad, grad, out=tmp)
    tmp *= 1 - b2
    v += tmp
    np.sqrt(v, out=tmp)                           # Δ = −lr m̂/(√v̂ + ε), m̂ = m/(1 − β₁ᵗ), …
    tmp *= 1.0 / np.sqrt(1 - b2 ** t)
    tmp += eps
    np.divide(m, tmp, out=step)
    step *= lr / (1 - b1 ** t)
    flat -= step


def regress(rng, policy, O, target, prec, *, state=None, steps=20000, batch=25, lr=1e-4,
            b1=0.9, b2=0.999, eps=1e-8):
    """Adam on the policy network over minibatches of the pairs (docs/method.md (81)–(86)).

    Parameters
    ----------
    rng : np.random.Generator for the reshuffles;  policy : Policy (whitening already fitted)
    O : (P, dO) observations;  target : (P, dU);  prec : (P, dU, dU) weighted precisions
    state : AdamState carried across S-steps (a new one if None)

    Returns
    -------
    policy with the new network, AdamState, losses (steps,) of the minibatches

    The loop works in place on arrays it allocates (parameters, gradient, moments, with the
    network's layers as views into them): 20,000 steps are dominated by per-call overhead.
    """
    flat = flatten(policy.net)                                            # a new array
    grad = np.empty_like(flat)
    view, grads = policy._replace(net=unflatten(flat, policy.net)), unflatten(grad, policy.net)
    state = adam_init(policy.net) if state is None else state
    m, v, t = state.m.copy(), state.v.copy(), state.t
    tmp, step = np.empty_like(flat), np.empty_like(flat)
    n, order, pos, losses = len(O), rng.permutation(len(O)), 0, np.empty(steps)
    for i in range(steps):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + batch]
        pos += batch
        losses[i] = _loss_and_grad_into(view, grads, O[idx], target[idx], prec[idx])
        t += 1
        _adam_update(flat, grad, m, v, t, lr, b1, b2, eps, tmp, step)
    new_net = [(W.copy(), b.copy()) for W, b in view.net]
    return policy._replace(net=new_net), AdamState(m=m, v=v, t=t), losses


def policy_variance(prec, w):
    """Σ^π_j = Σ_i w_i / Σ_i w_i (P_i)_jj, the inverse weighted mean precision (docs/method.md (81)–(86)).

    prec : (P, dU, dU), w : (P,)  ->  (dU,)
    """
    return np.sum(w) / np.einsum("p,pjj->j", w, prec)

