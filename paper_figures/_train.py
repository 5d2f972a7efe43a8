"""Meta-training for the figures, cached: GPS and supervised policies as .npz + .json files.

A trained policy is stored under ``<cache>/policies/<name>`` with its training log; while a GPS run
is unfinished it checkpoints under ``<cache>/checkpoints/<name>`` (``gps.train``), so an
interrupted run resumes where it stopped, and the checkpoint goes once the policy is stored. The
name carries a hash of all the result depends on (family, training functions, configuration, seed,
options). GPS's rest-stability projection (``lto_ref.analysis.stabilise``) is cached apart.
"""
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from typing import NamedTuple

import numpy as np

from lto_ref import benchmark, gps, io, policy as policy_lib, supervised
from lto_ref.analysis import stabilise

__all__ = ["Context", "say", "gps_policy", "supervised_policy", "l2l_params", "tuned_baselines",
           "learned_policy", "learned_policy_path", "run_job", "is_cached", "worker_init", "NotCached"]


class Context(NamedTuple):
    """Where and how figures compute: cache folder, --retrain, the trainers' map_fn, progress,
    --data-dir (paper 2's data sets; ``data.find`` looks there first), and how many processes
    a training run in a pool may start for its own map (paper 2's GPS, ``run_job``)."""
    cache: str
    retrain: bool = False
    map_fn: object = map
    progress: bool = True
    data_dir: object = None
    jobs: int = 1
    load_only: bool = False      # raise NotCached instead of training (``is_cached``)


class NotCached(Exception):
    """A training ``ctx.load_only`` forbade: its result is not in the cache."""


def _need_training(ctx, name):
    if ctx.load_only:
        raise NotCached(name)


