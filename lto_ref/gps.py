"""Guided policy search: the reinforcement-learning meta-trainer of paper 1 (SPEC §6).

One BADMM iteration (SPEC §6.4), all M training functions ("conditions") together::

    sample from the controllers → fit dynamics → linearise the policy (π̄) → quadratise the cost
    → adapt the step → 4 × [S-step → refit π̄ → dual updates → C-step (LQR + η search)]

``algorithm="mdgps"`` runs the mirror-descent variant (SPEC §6.15). Randomness: iteration i draws
from ``SeedSequence([seed, i])``, so a run resumed from a checkpoint continues identically.
"""
import dataclasses
import time
import warnings
from typing import NamedTuple

import numpy as np

from lto_ref import badmm, cost as cost_lib, dynamics, environment, eta_search, features
from lto_ref import lingauss, lqr
from lto_ref import pibar, policy as policy_lib, sstep, warmstart

__all__ = ["Config", "GPSState", "LogRow", "init_state", "iteration", "c_step_block",
           "config_record"]


@dataclasses.dataclass(frozen=True)
class Config:
    """GPS settings; defaults are SPEC §6.14's table unless marked [I]."""
    algorithm: str = "badmm"         # or "mdgps"
    iterations: int = 10
    inner_iterations: int = 4
    samples: int = 20                # N per condition
    T: int = 40
    H: int = 25                      # lags in the policy's observation
    h: int = 5                       # lags in the controllers' state [I speed; 25 = released code]
    kl_step: float = 0.2
    init_eta: float = 1.0
    nu0: float = 0.01
    dual_rate: float = 0.2
    init_form: str = "recursive"     # [I]; "truncated" is the released code's controller
    init_var: float = 0.01
    init_offset: str = "zero"        # "x0": the released code's k_t = K x_0 quirk (SPEC §6.3)
    cost_scale_dU: bool = True
    sstep_steps: int = 5000          # [I speed; 20,000 = released code] per S-step
    sstep_batch: int = 25
    sstep_lr: float = 1e-4
    weight_decay: float = 0.0
    hidden: int = 50
    activation: str = "softplus"
    symmetric: bool = True           # [I] reflection-odd policy μ(R·o) = −μ(o) (policy module)
    init_pol_wt: float = 0.01        # MDGPS constant weight
    badmm_target: str = "code"       # S-step target −ν G λ (code) or −G λ / ν ("derivation")
    sample_on_policy: bool = False   # MDGPS only: sample from π_θ after iteration 0 [GPS]
    stabilise: bool = False          # [I] rest-stability projection of the result (stabilise)
    # [I] blocks of conditions per map_fn call (C-step, π̄ fit); splits work, never the result
    chunks: int = dataclasses.field(default=2, metadata={"identity": False})
    dynamics_fit: dynamics.Config = dynamics.Config()
    policy_prior: dynamics.Config = dynamics.Config(max_clusters=20)

    def __post_init__(self):
        if self.algorithm not in ("badmm", "mdgps"):
            raise ValueError(f"algorithm must be 'badmm' or 'mdgps', got {self.algorithm!r}")
        for name in ("iterations", "inner_iterations", "samples", "T", "H", "h", "sstep_steps",
                     "sstep_batch", "hidden", "chunks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("kl_step", "init_eta", "nu0", "init_var", "sstep_lr", "init_pol_wt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.badmm_target not in ("code", "derivation"):
            raise ValueError(f"badmm_target must be 'code' or 'derivation', got "
                             f"{self.badmm_target!r}")
        if self.h > self.H:
            raise ValueError(f"h must be <= H = {self.H}, got {self.h}")
        if self.sample_on_policy and self.algorithm != "mdgps":
            raise ValueError("sample_on_policy=True needs algorithm='mdgps' (BADMM samples from "
                             "the controllers)")


def config_record(cfg):
    """The settings a result depends on: a (nested) dataclass configuration as a dict, without
    the fields marked ``metadata={"identity": False}`` (such as ``Config.chunks``)."""
    if not dataclasses.is_dataclass(cfg):
        return cfg
    return {f.name: config_record(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if f.metadata.get("identity", True)}


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
    prev: object              # (controller, Dynamics, QuadCost, π̄) of the last iteration, or None


class LogRow(NamedTuple):
    """One iteration's record (SPEC §8.6's quantities)."""
    controller_cost: float    # mean Σ_{t<T} f(x_t) of the samples (the policy's if on-policy)
    policy_cost: float        # mean Σ_{t<T} f(x_t) of the policy's own (deterministic) rollouts
    kl: np.ndarray            # (M,) KL(p_new ‖ p̂) of the last C-step
    eta: np.ndarray           # (M,)
    step_mult: np.ndarray     # (M,)
    nu: np.ndarray            # (M,) mean over t
    sstep_loss: float         # mean minibatch loss of the last S-step (nan if none)
    diverged: int             # samples frozen after a non-finite value
    seconds: float


def init_state(family, problems, x0, cfg, seed):
    """Iteration-0 state: grid-searched momentum controllers and a fresh policy (SPEC §6.3)."""
    lay = environment.layout(family.dim, cfg.H, cfg.h)
    lg, _ = warmstart.initial_controllers(family, problems, x0, cfg.T, lay, form=cfg.init_form,
                                          init_var=cfg.init_var, offset=cfg.init_offset)
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
                                      lr=cfg.sstep_lr, weight_decay=cfg.weight_decay)
    var = sstep.policy_variance(P_full.reshape(-1, dU, dU), w.reshape(-1))
    return pol._replace(var=var), True, adam, float(losses.mean())


def _policy_cost(family, problems, x0, policy, cfg, lay):
    act = lambda t, X, O: policy_lib.mean(policy, O)  # noqa: E731
    with np.errstate(all="ignore"):
        sim = environment.simulate(family, problems, x0, act, cfg.T, 1, lay)
    return float(sim.fs[..., :cfg.T].sum(-1).mean())


def _c_step(cost, dyn, center, eps, eta, *, nu=None, pi_bar=None, lam_k=None, map_fn=map,
            chunks=1):
    """New controllers within KL ε of ``center`` (SPEC §6.8–6.9): (LinGauss, eta, kl).

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
    """One GPS iteration (SPEC §6.4 for BADMM, §6.15 for MDGPS): (new state, LogRow)."""
    t0 = time.perf_counter()
    i, (M, dU), N = state.iteration, x0.shape, cfg.samples
    lay = environment.layout(dU, cfg.H, cfg.h)
    r_sample, r_dyn, r_pibar, r_sstep = np.random.default_rng(
        np.random.SeedSequence([seed, i])).spawn(4)
    samples = _sample(r_sample, family, problems, x0, state, cfg, lay)
    dyn, dyn_prior = dynamics.fit(r_dyn, samples, lay, state.dyn_prior, cfg.dynamics_fit,
                                     map_fn=map_fn)
    cost, _ = cost_lib.quadratize(family, problems, samples.X, dU, scale_by_dU=cfg.cost_scale_dU)
    st = state._replace(dyn_prior=dyn_prior)
    fit_pibar = lambda s, mu_pol: pibar.fit(r_pibar, samples.X, mu_pol, s.policy.var,  # noqa
                                            s.pibar_gmms, cfg.policy_prior, map_fn=map_fn,
                                            chunks=cfg.chunks)
    loss = float("nan")
    if cfg.algorithm == "mdgps":
        st, kl, loss = _mdgps_inner(st, samples, dyn, cost, fit_pibar, r_sstep, cfg, map_fn)
    else:
        st, kl, loss = _badmm_inner(st, samples, dyn, cost, fit_pibar, r_sstep, cfg, map_fn)
    row = LogRow(controller_cost=float(samples.fs[..., :cfg.T].sum(-1).mean()),
                 policy_cost=_policy_cost(family, problems, x0, st.policy, cfg, lay),
                 kl=kl, eta=st.eta, step_mult=st.step_mult, nu=st.nu.mean(1), sstep_loss=loss,
                 diverged=int(samples.diverged.sum()), seconds=time.perf_counter() - t0)
    return st._replace(iteration=i + 1), row


def _badmm_inner(st, samples, dyn, cost, fit_pibar, rng, cfg, map_fn=map):
    """Step adaptation and the inner loop of BADMM (SPEC §6.4 steps 3–7)."""
    i, N = st.iteration, cfg.samples
    mu_pol = policy_lib.mean(st.policy, samples.O)                       # (M, N, T, dU)
    pi_bar, gmms = fit_pibar(st, mu_pol)
    st = st._replace(pibar_gmms=gmms)
    step_mult = st.step_mult
    if st.prev is not None:
        p_prev, dyn_prev, cost_prev, pi_prev = st.prev
        A = badmm.model_cost(p_prev, dyn_prev, cost_prev, pi_prev, st.nu)
        B = badmm.model_cost(st.lg, dyn_prev, cost_prev, pi_prev, st.nu)
        C = badmm.model_cost(st.lg, dyn, cost, pi_bar, st.nu)
        step_mult = badmm.step_multiplier(step_mult, A - B, A - C)
    eps = cfg.T * cfg.kl_step * step_mult
    new_lg, eta, nu, lam_k, kl, loss = st.lg, st.eta, st.nu, st.lam_k, None, float("nan")
    for j in range(cfg.inner_iterations):
        if not (i == 0 and j == 0):
            target, prec = sstep.targets(new_lg, samples.X, nu=nu, lam_K=np.zeros_like(new_lg.K),
                                         lam_k=lam_k, form=cfg.badmm_target)
            pol, whitened, adam, loss = _s_step(rng, st, samples, target, prec,
                                                sstep.weights(nu, N), cfg)
            st = st._replace(policy=pol, whitened=whitened, adam=adam)
            mu_pol = policy_lib.mean(st.policy, samples.O)
            pi_bar, gmms = fit_pibar(st, mu_pol)
            st = st._replace(pibar_gmms=gmms)
            lam_k = badmm.update_lambda(lam_k, nu, new_lg, samples.X, mu_pol, cfg.dual_rate)
            if j == cfg.inner_iterations - 1:
                nu = badmm.update_nu(nu, lingauss.sample_kl(samples.X, mu_pol, new_lg,
                                                            st.policy.var))
                _warn_unstable_duals(nu, cfg)
        new_lg, eta, kl = _c_step(cost, dyn, st.lg, eps, eta, nu=nu, pi_bar=pi_bar, lam_k=lam_k,
                                  map_fn=map_fn, chunks=cfg.chunks)
    prev = (st.lg, dyn, cost, pi_bar)
    return st._replace(lg=new_lg, eta=eta, step_mult=step_mult, nu=nu, lam_k=lam_k,
                       prev=prev), kl, loss


def _warn_unstable_duals(nu, cfg):
    """Warn when the λ ascent can diverge (``badmm.dual_gain`` > 2): the code-form target after
    about 9 iterations of ν doubling."""
    gain = float(badmm.dual_gain(nu, cfg.dual_rate, cfg.badmm_target).max())
    if gain > 2:
        warnings.warn(f"BADMM dual ascent may diverge: dual_rate·ν² = {gain:.3g} > 2 with the "
                      f"code-form S-step target; Config(badmm_target='derivation') keeps it "
                      f"stable", RuntimeWarning)


def _mdgps_inner(st, samples, dyn, cost, fit_pibar, rng, cfg, map_fn=map):
    """MDGPS (SPEC §6.15): C-step in a trust region around π̄, then one S-step."""
    M, N, T = samples.X.shape[:3]
    w = np.ones((M, N, T))                          # constant weight init_pol_wt, normalised
    loss = float("nan")
    if st.iteration == 0:                           # imitate the initial controllers first
        target, prec = sstep.targets(st.lg, samples.X)
        pol, whitened, adam, loss = _s_step(rng, st, samples, target, prec, w, cfg)
        st = st._replace(policy=pol, whitened=whitened, adam=adam)
    pi_bar, gmms = fit_pibar(st, policy_lib.mean(st.policy, samples.O))
    st = st._replace(pibar_gmms=gmms)
    step_mult = st.step_mult
    if st.prev is not None:
        _, dyn_prev, cost_prev, pi_prev = st.prev
        J_prev = badmm.model_cost(pi_prev, dyn_prev, cost_prev)
        predicted = J_prev - badmm.model_cost(st.lg, dyn_prev, cost_prev)
        actual = J_prev - badmm.model_cost(pi_bar, dyn, cost)
        step_mult = badmm.step_multiplier(step_mult, predicted, actual)
    eps = cfg.T * cfg.kl_step * step_mult
    new_lg, eta, kl = _c_step(cost, dyn, pi_bar, eps, st.eta, map_fn=map_fn, chunks=cfg.chunks)
    target, prec = sstep.targets(new_lg, samples.X)
    pol, whitened, adam, loss = _s_step(rng, st, samples, target, prec, w, cfg)
    st = st._replace(policy=pol, whitened=whitened, adam=adam)
    return st._replace(lg=new_lg, eta=eta, step_mult=step_mult,
                       prev=(st.lg, dyn, cost, pi_bar)), kl, loss
