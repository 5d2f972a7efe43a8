"""One iteration of guided policy search, all M training functions ("conditions") together.

BADMM (docs/method.md §7.4)::

    sample from the controllers → fit dynamics → linearise the policy (π̄) → quadratise the cost
    → adapt the step → 4 × [S-step → refit π̄ → dual updates → C-step (LQR + η search)]

``algorithm="mdgps"`` runs the mirror-descent variant (docs/method.md §7.14). Randomness:
iteration i draws from ``SeedSequence([seed, i])``, so a run resumed from a checkpoint continues
identically.
"""
import functools
import time
import warnings
from typing import NamedTuple

import numpy as np

from lto_ref import features, metrics, optimizers, policy as policy_lib, rollout
from lto_ref.gps import badmm, cost as cost_lib, dynamics, environment, eta_search, lingauss
from lto_ref.gps import lqr, pibar, sstep, warmstart

__all__ = ["GPSState", "LogRow", "PolicyOps", "init_state", "iteration", "c_step_block",
           "badmm_inner", "selection_score"]


class GPSState(NamedTuple):
    """Everything GPS carries from one iteration to the next."""
    iteration: int
    lg: lingauss.LinGauss     # sampling controllers (M, T, …)
    eta: np.ndarray           # (M,)
    step_mult: np.ndarray     # (M,)
    nu: np.ndarray            # (M, T) BADMM weights
    lam_k: np.ndarray         # (M, T, dU) BADMM duals (λ_K stays 0)
    policy: policy_lib.Policy
    whitened: bool            # whitening fitted (first S-step)
    adam: object              # sstep.AdamState or None
    dyn_prior: object         # dynamics.PriorState or None
    pibar_gmms: object        # list of GMMs or None
    prev_costs: object        # (A, B) (M,) each: the last step's predicted improvement A − B, or None
    selected: object = None   # Config.select_steps > 0: the best iteration's policy so far
    selected_cost: object = None   # its score (float), None before the first iteration


class LogRow(NamedTuple):
    """One iteration's record (the quantities of the released training log, docs/method.md §9)."""
    controller_cost: float    # mean Σ_{t<T} f(x_t) of the samples (the policy's if on-policy)
    policy_cost: float        # mean Σ_{t<T} f(x_t) of the policy's own (deterministic) rollouts
    kl: np.ndarray            # (M,) KL(p_new ‖ p̂) of the last C-step
    eta: np.ndarray           # (M,)
    step_mult: np.ndarray     # (M,)
    nu: np.ndarray            # (M,) mean over t
    sstep_loss: float         # mean minibatch loss of the last S-step (nan if none)
    diverged: int             # samples frozen after a non-finite value
    seconds: float
    select_cost: float = float("nan")   # the policy's selection score (Config.select_steps)


class PolicyOps(NamedTuple):
    """What the inner loops need of a policy class: its mean actions at the samples, its
    S-step and its action variance. Paper 1's MLP (``_mlp_ops``) and paper 2's LSTM plug in."""
    mean: object       # (policy, samples) -> μ^π (M, N, T, dU)
    s_step: object     # (rng, state, samples, target, prec, w) -> (policy, whitened, adam, loss)
    variance: object   # policy -> (dU,) shared or (M, dU) per condition


def _mlp_ops(cfg):
    return PolicyOps(mean=lambda pol, samples: policy_lib.mean(pol, samples.O),
                     s_step=lambda rng, st, samples, target, prec, w: _s_step(
                         rng, st, samples, target, prec, w, cfg),
                     variance=lambda pol: pol.var)


def init_state(family, problems, x0, cfg, seed):
    """Iteration-0 state: grid-searched momentum controllers and a fresh policy (docs/method.md (44)–(47))."""
    lay = environment.layout(family.dim, cfg.H, cfg.h)
    gammas, masses = warmstart.grid(cfg.init_grid)
    lg, _ = warmstart.initial_controllers(family, problems, x0, cfg.T, lay, form=cfg.init_form,
                                          init_var=cfg.init_var, offset=cfg.init_offset,
                                          gammas=gammas, masses=masses)
    M, dU = x0.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    pol = policy_lib.init(rng, features.obs_dim(dU, cfg.H), dU, hidden=cfg.hidden,
                          activation=cfg.activation,
                          reflect=features.reflection(dU, cfg.H) if cfg.symmetric else None)
    return GPSState(0, lg, np.full(M, cfg.init_eta), np.ones(M), np.full((M, cfg.T), cfg.nu0),
                    np.zeros((M, cfg.T, dU)), pol, False, None, None, None, None)


