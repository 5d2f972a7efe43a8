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
import numpy as onp

from lto_ref.gps import cost as cost_lib, environment

__all__ = ["structure", "pick", "blocks", "quadratize"]


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
