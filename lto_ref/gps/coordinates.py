"""Block-diagonal GPS for coordinate-wise optimizers (paper 2; docs/method.md §13).

Paper 2's controllers act on every coordinate j of the net being trained through its own state
s_t^j (``nn_features.phi_step``: [x^j; Φ1; Φ2^j; Φ3^j], 77 numbers) and share their parameters
within a coordinate group k (W1, b1, W2, b2, …)::

    u_t^j = K_t^k s_t^j + k_t^k + ε,   ε ~ N(0, G_t^k),   dX = 77, dU = 1            (119)

The dynamics, π̄ and cost models are block-diagonal in the same way, so each group is one
"condition" of the dense GPS machinery (``dynamics``, ``pibar``, ``lqr``, ``eta_search``), with
the N runs × K picked coordinates of the group as its samples: arrays (G, N·K, T, …). The next
state's x-entry is exact (x' = x + u), the other 76 entries are regressed.
"""
import functools
from typing import NamedTuple

import numpy as onp

from lto_ref import autodiff, nets, nn_features
from lto_ref.optimizers import Optimizer
from lto_ref.gps import cost as cost_lib, environment, lingauss

__all__ = ["structure", "pick", "blocks", "quadratize", "quadratize_steps", "curvature_ratio", "Runs", "simulate", "run_blocks",
           "PHI2_NOW", "initial_controllers", "controller_act", "controller_optimizer",
           "concatenate"]


def structure(dX=77):
    """(S (dX, dX + 1), E (dX, dX − 1)) with s_{t+1} = S [s_t; u_t] + E n_{t+1}: the x-entry is
    x + u, every other entry n_{t+1} = s_{t+1}[1:] is unknown (``dynamics.fit``)."""
    if isinstance(dX, bool) or not isinstance(dX, int) or dX < 2:
        raise ValueError(f"dX must be an integer >= 2, got {dX!r}")
    S = onp.zeros((dX, dX + 1))
    S[0, 0] = S[0, dX] = 1.0
    return S, onp.eye(dX)[:, 1:]


def pick(rng, groups, N, K):
    """(G, N, K) coordinates: for each group (start, stop) and run, K distinct coordinates of the
    group drawn uniformly (all of them, in random order, when the group has exactly K)."""
    sizes = [stop - start for start, stop in groups]
    if isinstance(K, bool) or not isinstance(K, int) or not 1 <= K <= min(sizes):
        raise ValueError(f"K must be an integer in [1, {min(sizes)}] (the smallest group), "
                         f"got {K!r}")
    return onp.array([[start + rng.choice(stop - start, K, replace=False) for _ in range(N)]
                      for start, stop in groups])


def blocks(states, actions, obs, fs, picks):
    """The picked coordinates' trajectories as G conditions of N·K samples each.

    Parameters
    ----------
    states : (N, T + 1, P, dX) s_t^j of N runs, t = 0 … T (only picked coordinates are read)
    actions : (N, T, P);  obs : (N, T, P, dO) the policy's observations (Ψ);  fs : (N, T + 1)
    picks : (G, N, K) from ``pick``

    Returns
    -------
    environment.Samples with X (G, N·K, T, dX), U (G, N·K, T, 1), O (G, N·K, T, dO),
    fs (G, N·K, T + 1) (each run's objective, repeated for its coordinates), new (G, N·K, T,
    dX − 1) = s_{t+1}[1:], diverged all False.
    """
    G, N, K = picks.shape
    runs = onp.arange(N)[None, :, None]
    X = states[runs, :, picks]                                   # (G, N, K, T + 1, dX)
    U = actions[runs, :, picks][..., None]
    O = obs[runs, :, picks]
    T = actions.shape[1]
    flat = lambda a: a.reshape((G, N * K) + a.shape[3:])         # noqa: E731
    return environment.Samples(
        X=flat(X[..., :T, :]), U=flat(U), O=flat(O),
        fs=onp.broadcast_to(fs[None, :, None], (G, N, K, T + 1)).reshape(G, N * K, T + 1),
        new=flat(X[..., 1:, 1:]), diverged=onp.zeros((G, N * K), dtype=bool))


