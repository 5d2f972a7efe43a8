"""One GPS iteration for paper 2's coordinate-wise LSTM optimizer (docs/method.md §13).

BADMM as in paper 1 (docs/method.md §7.4), on blocks: sample N runs of the controllers from
x⁽⁰⁾ on a fresh minibatch stream, every coordinate acting through its state → keep K coordinates
per group and run (``coordinates``) → fit the groups' dynamics → the separable cost of the true
objective → ``iteration.badmm_inner`` with the LSTM's operations (``lstm_sstep.ops``). Iteration
i draws from ``SeedSequence([seed, i])``.
"""
import dataclasses
import functools
import time

import numpy as np

from lto_ref import lstm_policy, nets, nn_features, rollout
from lto_ref.gps import badmm, coordinates, dynamics, gmm, iteration, lstm_sstep, pibar

__all__ = ["Config", "init_state", "sample", "iteration_step", "policy_cost", "select_cost"]


TEACHERS = ("", "gd", "adagrad", "rmsprop", "adam")   # "": γ from gamma_grid


@dataclasses.dataclass(frozen=True)
class Config:
    """Paper 2's GPS settings (docs/method.md §13; our defaults where the paper is silent)."""
    iterations: int = 10
    inner_iterations: int = 4
    samples: int = 20                # N runs per iteration
    coords: int = 10                 # K coordinates per group and run (the smallest group: 10)
    T: int = 400
    batch: int = 64
    kl_step: float = 0.2
    init_eta: float = 1.0
    nu0: float = 0.01
    dual_rate: float = 0.2
    init_gamma: float = 0.1          # the first controllers' step along Φ2 (122) …
    gamma_grid: tuple = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)   # … or the best of these (``nn_trainer``)
    teacher: str = "adagrad"         # γ per group and step fitted to this optimizer's steps …
    teacher_lr: float = 0.1          # … with this learning rate (``nn_trainer.fit_gains``);
                                     # "": the γ of gamma_grid instead
    init_var: float = 1e-5           # the first controllers' noise variance, or, with a
    noise: float = 0.3               # teacher and noise > 0, std = noise × its RMS step (G, T)
    with_phi3: bool = True
    features: nn_features.Features = nn_features.SCALE_FREE  # forms of Φ and Ψ: (111a), (115a),
                                     # Ψ1 clipped; nn_features.PAPER is (110)–(116) as written
    cost_points: int = 1000          # training points of the cost model's derivatives (0: all)
    cost_model: str = "steps"        # ``coordinates.quadratize_steps``, or "expansion" (120)
    keep: str = "best"               # the policy ``nn_trainer.train`` returns: "best" or "last"
    select_runs: int = 3             # "best" by the mean Σ_t f of this many runs from fresh x⁽⁰⁾
                                     # and streams (``select_cost``); 0: the logged run's
    chunks: int = dataclasses.field(default=2, metadata={"identity": False})   # π̄, C-step blocks
    sample_chunks: int = dataclasses.field(default=2, metadata={"identity": False})
    badmm_target: str = "code"
    dynamics_fit: dynamics.Config = dynamics.Config(max_samples=1000)
    policy_prior: gmm.Config = gmm.Config(max_clusters=20)
    sstep: lstm_sstep.Config = lstm_sstep.Config()
    policy: lstm_policy.Config = lstm_policy.Config()

    def __post_init__(self):
        for name in ("iterations", "inner_iterations", "samples", "coords", "T", "batch",
                     "chunks", "sample_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("cost_points", "select_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        for name in ("kl_step", "init_eta", "nu0", "dual_rate", "init_gamma", "init_var",
                     "teacher_lr"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)!r}")
        if not 0 <= self.noise < float("inf"):
            raise ValueError(f"noise must be finite and >= 0, got {self.noise!r}")
        if self.cost_model not in ("steps", "expansion"):
            raise ValueError(f"cost_model must be 'steps' or 'expansion', got {self.cost_model!r}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.badmm_target not in ("code", "derivation"):
            raise ValueError(f"badmm_target must be 'code' or 'derivation', got "
                             f"{self.badmm_target!r}")


def init_state(net, cfg, seed):
    """Iteration-0 state: the first controllers (122) of every group and a fresh LSTM policy."""
    G, dX = len(net.groups), nn_features.state_dim(cfg.with_phi3)
    lg = coordinates.initial_controllers(cfg.init_gamma, G, cfg.T, dX, cfg.init_var)
    pol = lstm_policy.init(np.random.default_rng(np.random.SeedSequence([seed, 2**31])), G,
                           cfg.policy)
    return iteration.GPSState(0, lg, np.full(G, cfg.init_eta), np.ones(G),
                              np.full((G, cfg.T), cfg.nu0), np.zeros((G, cfg.T, 1)), pol, True,
                              None, None, None, None)


def _block(values, picks):
    """(N, T, Q) per-run values of the picked coordinates as (G, N·K, T)."""
    G, N, K = picks.shape
    return np.moveaxis(values.reshape(N, -1, G, K), 2, 0).swapaxes(2, 3).reshape(G, N * K, -1)


def policy_cost(net, data, x0, policy, batches, dtype="float64", features=nn_features.PAPER):
    """Σ_{t<T} f(x_t) of the policy's mean steps from x0 (P,) on ``batches`` (T, B), the LSTM
    in ``dtype`` on Ψ of the form ``features``."""
    inputs, labels = data
    trace = rollout.run_minibatch(
        lstm_policy.optimizer(policy, lstm_policy.ranges(net), dtype, features),
        functools.partial(nets.minibatch_loss, net, inputs, labels), batches,
        functools.partial(nets.loss, net, inputs=inputs, labels=labels), x0[None])
    return float(trace.fs[:-1, 0].sum())


def select_cost(net, data, policy, cfg, seed):
    """The mean Σ_{t<T} f(x_t) of the policy's mean steps over ``cfg.select_runs`` runs on the
    net's objective, each from its own x⁽⁰⁾ ~ N(0, 0.1²) and minibatch stream, all drawn from
    ``SeedSequence([seed, 2**31 + 2])`` (the same runs at every iteration); inf if one diverges."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 2]))
    x0s = nets.init(rng, net, cfg.select_runs)
    costs = [policy_cost(net, data, x0, policy,
                         nets.minibatches(rng, len(data[1]), cfg.batch, cfg.T), cfg.sstep.dtype,
                         cfg.features) for x0 in x0s]
    return float(np.mean(costs)) if np.all(np.isfinite(costs)) else float("inf")


def _step_mult(state, net, realized, cfg):
    """The KL step's multipliers (G,) from the realized improvement: the last C-step predicted
    Σ_k n_k (A_k − B_k) / P of Σ_t f(x_t) (``quadratize_steps``'s units), the samples show
    R_prev − R; ``badmm.step_multiplier`` with these for every group. The "expansion" cost
    keeps the model-based rule (None)."""
    if cfg.cost_model != "steps" or state.prev_costs is None:
        return None if cfg.cost_model != "steps" else state.step_mult
    A, B, prev = state.prev_costs
    sizes = np.array([stop - start for start, stop in lstm_policy.ranges(net)])
    predicted = float(np.sum(sizes * (A - B)) / net.dim)
    G = len(sizes)
    return badmm.step_multiplier(state.step_mult, np.full(G, predicted),
                                 np.full(G, float(prev[0]) - realized))


def _sample(job):
    """Runs of the controllers for one slice of the N runs (module level: picklable for a
    process pool's map). job = (net, data, x0, lg, seeds (one SeedSequence per run), batches,
    picks (G, n, K), with_phi3, cost_rows, features)."""
    net, data, x0, lg, seeds, batches, picks, with_phi3, cost_rows, features = job
    act = coordinates.controller_act(lg, lstm_policy.ranges(net),
                                     [np.random.default_rng(s) for s in seeds])
    with np.errstate(all="ignore"):
        return coordinates.simulate(net, data, x0, act, None, batches, picks,
                                    with_phi3=with_phi3, cost_rows=cost_rows, features=features)


def sample(state, net, data, x0, cfg, rngs, *, map_fn=map):
    """The iteration's N runs of the controllers (``coordinates.Runs``), in ``cfg.sample_chunks``
    slices through ``map_fn``; rngs = (stream, pick, noise, cost rows) generators."""
    r_stream, r_pick, r_noise, r_rows = rngs
    batches = nets.minibatches(r_stream, len(data[1]), cfg.batch, cfg.T + 1)
    picks = coordinates.pick(r_pick, lstm_policy.ranges(net), cfg.samples, cfg.coords)
    n_data = len(data[1])
    rows = (None if cfg.cost_points in (0, n_data) or cfg.cost_points > n_data
            else np.sort(r_rows.choice(n_data, cfg.cost_points, replace=False)))
    seeds = r_noise.bit_generator.seed_seq.spawn(cfg.samples)
    cut = np.array_split(np.arange(cfg.samples), min(cfg.sample_chunks, cfg.samples))
    jobs = [(net, data, x0, state.lg, [seeds[n] for n in part], batches, picks[:, part],
             cfg.with_phi3, rows, cfg.features) for part in cut]
    return coordinates.concatenate(list(map_fn(_sample, jobs))), batches


def iteration_step(state, net, data, x0, cfg, seed, *, map_fn=map):
    """One iteration on the net's objective (data = (inputs, labels)) from x0 (P,):
    (new GPSState, iteration.LogRow)."""
    t0 = time.perf_counter()
    i = state.iteration
    r_stream, r_pick, r_noise, r_dyn, r_pibar, r_sstep, r_rows = np.random.default_rng(
        np.random.SeedSequence([seed, i])).spawn(7)
    runs, batches = sample(state, net, data, x0, cfg, (r_stream, r_pick, r_noise, r_rows),
                           map_fn=map_fn)
    picks = runs.picks
    samples = coordinates.run_blocks(runs)
    dyn, prior = dynamics.fit(r_dyn, samples, coordinates.structure(samples.X.shape[-1]),
                              state.dyn_prior, cfg.dynamics_fit, map_fn=map_fn)
    parts = (samples.X, samples.fs[..., :cfg.T], _block(runs.grad, picks),
             _block(runs.hdiag, picks))
    cost = (coordinates.quadratize_steps(*parts, kappa=coordinates.curvature_ratio(runs),
                                         scale=float(net.dim))
            if cfg.cost_model == "steps" else coordinates.quadratize(*parts))
    ops = lstm_sstep.ops(cfg.sstep)
    fit_pibar = lambda s, mu: pibar.fit(r_pibar, samples.X, mu, ops.variance(s.policy),  # noqa
                                        s.pibar_gmms, cfg.policy_prior, map_fn=map_fn,
                                        chunks=cfg.chunks)
    realized = float(runs.fs[:, :cfg.T].sum(-1).mean())
    st, kl, loss = iteration.badmm_inner(state._replace(dyn_prior=prior), samples, dyn, cost,
                                         fit_pibar, r_sstep, cfg, ops, map_fn,
                                         step_mult=_step_mult(state, net, realized, cfg))
    st = st._replace(prev_costs=st.prev_costs[:2] + (np.array([realized]),))
    row = iteration.LogRow(
        controller_cost=realized,
        policy_cost=policy_cost(net, data, x0, st.policy, batches[:cfg.T], cfg.sstep.dtype,
                                cfg.features),
        kl=kl, eta=st.eta, step_mult=st.step_mult, nu=st.nu.mean(1), sstep_loss=loss,
        diverged=int((~np.isfinite(runs.fs[:, -1])).sum()), seconds=time.perf_counter() - t0,
        select_cost=(select_cost(net, data, st.policy, cfg, seed) if cfg.select_runs
                     else float("nan")))
    return st._replace(iteration=i + 1), row