def _s_step(rng, state, samples, target, prec, w, cfg):
    """Regress the policy on all M·N·T pairs; returns (policy, whitened, adam, mean loss)."""
    M, N, T, dU = target.shape
    pol = state.policy if state.whitened else policy_lib.with_whitening(state.policy, samples.O)
    P_full = np.broadcast_to(prec[:, None], (M, N, T, dU, dU))
    Pw = (P_full * w[..., None, None]).reshape(-1, dU, dU)
    pol, adam, losses = sstep.regress(rng, pol, samples.O.reshape(M * N * T, -1),
                                      target.reshape(-1, dU), Pw, state=state.adam,
                                      steps=cfg.sstep_steps, batch=cfg.sstep_batch,
                                      lr=cfg.sstep_lr)
    var = sstep.policy_variance(P_full.reshape(-1, dU, dU), w.reshape(-1))
    return pol._replace(var=var), True, adam, float(losses.mean())


def _policy_cost(family, problems, x0, policy, cfg, lay):
    act = lambda t, X, O: policy_lib.mean(policy, O)  # noqa: E731
    with np.errstate(all="ignore"):
        sim = environment.simulate(family, problems, x0, act, cfg.T, 1, lay)
    return float(sim.fs[..., :cfg.T].sum(-1).mean())


def _c_step(cost, dyn, center, eps, eta, *, nu=None, pi_bar=None, lam_k=None, map_fn=map,
            chunks=1):
    """New controllers within KL ε of ``center`` (docs/method.md (62)–(73)): (LinGauss, eta, kl).

    The conditions are split into ``chunks`` contiguous blocks, one ``map_fn`` call each; every
    condition's η search is independent of the others, so the split never changes the result.
    """
    M = eps.shape[0]
    sel = lambda rec, i: None if rec is None else lqr.take(rec, i)  # noqa: E731
    jobs = [(lqr.take(cost, i), lqr.take(dyn, i), lqr.take(center, i), eps[i], eta[i],
             None if nu is None else nu[i], sel(pi_bar, i), None if lam_k is None else lam_k[i])
            for i in np.array_split(np.arange(M), min(chunks, M))]
    out = list(map_fn(c_step_block, jobs))
    lg = lingauss.LinGauss(*(np.concatenate(f) for f in zip(*(o[0] for o in out))))
    return lg, np.concatenate([o[1] for o in out]), np.concatenate([o[2] for o in out])


def c_step_block(args):
    """C-step of one block of conditions: args = (cost, dyn, center, eps, eta, nu, pi_bar, lam_k).

    Module level, so any executor's ``map`` can run it. Returns (LinGauss, eta, kl).
    """
    cost, dyn, center, eps, eta, nu, pi_bar, lam_k = args
    terms = lqr.cost_terms(cost, center, nu=nu, pi_bar=pi_bar, lam_k=lam_k)   # once per C-step

    def cost_fn(e, idx):
        return lqr.normalised_cost(lqr.take(terms, idx), e)

    def kl_fn(lg, mu, sigma, idx):
        return lingauss.traj_kl(mu, sigma, lg, lqr.take(center, idx))
    lg, eta, kl, _ = eta_search.solve_eta(dyn, cost_fn, kl_fn, eps, eta)
    return lg, eta, kl


def _sample(rng, family, problems, x0, state, cfg, lay):
    """N samples per condition from the controllers, or from the stochastic policy π_θ(u | o)
    when MDGPS samples on-policy (after iteration 0, whose policy is still untrained)."""
    M, dU = x0.shape
    noise = rng.standard_normal((M, cfg.samples, cfg.T, dU))
    if cfg.sample_on_policy and state.whitened:
        act = lambda t, X, O: policy_lib.act(state.policy, O, noise[:, :, t])  # noqa: E731
    else:
        act = lambda t, X, O: lingauss.act(state.lg, t, X, noise[:, :, t])  # noqa: E731
    with np.errstate(all="ignore"):
        return environment.simulate(family, problems, x0, act, cfg.T, cfg.samples, lay)


