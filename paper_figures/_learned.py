"""Paper 2's Figures 1–5 (docs/method.md §12–§13): the GPS-trained LSTM optimizer against the
seven hand-designed optimizers and L2LBGDBGD on nets it was not trained on.

Every method was meta-trained or tuned on the same MNIST objective (a 48-48-10 net, minibatch
64, 400 steps): the LSTM optimizer by GPS (``nn_trainer.train``), L2LBGDBGD by its own
meta-training, the baselines by their grids. A figure trains nets d_in-hidden-C on TFD, CIFAR-10
and CIFAR-100 (or their substitutes) from three seeded x⁽⁰⁾, each method on the same minibatch
stream, and plots the mean true objective (recorded every ``every`` steps) against iteration.
The evaluation grid (data set × seed, every method in one job) goes through ``ctx.map_fn``.
"""
import dataclasses
import functools
import os
import sys
import time

import numpy as np

from lto_ref import benchmark, io, l2l, lstm_policy, optimizers
from lto_ref.gps import coordinatewise, nn_trainer
from paper_figures import _cache, _paper2, _train

__all__ = ["Config", "make", "evaluate", "METHODS"]

METHODS = ("learned",) + _paper2.BASELINES + ("l2l",)
TESTS = ("tfd", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class Config:
    problem: _paper2.Problem                       # the test nets (data set set per panel)
    figure: int = 1                                # paper 2's figure number (its claims)
    tests: tuple = TESTS
    seeds: tuple = (0, 1, 2)                       # x⁽⁰⁾ and stream of each test run
    train_problem: _paper2.Problem = _paper2.Problem()     # MNIST 48-48-10, minibatch 64, T 400
    tune_seeds: tuple = (100, 101, 102)
    gps: coordinatewise.Config = coordinatewise.Config()
    l2l_config: l2l.Config = l2l.Config()
    dtype: str = "float32"                         # the LSTM optimizer's arithmetic at test time
    seed: int = 0                                  # meta-training seed (GPS and L2LBGDBGD)
    run_steps: int = 0     # > problem.steps: the figure is the first steps of runs this long


def _quick(cfg):
    """A tiny version of a figure: 20-step runs of 48-48-C nets, one seed, a small GPS run; the
    baselines' tuning and L2LBGDBGD of the baselines figure's quick version (trained once)."""
    small = coordinatewise.Config(
        iterations=2, samples=4, coords=2, T=20, gamma_grid=(0.01, 0.1),
        sstep=dataclasses.replace(coordinatewise.Config().sstep, window=10, batch=8, steps=5),
        policy=lstm_policy.Config(hidden=8), sample_chunks=1,
        policy_prior=dataclasses.replace(coordinatewise.Config().policy_prior, max_clusters=2),
        dynamics_fit=dataclasses.replace(coordinatewise.Config().dynamics_fit, max_samples=100))
    from paper_figures import paper2_baselines     # its quick tuning and L2LBGDBGD, shared
    base = paper2_baselines.QUICK
    return dataclasses.replace(
        cfg, problem=dataclasses.replace(cfg.problem, d_in=48, hidden=48, steps=20, every=10),
        seeds=(0,), train_problem=base.problem, tune_seeds=base.tune_seeds, gps=small,
        l2l_config=base.l2l_config, run_steps=0)


def trainings(cfg, ctx):
    """GPS, L2LBGDBGD's meta-training and the baselines' tuning run in the pool before the
    figures (``_train.run_job``), GPS first: it is the longest."""
    return [("lstm_gps", ctx, cfg.train_problem, cfg.gps, cfg.seed),
            ("l2l", ctx, cfg.train_problem, cfg.l2l_config, cfg.seed),
            ("tune", ctx, cfg.train_problem, cfg.tune_seeds)]


def _spec(cfg, ctx):
    """What each method is, picklable: {name: (kind, payload)}, and the training logs."""
    tuned, _ = _train.tuned_baselines(cfg.train_problem, cfg.tune_seeds, ctx)
    policy, gps_log = _train.learned_policy(cfg.train_problem, cfg.gps, cfg.seed, ctx)
    params, l2l_log = _train.l2l_params(cfg.train_problem, cfg.l2l_config, cfg.seed, ctx)
    spec = {"learned": ("learned", (policy, cfg.dtype, cfg.gps.features))}
    spec.update({name: ("baseline", tuned[name]) for name in _paper2.BASELINES})
    spec["l2l"] = ("l2l", (params, cfg.l2l_config))
    return spec, tuned, gps_log, l2l_log


def _build(name, kind, payload, net):
    if kind == "learned":
        policy, dtype, features = payload
        return lstm_policy.optimizer(policy, lstm_policy.ranges(net), dtype, features)
    if kind == "l2l":
        return l2l.optimizer(*payload)
    return optimizers.by_name(name, **payload)


def evaluate(job, progress=False):
    """One test run of every method: job = (problem, data_dir, spec, seed) → (curves {name:
    (K,)}, the step each run stopped at {name: int} (problem.steps if it never diverged),
    recorded iterations (K,), the data's title and source). Module level, so a process pool
    (or a cluster's executor) can run it; with ``progress`` it prints a line (stderr) as each
    method's run ends."""
    problem, data_dir, spec, seed = job
    obj = _paper2.objective(problem, data_dir)
    curves, stopped, t0 = {}, {}, time.perf_counter()
    for i, (name, (kind, payload)) in enumerate(spec.items()):
        opt = _build(name, kind, payload, obj.net)
        c, s, its = _paper2.run_methods(problem, obj, {name: opt}, [seed])
        curves[name], stopped[name] = c[name][:, 0], int(s[name][0])
        if progress:
            left = (time.perf_counter() - t0) / (i + 1) * (len(spec) - i - 1)
            print(f"    {problem.data}, seed {seed}: {_paper2.LABELS[name]} done ({i + 1}/"
                  f"{len(spec)}; this run's methods about {left:.0f} s left)", file=sys.stderr,
                  flush=True)
    return curves, stopped, its, (obj.name, obj.description)


def _runs(jobs, ctx):
    """``evaluate`` of every job through ``ctx.map_fn``; a job another figure has run (the
    same problem, methods and seed: Figure 2's runs are the first 400 steps of Figure 5's) is
    read from ``<cache>/runs`` instead, and every new one is stored there."""
    paths = [os.path.join(ctx.cache, "runs", f"run_{_cache.digest(job)}") for job in jobs]
    results = [None if ctx.retrain else _read_run(path) for path in paths]
    todo = [k for k, r in enumerate(results) if r is None]
    if len(todo) < len(jobs):
        _train.say(ctx, f"  loaded {len(jobs) - len(todo)} test runs from the cache")
    report = (benchmark.progress("  test runs done:", len(todo),
                                 lambda job: f"{job[0].data}, seed {job[3]}")
              if ctx.progress else lambda i, job: None)
    work = functools.partial(evaluate, progress=ctx.progress)
    for i, (k, result) in enumerate(zip(todo, ctx.map_fn(work, [jobs[k] for k in todo]))):
        curves, stopped, its, (title, source) = results[k] = result
        io.save_arrays(paths[k], {**{f"curve_{m}": c for m, c in curves.items()}, "its": its},
                       {"stopped": stopped, "title": title, "source": source})
        report(i, jobs[k])
    return results


def _read_run(path):
    try:
        arrays, meta = io.load_arrays(path)
        curves = {m: arrays[f"curve_{m}"] for m in meta["stopped"]}
        return curves, meta["stopped"], arrays["its"], (meta["title"], meta["source"])
    except (OSError, ValueError, KeyError):
        return None


def _prefix(result, steps):
    """The first ``steps`` steps of a longer run's result (curves recorded every k | steps)."""
    curves, stopped, its, source = result
    keep = its <= steps
    if its[keep][-1] != steps:
        raise ValueError(f"steps ({steps}) must be a recorded iteration of the longer runs")
    return ({m: c[keep] for m, c in curves.items()}, {m: s < steps for m, s in stopped.items()},
            its[keep], source)


def compute(cfg, ctx):
    """Curves {data set: (methods, K, S)}, divergence flags, the training logs and the claims."""
    spec, tuned, gps_log, l2l_log = _spec(cfg, ctx)
    steps = max(cfg.run_steps, cfg.problem.steps)
    jobs = [(dataclasses.replace(cfg.problem, data=name, steps=steps), ctx.data_dir, spec, seed)
            for name in cfg.tests for seed in cfg.seeds]
    _train.say(ctx, f"  {len(jobs)} test runs of {len(spec)} methods (data set × seed)"
                    + (f", the first {cfg.problem.steps} of {steps} steps" if steps >
                       cfg.problem.steps else ""))
    results = [_prefix(r, cfg.problem.steps) for r in _runs(jobs, ctx)]
    arrays, sources, S = {}, {}, len(cfg.seeds)
    for k, name in enumerate(cfg.tests):
        part = results[k * S:(k + 1) * S]
        arrays[f"{name}_curves"] = np.stack([np.stack([r[0][m] for r in part], axis=-1)
                                             for m in METHODS])            # (methods, K, S)
        arrays[f"{name}_diverged"] = np.array([[r[1][m] for r in part] for m in METHODS],
                                              dtype=float)
        arrays["its"] = part[0][2]
        sources[name] = {"title": part[0][3][0], "source": part[0][3][1]}
    arrays["gps_policy_cost"] = np.asarray(gps_log["policy_cost"], dtype=float)
    arrays["gps_select_cost"] = np.asarray(gps_log.get("select_cost", np.full(
        len(arrays["gps_policy_cost"]), np.nan)), dtype=float)
    kept = nn_trainer.kept_iteration(arrays["gps_policy_cost"], arrays["gps_select_cost"],
                                     cfg.gps)
    arrays["gps_controller_cost"] = np.asarray(gps_log["controller_cost"], dtype=float)
    from paper_figures import _claims_paper2
    claims = _claims_paper2.figure(cfg.figure, {n: arrays[f"{n}_curves"] for n in cfg.tests},
                                   METHODS)
    meta = {"methods": list(METHODS), "tests": list(cfg.tests), "sources": sources,
            "tuned": tuned, "claims": claims, "gps_kept": kept,
            "features": cfg.gps.features.describe()}
    return {"arrays": arrays, "meta": meta}


def _plot(title):
    def plot(result):
        import matplotlib.pyplot as plt
        a, meta = result["arrays"], result["meta"]
        fig, axes = plt.subplots(1, len(meta["tests"]) + 1, figsize=(18, 4.4))
        _paper2.panels(axes, result, "learned", (2.0, 1.1))
        axes[0].legend(fontsize=7)
        its = np.arange(1, len(a["gps_policy_cost"]) + 1)
        axes[-1].plot(its, a["gps_controller_cost"], "o-", color="tab:gray", label="controllers")
        axes[-1].plot(its, a["gps_policy_cost"], "o-", color=_paper2.COLOURS["learned"],
                      label="LSTM policy")
        if np.isfinite(a["gps_select_cost"]).any():
            axes[-1].plot(its, a["gps_select_cost"], "s--", color=_paper2.COLOURS["learned"],
                          alpha=0.6, label="LSTM policy, mean of fresh MNIST runs (kept by it)")
        k = meta["gps_kept"]
        chosen = (a["gps_select_cost"] if np.isfinite(a["gps_select_cost"][k])
                  else a["gps_policy_cost"])
        axes[-1].plot(its[k], chosen[k], "*", ms=16, color="k", label="the policy kept")
        axes[-1].set_title("GPS meta-training on MNIST")
        axes[-1].set_xlabel("GPS iteration")
        axes[-1].set_ylabel("Σ_t f(x_t) of a 400-step run")
        axes[-1].legend(fontsize=8)
        fig.suptitle(f"{title}\nthe LSTM optimizer reads {meta['features']}" if "features"
                     in meta else title)
        fig.tight_layout()
        return fig
    return plot


def plotted(result):
    """Every number the figure shows (for the JSON file)."""
    a, meta = result["arrays"], result["meta"]
    out = {"iterations": a["its"].tolist(), "diverged": {},
           "gps_policy_cost": a["gps_policy_cost"].tolist(),
           "gps_controller_cost": a["gps_controller_cost"].tolist(),
           "gps_select_cost": [v if np.isfinite(v) else None
                               for v in a["gps_select_cost"].tolist()],
           "gps_kept_iteration": meta["gps_kept"] + 1}
    for name in meta["tests"]:
        with np.errstate(invalid="ignore"):
            mean = np.mean(a[f"{name}_curves"], axis=-1)
        out[name] = {m: mean[k].tolist() for k, m in enumerate(meta["methods"])}
        out["diverged"][name] = {m: float(np.mean(a[f"{name}_diverged"][k]))
                                 for k, m in enumerate(meta["methods"])}
    return out


def make(figure, d_in, hidden, batch, steps, title, run_steps=0):
    """(FULL, QUICK, trainings, compute, plot, plotted) of paper 2's Figure ``figure``; with
    ``run_steps`` its curves are the first ``steps`` steps of runs that long (``Config``)."""
    full = Config(problem=_paper2.Problem(d_in=d_in, hidden=hidden, batch=batch, steps=steps,
                                          every=10), figure=figure, run_steps=run_steps)
    return full, _quick(full), trainings, compute, _plot(title), plotted
