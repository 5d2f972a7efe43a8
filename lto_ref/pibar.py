"""Linearisation π̄(u | x) = N(K̄_t x + k̄_t, S̄_t) of the neural policy around the samples (SPEC §6.7).

The policy acts on observations o, the controllers on states x; GPS needs the policy in the
controllers' terms. Per step t, the points [x_{n,t}; μ_θ(o_{n,t})] of the N samples are fitted by
the NIW-MAP linear-Gaussian map of ``gmm.fit_conditional``, with a GMM over all steps as the prior
(mode 'replace': only the current samples). S̄_t = conditional covariance + diag(Σ^π).
"""
import numpy as np

from lto_ref import dynamics, gmm as gmm_lib, lingauss

__all__ = ["fit"]


def fit(rng, X, mu_pol, pol_var, gmms=None, cfg=dynamics.Config(max_clusters=20)):
    """π̄ of every condition from states X (M, N, T, dX) and policy means mu_pol (M, N, T, dU).

    Parameters
    ----------
    rng : np.random.Generator;  pol_var : (dU,) the policy's variance Σ^π
    gmms : the previous call's GMMs (warm start) or None
    cfg : dynamics.Config supplying the GMM and prior settings (max_clusters 20 [C]; ``pooled``
        fits one GMM on a subsample of all conditions)

    Returns
    -------
    pi_bar : LinGauss (M, T, …);  gmms : list of GMMs (1 when pooled, else M)
    """
    M, N, T, dX = X.shape
    pts = np.concatenate([X, mu_pol], axis=-1)                          # (M, N, T, dX+dU)
    seeds = rng.integers(0, 2**63 - 1, size=M + 1)
    if cfg.pooled:
        pool = pts.reshape(-1, pts.shape[-1])
        pick = np.sort(np.random.default_rng(seeds[M]).permutation(len(pool))[:cfg.pooled_points])
        gmms = [dynamics.em(seeds[M], pool[pick], None if gmms is None else gmms[0], cfg)]
        priors, n_pts = gmms * M, len(pick)
    else:
        priors = [dynamics.em(seeds[m], pts[m].reshape(-1, pts.shape[-1]),
                              None if gmms is None else gmms[m], cfg) for m in range(M)]
        gmms, n_pts = priors, N * T
    if cfg.pooled:  # one prior for all: every (condition, step) in one batched fit
        K_bar, k_bar, S_bar = (a.reshape((M, T) + a.shape[1:]) for a in gmm_lib.fit_conditional(
            np.swapaxes(pts, 1, 2).reshape(M * T, N, -1), gmms[0], n_pts, dX,
            strength=cfg.strength, reg=cfg.reg))
    else:
        K_bar, k_bar, S_bar = (np.stack(a) for a in zip(*(
            gmm_lib.fit_conditional(np.swapaxes(pts[m], 0, 1), priors[m], n_pts, dX,
                                    strength=cfg.strength, reg=cfg.reg) for m in range(M))))
    S_bar = lingauss.symmetrize(S_bar + np.diag(pol_var))
    return lingauss.make(K_bar, k_bar, S_bar), gmms