def quadratize(X, f, grad, hdiag):
    """Per-group quadratic cost models of the true objective, separable over coordinates.

    Around each sample the cost of coordinate j is its share of f's diagonal expansion,
    c(s) = f + g_j (x − x̂) + ½ h_j (x − x̂)², x = s[0] (docs/method.md (120)); averaged over the
    group's samples (N·K) it gives, in z = [s; u],

        Cm[0, 0] = mean h,  cv[0] = mean(g − h x̂),  cc = mean(f − g x̂ + ½ h x̂²).

    X : (G, M, T, dX) the blocks' states;  f, grad, hdiag : (G, M, T) the true objective, its
    derivative and its exact second derivative (``nets.hessian_diagonal``) in each sample's
    coordinate at its x̂ = X[..., 0]. Returns a ``cost.QuadCost`` (G, T, dX + 1, …).
    """
    G, M, T, dX = X.shape
    if not f.shape == grad.shape == hdiag.shape == (G, M, T):
        raise ValueError(f"f, grad, hdiag must have shape {(G, M, T)}, got {f.shape}, "
                         f"{grad.shape}, {hdiag.shape}")
    x = X[..., 0]
    Cm = onp.zeros((G, T, dX + 1, dX + 1))
    cv = onp.zeros((G, T, dX + 1))
    Cm[..., 0, 0] = hdiag.mean(axis=1)
    cv[..., 0] = (grad - hdiag * x).mean(axis=1)
    cc = (f - grad * x + 0.5 * hdiag * x * x).mean(axis=1)
    return cost_lib.QuadCost(Cm=Cm, cv=cv, cc=cc)


def _fit_gradient(X, grad, ridge, pool):
    """(a (G, T, dX), b (G, T)): per group and step, the least-squares fit g ≈ aᵀ s + b of the
    samples' gradients on their states, pooled over steps t − pool … t + pool, the state
    standardised and ridge·(samples) added to the normal equations."""
    G, M, T, dX = X.shape
    a, b = onp.zeros((G, T, dX)), onp.zeros((G, T))
    for t in range(T):
        lo, hi = max(0, t - pool), min(T, t + pool + 1)
        S = X[:, :, lo:hi].reshape(G, -1, dX)
        g = grad[:, :, lo:hi].reshape(G, -1)
        mean, scale = S.mean(axis=1, keepdims=True), S.std(axis=1, keepdims=True) + 1e-12
        Z = (S - mean) / scale
        A = onp.einsum("gni,gnj->gij", Z, Z) + ridge * Z.shape[1] * onp.eye(dX)
        rhs = onp.einsum("gni,gn->gi", Z, g - g.mean(axis=1, keepdims=True))
        coef = onp.linalg.solve(A, rhs[..., None])[..., 0]
        a[:, t] = coef / scale[:, 0]
        b[:, t] = g.mean(axis=1) - onp.sum(a[:, t] * mean[:, 0], axis=1)
    return a, b


def quadratize_steps(X, f, grad, hdiag, *, kappa=None, scale=1.0, ridge=1e-3, pool=2):
    """Per-group quadratic costs of the steps: what a step u of a coordinate adds to the meta-loss
    Σ_t f(x_t), to second order, counted for every later step (docs/method.md (123))::

        c_t(s, u) = (T − t) [(aᵀ_t s + b_t) u + ½ h̄_t u²],

    with aᵀ_t s + b_t the gradient of f in the coordinate fitted on its state across the group's
    samples (``_fit_gradient``) and h̄_t their mean curvature times κ_t (``curvature_ratio``;
    ``kappa`` (T,), None for 1). ``scale`` multiplies the cost: the net's number of coordinates P
    puts it in units of the whole objective (what every coordinate taking such steps adds), the
    scale at which the BADMM defaults of paper 1 work. Unlike ``quadratize`` it does not
    depend on where a coordinate is, only on what its state says of its gradient, so pooling
    coordinates with different optima is consistent. X : (G, M, T, dX); f, grad, hdiag : (G, M, T)
    as in ``quadratize``. Returns a ``cost.QuadCost`` (G, T, dX + 1, …), u the last entry.
    """
    G, M, T, dX = X.shape
    if not f.shape == grad.shape == hdiag.shape == (G, M, T):
        raise ValueError(f"f, grad, hdiag must have shape {(G, M, T)}, got {f.shape}, "
                         f"{grad.shape}, {hdiag.shape}")
    a, b = _fit_gradient(X, grad, ridge, pool)
    w = scale * (T - onp.arange(T))[None, :]                          # (1, T)
    Cm = onp.zeros((G, T, dX + 1, dX + 1))
    cv = onp.zeros((G, T, dX + 1))
    kappa = onp.ones(T) if kappa is None else onp.asarray(kappa, dtype=float)
    Cm[..., dX, dX] = w * kappa * hdiag.mean(axis=1)
    Cm[..., dX, :dX] = Cm[..., :dX, dX] = w[..., None] * a
    cv[..., dX] = w * b
    return cost_lib.QuadCost(Cm=Cm, cv=cv, cc=f.mean(axis=1))