def iteration(state, family, problems, x0, cfg, seed, *, map_fn=map):
    """One GPS iteration (docs/method.md §7.4 for BADMM, §7.14 for MDGPS): (new state, LogRow)."""
    t0 = time.perf_counter()
    i, dU = state.iteration, x0.shape[1]
    lay = environment.layout(dU, cfg.H, cfg.h)
    r_sample, r_dyn, r_pibar, r_sstep = np.random.default_rng(
        np.random.SeedSequence([seed, i])).spawn(4)
    samples = _sample(r_sample, family, problems, x0, state, cfg, lay)
    dyn, dyn_prior = dynamics.fit(r_dyn, samples, environment.structure(lay), state.dyn_prior,
                                  cfg.dynamics_fit, map_fn=map_fn)
    cost, _ = cost_lib.quadratize(family, problems, samples.X, dU, scale=dU)  # released code: dU·f
    st = state._replace(dyn_prior=dyn_prior)
    fit_pibar = lambda s, mu_pol: pibar.fit(r_pibar, samples.X, mu_pol, s.policy.var,  # noqa
                                            s.pibar_gmms, cfg.policy_prior, map_fn=map_fn,
                                            chunks=cfg.chunks)
    loss = float("nan")
    if cfg.algorithm == "mdgps":
        st, kl, loss = _mdgps_inner(st, samples, dyn, cost, fit_pibar, r_sstep, cfg, map_fn)
    else:
        st, kl, loss = badmm_inner(st, samples, dyn, cost, fit_pibar, r_sstep, cfg,
                                   _mlp_ops(cfg), map_fn)
    st, select_cost = _select(st, family, problems, x0, cfg)
    row = LogRow(controller_cost=float(samples.fs[..., :cfg.T].sum(-1).mean()),
                 policy_cost=_policy_cost(family, problems, x0, st.policy, cfg, lay),
                 kl=kl, eta=st.eta, step_mult=st.step_mult, nu=st.nu.mean(1), sstep_loss=loss,
                 diverged=int(samples.diverged.sum()), seconds=time.perf_counter() - t0,
                 select_cost=select_cost)
    return st._replace(iteration=i + 1), row


def selection_score(family, problems, x0, policy, H, steps):
    """The policy's mean meta-loss (docs/method.md (12)) over ``steps`` steps from the training
    functions' starting points, +inf if any run diverges by (92): the score of
    ``Config.select_steps``. x0 : (M, d) -> float."""
    trace = rollout.run(optimizers.learned(policy, H=H),
                        functools.partial(family.loss, problems=problems), x0, steps)
    if np.any(metrics.diverged(trace, x0)):
        return float("inf")
    return float(rollout.meta_loss(trace).mean())


def _select(st, family, problems, x0, cfg):
    """Keep the policy if its ``selection_score`` is the lowest so far (ties: the earlier):
    (state, score); score nan when ``cfg.select_steps`` is 0."""
    if not cfg.select_steps:
        return st, float("nan")
    score = selection_score(family, problems, x0, st.policy, cfg.H, cfg.select_steps)
    if st.selected_cost is None or score < st.selected_cost:
        st = st._replace(selected=st.policy, selected_cost=score)
    return st, score


