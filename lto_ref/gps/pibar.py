"""Linearisation π̄(u | x) = N(K̄_t x + k̄_t, S̄_t) of the neural policy around the samples (docs/method.md (59)).

The policy acts on observations o, the controllers on states x; GPS needs the policy in the
controllers' terms. Per step t, the points [x_{n,t}; μ_θ(o_{n,t})] of the N samples are fitted by
the NIW-MAP linear-Gaussian map of ``gmm.fit_conditional``, with a GMM over all steps as the prior
(mode 'replace': only the current samples). S̄_t = conditional covariance + diag(Σ^π).
"""
import numpy as np

from lto_ref.gps import gmm as gmm_lib, lingauss

__all__ = ["fit", "fit_block"]


def fit(rng, X, mu_pol, pol_var, gmms=None, cfg=gmm_lib.Config(max_clusters=20), *,
        map_fn=map, chunks=1):
    """π̄ of every condition from states X (M, N, T, dX) and policy means mu_pol (M, N, T, dU).

    Parameters
    ----------
    rng : np.random.Generator;  pol_var : (dU,) the policy's variance Σ^π, or (M, dU) one per
        condition (paper 2's per-group variances)
    gmms : the previous call's GMMs (warm start) or None
    cfg : gmm.Config, the GMM and prior settings (max_clusters 20 as in the released code;
        ``pooled`` fits one GMM on a subsample of all conditions)
    map_fn : ``map`` or an executor's ``map``; the per-condition fits go through it, in
        ``chunks`` contiguous blocks of conditions when pooled, one condition per call otherwise

    Returns
    -------
    pi_bar : LinGauss (M, T, …);  gmms : list of GMMs (1 when pooled, else M)
    """
    M, N, T, dX = X.shape
    pts = np.concatenate([X, mu_pol], axis=-1)                          # (M, N, T, dX+dU)
    seeds = rng.integers(0, 2**63 - 1, size=M + 1)
    if cfg.pooled:  # one prior for all: the conditions' fits in a few batched blocks
        pool = pts.reshape(-1, pts.shape[-1])
        pick = np.sort(np.random.default_rng(seeds[M]).permutation(len(pool))[:cfg.pooled_points])
        gmms = [gmm_lib.em(seeds[M], pool[pick], None if gmms is None else gmms[0], cfg)]
        jobs = [(None, np.swapaxes(pts[i], 1, 2), gmms[0], len(pick), dX, None, cfg)
                for i in np.array_split(np.arange(M), min(chunks, M))]
    else:           # one GMM per condition, warm-started from its previous one
        jobs = [(int(seeds[m]), np.swapaxes(pts[m], 0, 1)[None], None, N * T, dX,
                 None if gmms is None else gmms[m], cfg) for m in range(M)]
    out = list(map_fn(fit_block, jobs))
    K_bar, k_bar, S_bar = (np.concatenate([o[i] for o in out]) for i in range(3))
    if not cfg.pooled:
        gmms = [o[3] for o in out]
    dU = S_bar.shape[-1]
    var = np.asarray(pol_var, dtype=float).reshape(-1, 1, 1, dU)        # (M or 1, 1, 1, dU)
    S_bar = lingauss.symmetrize(S_bar + var * np.eye(dU))
    return lingauss.make(K_bar, k_bar, S_bar), gmms


def fit_block(args):
    """Linear-Gaussian fits of a block of conditions: args = (seed, pts (m, T, N, D), gmm, n_pts,
    dX, init, cfg). With ``gmm`` None a GMM is first fitted by EM on all of ``pts`` (warm-started
    from ``init``). Module level, so any executor's ``map`` can run it.

    Returns K̄ (m, T, dU, dX), k̄ (m, T, dU), conditional covariance (m, T, dU, dU), gmm.
    """
    seed, pts, gmm, n_pts, dX, init, cfg = args
    m, T, N, D = pts.shape
    if gmm is None:
        gmm = gmm_lib.em(seed, np.swapaxes(pts, 1, 2).reshape(-1, D), init, cfg)  # (n, t) order
    fits = gmm_lib.fit_conditional(pts.reshape(m * T, N, D), gmm, n_pts, dX,
                                   strength=cfg.strength, reg=cfg.reg)
    return (*(a.reshape((m, T) + a.shape[1:]) for a in fits), gmm)