class Runs(NamedTuple):
    """N runs from one x⁽⁰⁾ on one minibatch stream, recorded at the picked coordinates."""
    states: onp.ndarray   # (N, T + 1, Q, dX) s_t^j of the Q = G·K picked coordinates of each run
    actions: onp.ndarray  # (N, T, Q) u_t^j
    obs: onp.ndarray      # (N, T, Q, 3) Ψ_t^j, the policy's observations
    fs: onp.ndarray       # (N, T + 1) true objective f(x_t)
    grad: onp.ndarray     # (N, T, Q) ∂f/∂x_j at x_t
    hdiag: onp.ndarray    # (N, T, Q) ∂²f/∂x_j² at x_t (``nets.hessian_diagonal``)
    picks: onp.ndarray    # (G, N, K) the picked coordinates; run n's column q = g·K + k
    f_cost: onp.ndarray = None  # (N, T + 1) the objective on the cost model's points
    gu: onp.ndarray = None      # (N, T) Σ_j ∂f/∂x_j u_j over every coordinate (those points)
    hu: onp.ndarray = None      # (N, T) Σ_j ∂²f/∂x_j² u_j² over every coordinate


def simulate(net, data, x0, act, carry, batches, picks, *, with_phi3=True, cost_rows=None,
             features=nn_features.PAPER):
    """Run N copies of the optimizer ``act`` from x0 (P,) for T steps on the minibatch stream
    ``batches`` (T + 1, B) (f̂_t, ∇f̂_t on batch t; batch T gives the last state), every
    coordinate acting through its state (119); record the picked coordinates.

    data : (inputs (N_data, d_in), labels (N_data,)), the training set (the true objective)
    act : (t, s (N, P, dX), Ψ (N, P, 3), carry) -> (u (N, P), carry), e.g. the controllers
    picks : (G, N, K) from ``pick``;  returns Runs.
    cost_rows : (R,) rows of the training set on which the cost model's derivatives (grad,
    hdiag) are taken, or None for all of it; fs is always the objective on all of it.
    features : the forms of Φ and Ψ (``nn_features.Features``).
    """
    inputs, labels = data
    G, N, K = picks.shape
    cols = onp.moveaxis(picks, 0, 1).reshape(N, G * K)              # run n's Q coordinates
    rows = onp.arange(N)[:, None]
    x = onp.repeat(onp.asarray(x0, dtype=float)[None], N, axis=0)
    phi_state, psi_state = nn_features.phi_init(x), nn_features.psi_init(x)
    sub = (inputs, labels) if cost_rows is None else (inputs[cost_rows], labels[cost_rows])
    cost = functools.partial(nets.loss, net, inputs=sub[0], labels=sub[1])
    rec = {k: [] for k in Runs._fields if k != "picks"}
    for t, batch in enumerate(batches):
        rec["fs"].append(nets.loss(net, x, inputs, labels))
        f_c, g_c = autodiff.value_and_grad(cost, x)
        rec["f_cost"].append(f_c)
        f, g = autodiff.value_and_grad(functools.partial(nets.minibatch_loss, net, inputs, labels,
                                                         batch=batch), x)
        s, phi_state = nn_features.phi_step(phi_state, x, f, g, with_phi3=with_phi3,
                                            features=features)
        rec["states"].append(s[rows, cols])
        if t == len(batches) - 1:
            break
        psi, psi_state = nn_features.psi_step(psi_state, x, f, g, features)
        u, carry = act(t, s, psi, carry)
        h_c = nets.hessian_diagonal(net, x, *sub)
        rec["actions"].append(u[rows, cols]), rec["obs"].append(psi[rows, cols])
        rec["grad"].append(g_c[rows, cols]), rec["hdiag"].append(h_c[rows, cols])
        rec["gu"].append(onp.sum(g_c * u, axis=1)), rec["hu"].append(onp.sum(h_c * u * u, axis=1))
        x = x + u
    out = {k: onp.stack(v, axis=1) for k, v in rec.items()}
    return Runs(**out, picks=picks)