def badmm_inner(st, samples, dyn, cost, fit_pibar, rng, cfg, ops, map_fn=map, step_mult=None):
    """Step adaptation and the inner loop of BADMM (docs/method.md §7.4 steps 4–7), for the
    policy class of ``ops``: (state, kl (M,), last S-step loss). A given ``step_mult`` (M,)
    replaces the model-based adaptation (77)–(78)."""
    i, N = st.iteration, samples.X.shape[1]
    mu_pol = ops.mean(st.policy, samples)                                # (M, N, T, dU)
    pi_bar, gmms = fit_pibar(st, mu_pol)
    st = st._replace(pibar_gmms=gmms)
    if step_mult is None:
        step_mult = st.step_mult
        if st.prev_costs is not None:             # predicted A − B, actual A − C
            A, B = st.prev_costs[:2]
            C = badmm.model_cost(st.lg, dyn, cost, pi_bar, st.nu)
            step_mult = badmm.step_multiplier(step_mult, A - B, A - C)
    eps = cfg.T * cfg.kl_step * step_mult
    new_lg, eta, nu, lam_k, kl, loss = st.lg, st.eta, st.nu, st.lam_k, None, float("nan")
    for j in range(cfg.inner_iterations):
        if not (i == 0 and j == 0):
            target, prec = sstep.targets(new_lg, samples.X, nu=nu, lam_k=lam_k,
                                         form=cfg.badmm_target)
            pol, whitened, adam, loss = ops.s_step(rng, st, samples, target, prec,
                                                   sstep.weights(nu, N))
            st = st._replace(policy=pol, whitened=whitened, adam=adam)
            mu_pol = ops.mean(st.policy, samples)
            pi_bar, gmms = fit_pibar(st, mu_pol)
            st = st._replace(pibar_gmms=gmms)
            lam_k = badmm.update_lambda(lam_k, nu, new_lg, samples.X, mu_pol, cfg.dual_rate)
            if j == cfg.inner_iterations - 1:
                nu = badmm.update_nu(nu, lingauss.sample_kl(samples.X, mu_pol, new_lg,
                                                            ops.variance(st.policy)))
                _warn_unstable_duals(nu, cfg)
        new_lg, eta, kl = _c_step(cost, dyn, st.lg, eps, eta, nu=nu, pi_bar=pi_bar, lam_k=lam_k,
                                  map_fn=map_fn, chunks=cfg.chunks)
    # the next step adjustment's A and B: the old and new controllers under this model
    prev_costs = (badmm.model_cost(st.lg, dyn, cost, pi_bar, nu),
                  badmm.model_cost(new_lg, dyn, cost, pi_bar, nu))
    return st._replace(lg=new_lg, eta=eta, step_mult=step_mult, nu=nu, lam_k=lam_k,
                       prev_costs=prev_costs), kl, loss


def _warn_unstable_duals(nu, cfg):
    """Warn when the λ ascent can diverge (``badmm.dual_gain`` > 2): the code-form target after
    about 9 iterations of ν doubling."""
    gain = float(badmm.dual_gain(nu, cfg.dual_rate, cfg.badmm_target).max())
    if gain > 2:
        warnings.warn(f"BADMM dual ascent may diverge: dual_rate·ν² = {gain:.3g} > 2 with the "
                      f"code-form S-step target; Config(badmm_target='derivation') keeps it "
                      f"stable", RuntimeWarning)


def _mdgps_inner(st, samples, dyn, cost, fit_pibar, rng, cfg, map_fn=map):
    """MDGPS (docs/method.md (88)–(89)): C-step in a trust region around π̄, then one S-step."""
    M, N, T = samples.X.shape[:3]
    w = np.ones((M, N, T))                          # a constant weight, normalised to mean 1
    loss = float("nan")
    if st.iteration == 0:                           # imitate the initial controllers first
        target, prec = sstep.targets(st.lg, samples.X)
        pol, whitened, adam, loss = _s_step(rng, st, samples, target, prec, w, cfg)
        st = st._replace(policy=pol, whitened=whitened, adam=adam)
    pi_bar, gmms = fit_pibar(st, policy_lib.mean(st.policy, samples.O))
    st = st._replace(pibar_gmms=gmms)
    step_mult = st.step_mult
    if st.prev_costs is not None:                 # the 'laplace' rule: A = J(π̄_prev)
        A, B = st.prev_costs
        C = badmm.model_cost(pi_bar, dyn, cost)
        step_mult = badmm.step_multiplier(step_mult, A - B, A - C)
    eps = cfg.T * cfg.kl_step * step_mult
    new_lg, eta, kl = _c_step(cost, dyn, pi_bar, eps, st.eta, map_fn=map_fn, chunks=cfg.chunks)
    target, prec = sstep.targets(new_lg, samples.X)
    pol, whitened, adam, loss = _s_step(rng, st, samples, target, prec, w, cfg)
    st = st._replace(policy=pol, whitened=whitened, adam=adam)
    prev_costs = (badmm.model_cost(pi_bar, dyn, cost), badmm.model_cost(new_lg, dyn, cost))
    return st._replace(lg=new_lg, eta=eta, step_mult=step_mult, prev_costs=prev_costs), kl, loss