def worker_init():
    """A pool worker leaves on Ctrl-C (sent to every process of the run) at once and silently:
    files are written atomically, so the cache stays as sound as after a SIGKILL."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _resuming(train, checkpoint):
    """``train()``, and once more from scratch if it stops at an unreadable checkpoint under
    ``checkpoint`` (the trainers raise ValueError naming the file), with a one-line warning."""
    try:
        return train()
    except ValueError as err:
        if checkpoint not in str(err):
            raise
        print(f"warning: discarding the checkpoint {checkpoint}, which cannot be resumed "
              f"({str(err).splitlines()[0]}); training from scratch", file=sys.stderr, flush=True)
        shutil.rmtree(checkpoint, ignore_errors=True)
        return train()


def _name(kind, family, x0, cfg, seed, **extra):
    record = json.dumps({"kind": kind, "family": family.name, "x0": np.round(x0, 12).tolist(),
                         "config": gps.config_record(cfg), "seed": seed, **extra}, sort_keys=True)
    return f"{kind}_{family.name}_{x0.shape[0]}_{hashlib.sha256(record.encode()).hexdigest()[:10]}"


def _load(path, load=policy_lib.load):
    """(policy, log arrays) of a finished training (``load``: the policy's reader), or None."""
    if not os.path.exists(io.paths(path)[1]) or not os.path.exists(io.paths(path + "_log")[1]):
        return None
    try:
        pol, _ = load(path)
        log, _ = io.load_arrays(path + "_log")
    except ValueError:
        return None
    return pol, log


def _store(path, pol, log, kind, save=policy_lib.save, **meta):
    """Write a policy (``save``: its writer) and its log arrays; returns (policy, {field: array})."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in log._asdict().items()}
    io.save_arrays(path + "_log", arrays, {"kind": kind})
    save(path, pol, **meta)
    return pol, arrays


def _discard(checkpoint):
    """Remove a finished training's checkpoint, and the checkpoints folder once it is empty."""
    shutil.rmtree(checkpoint, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(checkpoint))
    except OSError:                                 # another training's checkpoint is there
        pass


def say(ctx, text):
    """Print a progress line (stderr) unless ``ctx.progress`` is off."""
    if ctx.progress:
        print(text, file=sys.stderr, flush=True)


def gps_policy(family, problems, x0, cfg, seed, ctx, *, stabilised=False):
    """The GPS-trained policy of these training functions: (Policy, {log field: array}).

    With ``stabilised`` the policy after the rest-stability projection (docs/deviations.md).
    """
    name = _name("gps", family, x0, cfg, seed)
    path = os.path.join(ctx.cache, "policies", name)
    checkpoint = os.path.join(ctx.cache, "checkpoints", name)
    found = None if ctx.retrain else _load(path)
    if found is None:
        _need_training(ctx, name)
        if ctx.retrain:
            shutil.rmtree(checkpoint, ignore_errors=True)
        say(ctx, f"  GPS ({cfg.algorithm}) on {x0.shape[0]} {family.name} functions, "
                  f"{cfg.iterations} iterations")
        callback = (benchmark.progress(f"  GPS {family.name}", cfg.iterations,
                                       benchmark.describe_gps) if ctx.progress else None)
        pol, log = _resuming(lambda: gps.train(family, problems, x0, cfg, seed=seed,
                                               map_fn=ctx.map_fn, checkpoint_dir=checkpoint,
                                               callback=callback), checkpoint)
        found = _store(path, pol, log, "gps_log", family=family.name,
                       method=f"gps-{cfg.algorithm}", seed=seed, H=cfg.H)
        _discard(checkpoint)
    return _stabilised(family, problems, x0, cfg, found, path, ctx) if stabilised else found


def _stabilised(family, problems, x0, cfg, found, path, ctx):
    """The rest-stability projection of a trained GPS policy, cached beside it."""
    pol, log = found
    if not ctx.retrain and (done := _load(path + "_stabilised")) is not None:
        return done[0], log
    _need_training(ctx, path + "_stabilised")
    start = time.perf_counter()
    new, info = stabilise.stabilise(pol, family, problems, x0, H=cfg.H, h=cfg.h, T=cfg.T)
    r = info["r"]
    say(ctx, f"  rest-stability projection: ρ > {r} on {np.sum(info['rho_before'] > r)} → "
              f"{np.sum(info['rho_after'] > r)} of {x0.shape[0]} training functions (Hessians "
              f"× {info['margin']}), {info['nit']} L-BFGS iterations, "
              f"{time.perf_counter() - start:.0f} s")
    io.save_arrays(path + "_stabilised_log", log, {"kind": "gps_log"})
    policy_lib.save(path + "_stabilised", new, family=family.name, method="gps-stabilised",
                    H=cfg.H, rho_before=info["rho_before"].tolist(),
                    rho_after=info["rho_after"].tolist(), nit=info["nit"])
    return new, log


def supervised_policy(family, problems, x0, cfg, seed, ctx, **options):
    """The supervised (backprop-through-the-unroll) policy: (Policy, {log field: array});
    ``options`` (``plateau=(chunk, tol)``) go to ``supervised.train`` and into the name."""
    name = _name("sl", family, x0, cfg, seed, **options)
    path = os.path.join(ctx.cache, "policies", name)
    if not ctx.retrain and (found := _load(path)) is not None:
        return found
    _need_training(ctx, name)
    callback = (benchmark.progress("  supervised", cfg.iterations, lambda row: f"J {row.J:.4f}",
                                   every=100) if ctx.progress else None)
    pol, log = supervised.train(family, problems, x0, cfg, seed, callback=callback, **options)
    return _store(path, pol, log, "supervised_log", family=family.name, method="supervised",
                  seed=seed, H=cfg.H)


def _paper2_path(kind, problem, description, ctx, **fields):
    """``<cache>/policies/<kind>_<data set>_<hash of the problem, the data and fields>``."""
    record = json.dumps({"problem": gps.config_record(problem), "data": description, **fields},
                        sort_keys=True)
    digest = hashlib.sha256(record.encode()).hexdigest()[:10]
    return os.path.join(ctx.cache, "policies", f"{kind}_{problem.data}_{digest}")


def l2l_params(problem, cfg, seed, ctx):
    """L2LBGDBGD meta-trained on ``problem`` (paper 2's MNIST objective): (params, {log: array})."""
    from lto_ref import l2l
    from paper_figures import _paper2
    obj = _paper2.objective(problem, ctx.data_dir)
    path = _paper2_path("l2l", problem, obj.description, ctx, config=gps.config_record(cfg),
                        seed=seed)
    if not ctx.retrain and (found := _load(path, l2l.load)) is not None:
        return found
    _need_training(ctx, path)
    say(ctx, f"  L2LBGDBGD on {obj.name}: {cfg.epochs} epochs ({obj.description})")
    callback = (benchmark.progress("  L2LBGDBGD unroll", cfg.epochs * (cfg.T // cfg.unroll),
                                   lambda row: f"meta-loss {row.loss:.3f}", every=100)
                if ctx.progress else None)
    params, log = l2l.train(obj.net, obj.inputs, obj.labels, cfg, seed=seed, callback=callback)
    return _store(path, params, log, "l2l_log", l2l.save, data=obj.description, seed=seed)


def tuned_baselines(problem, seeds, ctx):
    """Paper 2's seven baselines tuned on ``problem`` (MNIST) from the x⁽⁰⁾ of ``seeds``,
    cached: ({name: best setting}, {name: [(setting, score)]}) (``_paper2.tune_baselines``)."""
    from paper_figures import _paper2
    obj = _paper2.objective(problem, ctx.data_dir)
    path = _paper2_path("tuned", problem, obj.description, ctx, seeds=list(seeds))
    if not ctx.retrain and os.path.exists(io.paths(path)[1]):
        try:
            meta = io.load_arrays(path)[1]
            return meta["tuned"], {k: [tuple(r) for r in v] for k, v in meta["tables"].items()}
        except (ValueError, KeyError):
            pass
    _need_training(ctx, path)
    say(ctx, f"  tuning the baselines on {obj.name} ({obj.description})")
    best, tables = _paper2.tune_baselines(
        problem, obj, seeds, map_fn=ctx.map_fn,
        report=lambda name, b, sec: say(ctx, f"    {_paper2.LABELS[name]}: {b} ({sec:.0f} s)"))
    io.save_arrays(path, {}, {"kind": "tuned_baselines", "tuned": best,
                              "tables": {k: [[p, float(v)] for p, v in t] for k, t in
                                         tables.items()}})
    return best, tables


def learned_policy_path(problem, cfg, seed, ctx, *, x0_seed=200):
    """Where ``learned_policy`` stores its policy (no extension): the name carries a hash of the
    problem, the settings, the seeds and the data set's description."""
    from paper_figures import _paper2
    return _paper2_path("lstm_gps", problem, _paper2.objective(problem, ctx.data_dir).description,
                        ctx, config=gps.config_record(cfg), seed=seed, x0_seed=x0_seed)


def learned_policy(problem, cfg, seed, ctx, *, x0_seed=200):
    """Paper 2's LSTM optimizer meta-trained by GPS on ``problem`` (MNIST) from the x⁽⁰⁾ of
    ``x0_seed`` (not a seed the figures show): (lstm_policy.Policy, {log field: array})."""
    from lto_ref import lstm_policy
    from lto_ref.gps import nn_trainer
    from paper_figures import _paper2
    obj = _paper2.objective(problem, ctx.data_dir)
    path = learned_policy_path(problem, cfg, seed, ctx, x0_seed=x0_seed)
    if not ctx.retrain and (found := _load(path, lstm_policy.load)) is not None:
        return found
    _need_training(ctx, os.path.basename(path))
    checkpoint = os.path.join(ctx.cache, "checkpoints", os.path.basename(path))
    if ctx.retrain:
        shutil.rmtree(checkpoint, ignore_errors=True)
    say(ctx, f"  GPS for the LSTM optimizer on {obj.name}: {cfg.iterations} iterations of "
             f"{cfg.samples} runs × {cfg.T} steps ({obj.description})")
    callback = (benchmark.progress("  GPS (LSTM optimizer)", cfg.iterations,
                                   benchmark.describe_gps) if ctx.progress else None)
    x0 = _paper2.start(obj.net, [x0_seed])[0]
    pol, log = _resuming(lambda: nn_trainer.train(
        obj.net, (obj.inputs, obj.labels), x0, cfg, seed=seed, map_fn=ctx.map_fn,
        checkpoint_dir=checkpoint, callback=callback), checkpoint)
    found = _store(path, pol, log, "lstm_gps_log", lstm_policy.save, data=obj.description,
                   seed=seed, x0_seed=x0_seed)
    _discard(checkpoint)
    return found


def run_job(job):
    """Train one policy into the cache. job = ("gps", ctx, family name, n_train, cfg, seed,
    stabilised), ("sl", ctx, family name, n_train, cfg, seed), ("l2l", ctx, problem, cfg,
    seed), ("tune", ctx, problem, seeds) or ("lstm_gps", ctx, problem, cfg, seed). Module level
    and picklable, so independent trainings can run in a process pool; paper 2's GPS, the
    longest, samples its runs in a pool of its own of ``ctx.jobs`` processes.
    """
    from lto_ref import objectives
    kind, ctx, *args = job
    if kind in ("l2l", "tune"):
        (l2l_params if kind == "l2l" else tuned_baselines)(*args, ctx)
        return kind, args[0].data
    if kind == "lstm_gps":
        if ctx.jobs > 1 and not ctx.load_only:
            with concurrent.futures.ProcessPoolExecutor(ctx.jobs, initializer=worker_init) as pool:
                learned_policy(*args, ctx._replace(map_fn=pool.map))
        else:
            learned_policy(*args, ctx)
        return kind, args[0].data
    family_name, n_train, *rest = args
    family = objectives.family_by_name(family_name)
    train, x0 = objectives.split_data(family, objectives.TRAIN, n_train)
    if kind == "gps":
        cfg, seed, stabilised = rest
        gps_policy(family, train, x0, cfg, seed, ctx, stabilised=stabilised)
    else:
        supervised_policy(family, train, x0, *rest, ctx)
    return kind, family_name


def is_cached(job):
    """Whether ``run_job(job)`` would only read the cache (no training)."""
    kind, ctx, *args = job
    try:
        run_job((kind, ctx._replace(load_only=True, progress=False, retrain=False), *args))
    except NotCached:
        return False
    return True