def curvature_ratio(runs, pool=2, bounds=(1e-2, 1e4)):
    """κ_t (T,): how much the runs' whole steps curve f beyond the diagonal model, the observed
    second-order change 2 (f(x_{t+1}) − f(x_t) − gᵀu) over Σ_j h_j u_j², summed over the runs
    and the steps t − pool … t + pool, clipped to ``bounds`` (docs/method.md (124))."""
    second = 2.0 * (onp.diff(runs.f_cost, axis=1) - runs.gu)          # (N, T)
    T = second.shape[1]
    kappa = onp.ones(T)
    for t in range(T):
        lo, hi = max(0, t - pool), min(T, t + pool + 1)
        num, den = onp.nansum(second[:, lo:hi]), onp.nansum(runs.hu[:, lo:hi])
        kappa[t] = num / den if den > 0 and onp.isfinite(num) else 1.0
    return onp.clip(kappa, *bounds)


def run_blocks(runs):
    """``blocks`` of recorded Runs: group g's samples are each run's picks g·K … g·K + K − 1."""
    G, N, K = runs.picks.shape
    compact = onp.broadcast_to(onp.arange(G * K).reshape(G, 1, K), (G, N, K))
    return blocks(runs.states, runs.actions, runs.obs, runs.fs, compact)


PHI2_NOW = 1 + 25    # the entry of s holding Φ2's newest lag, ḡ_t / (|ḡ_{max(t−5, t mod 5)}| + 1)


def initial_controllers(gamma, G, T, dX=77, var=1e-5):
    """The first controllers, u = −γ_k s[PHI2_NOW] + N(0, var) for every coordinate: a step
    along the current normalised average gradient (docs/method.md (122)). gamma : scalar, (G,)
    (one per group) or (G, T) (one per group and step, e.g. ``nn_trainer.fit_gains``); var :
    scalar or (G, T)."""
    gamma = onp.asarray(gamma, dtype=float)
    gamma = onp.broadcast_to(gamma if gamma.ndim == 2 else onp.broadcast_to(gamma, (G,))[:, None],
                             (G, T))
    K = onp.zeros((G, T, 1, dX))
    K[:, :, 0, PHI2_NOW] = -gamma
    var = onp.broadcast_to(onp.asarray(var, dtype=float), (G, T))
    return lingauss.make(K, onp.zeros((G, T, 1)), var[:, :, None, None].copy())


def controller_act(lg, groups, rngs):
    """The ``act`` of ``simulate`` for controllers lg (G, T, 1, dX): every coordinate j of group
    k takes u = K_t^k s^j + k_t^k + chol_t^k ξ (119), run n's ξ ~ N(0, 1) drawn from rngs[n] (one
    generator per run, so that runs split over processes draw what they would together)."""
    def act(t, s, psi, carry):
        if len(rngs) != s.shape[0]:
            raise ValueError(f"rngs must hold one generator per run ({s.shape[0]}), got "
                             f"{len(rngs)}")
        u = onp.empty(s.shape[:2])
        xi = onp.stack([r.standard_normal(s.shape[1]) for r in rngs])
        for k, (start, stop) in enumerate(groups):
            u[:, start:stop] = (s[:, start:stop] @ lg.K[k, t, 0] + lg.k[k, t, 0]
                                + lg.chol[k, t, 0, 0] * xi[:, start:stop])
        return u, carry
    return act


def controller_optimizer(lg, groups, *, with_phi3=True, features=nn_features.PAPER):
    """The controllers' mean u_t^j = K_t^k s_t^j + k_t^k (119), without noise, as an
    ``optimizers.Optimizer`` (state: Φ's state, ``nn_features.phi_step``) for ``rollout``; step t
    uses the controllers of t, so a run may last at most T steps. lg (G, T, 1, dX)."""
    G, T = lg.K.shape[:2]
    if len(groups) != G or lg.K.shape[-1] != nn_features.state_dim(with_phi3):
        raise ValueError(f"lg must have shape ({len(groups)}, T, 1, "
                         f"{nn_features.state_dim(with_phi3)}), got {lg.K.shape}")

    def step(state, x, f, g):
        phi_state, t = state
        if t >= T:
            raise ValueError(f"the controllers end at step {T}")
        s, phi_state = nn_features.phi_step(phi_state, x, f, g, with_phi3=with_phi3,
                                            features=features)
        u = onp.concatenate([s[:, start:stop] @ lg.K[k, t, 0] + lg.k[k, t, 0]
                             for k, (start, stop) in enumerate(groups)], axis=1)
        return u, (phi_state, t + 1)

    return Optimizer(lambda x0: (nn_features.phi_init(onp.asarray(x0, dtype=float)), 0), step)


def concatenate(parts):
    """One Runs of several with the same stream (runs split over processes), in order."""
    return Runs(*(None if getattr(parts[0], f) is None else
                  onp.concatenate([getattr(p, f) for p in parts], axis=1 if f == "picks" else 0)
                  for f in Runs._fields))
