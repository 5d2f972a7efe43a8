"""python -m paper_figures.screen [DESIGN ...] [--train [--set KEY=VALUE ...] [--gps-seed N]
                                [--cache DIR]] [--seeds S ...] [--steps T] [--json FILE] [--quick]

The controller screen: a feature design for paper 2's learned optimizer is checked in a minute,
before any meta-training. For each design (``nn_features.Features`` written as
``gradient=adagrad,psi1=clip``; ``paper`` is the paper's features) it fits GPS's first
controllers to the teacher's steps (``nn_trainer.fit_gains``: AdaGrad at its tuned learning rate
on the meta-training objective, MNIST 48-48-10, minibatch 64, from the meta-training x⁽⁰⁾), then
runs them without noise on held-out MNIST runs (x⁽⁰⁾ and minibatch stream of seeds 300–302, never
a test data set) in four settings: the 48-48-10 and 100-200-10 nets at minibatch 64 and 10. It
prints each design's AUC (mean true objective over the run) and final value, with the tuned
AdaGrad's and Adam's on the same runs. A policy regressed onto the controllers inherits what
they can do, so a design whose controllers diverge or trail AdaGrad here is not worth a
meta-training.

With --train it also meta-trains the LSTM optimizer by GPS for each design (the figures'
settings, ``--set KEY=VALUE`` changing fields of ``coordinatewise.Config``, e.g. ``noise=0
select_runs=0``; designs go before --set) and screens the kept policy on the same runs, so a
design can be compared with the paper's features on held-out MNIST runs before any figure is
made: ``python -m paper_figures.screen --train paper gradient=adagrad,psi1=clip`` trains and
screens the paper's features as written beside the figures' default. Policies are stored as the
figures store them, in --cache (default: a temporary folder, removed at the end); a policy
trained with the figures' settings in ``DIR/cache`` is reused by ``python -m paper_figures --out
DIR``.

The baselines' tuned settings are read from paper_figures/results/paper2_baselines.json.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy is imported

import argparse
import concurrent.futures
import dataclasses
import json
import sys
import tempfile
import time

import numpy as np

from lto_ref import lstm_policy, nets, nn_features, optimizers
from lto_ref.gps import coordinates, coordinatewise, lstm_sstep, nn_trainer
from paper_figures import _paper2, _settings, _train

__all__ = ["SETTINGS", "parse_design", "controllers", "imitate", "screen_setting", "main"]

SETTINGS = (("48-48-10", 48, 48, 64), ("48-48-10", 48, 48, 10),
            ("100-200-10", 100, 200, 64), ("100-200-10", 100, 200, 10))
TUNED = os.path.join(os.path.dirname(__file__), "results", "paper2_baselines.json")
X0_SEED = 200            # the meta-training x⁽⁰⁾ (paper_figures._train.learned_policy)


def parse_design(text):
    """``nn_features.Features`` from "paper" or "key=value,key=value"; ValueError names the
    bad key or value."""
    if text == "paper":
        return nn_features.PAPER
    fields = {f.name for f in dataclasses.fields(nn_features.Features)}
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"design {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                             f"{sorted(fields)}")
        values[key] = value
    return nn_features.Features(**values)


def controllers(design, gps_cfg, obj, net, seed=0):
    """The first controllers of GPS for ``design``, fitted to the teacher on the meta-training
    objective ``obj`` (``_paper2.Objective``), as a noise-free ``optimizers.Optimizer`` on nets
    with the groups of ``net``; and their gains γ (G, T)."""
    cfg = dataclasses.replace(gps_cfg, features=design, with_phi3=False)
    x0 = _paper2.start(obj.net, [X0_SEED])[0]
    gains = nn_trainer.fit_gains(obj.net, (obj.inputs, obj.labels), x0, cfg, seed)
    lg = coordinates.initial_controllers(gains, len(obj.net.groups), cfg.T,
                                         nn_features.state_dim(False), cfg.init_var)
    return coordinates.controller_optimizer(lg, lstm_policy.ranges(net), with_phi3=False,
                                            features=design), gains


def imitate(design, gps_cfg, obj, steps, seed=0, runs=8):
    """An LSTM optimizer regressed onto the first controllers of ``design`` (``controllers``)
    without GPS: ``runs`` runs of the controllers with their exploration noise on the
    meta-training objective (one stream), K = gps_cfg.coords coordinates per group and run, and
    ``steps`` Adam steps of the S-step (121) onto their mean actions. Screens whether Ψ lets the
    LSTM copy the controllers where they generalise: (policy, S-step losses (steps,))."""
    cfg = dataclasses.replace(gps_cfg, features=design, with_phi3=False)
    net, data = obj.net, (obj.inputs, obj.labels)
    x0 = _paper2.start(net, [X0_SEED])[0]
    lg = nn_trainer.first_controllers(net, data, x0, cfg, seed)
    r_stream, r_pick, r_noise, r_init, r_fit = np.random.default_rng(
        np.random.SeedSequence([seed, 2**31 + 3])).spawn(5)
    groups = lstm_policy.ranges(net)
    batches = nets.minibatches(r_stream, len(data[1]), cfg.batch, cfg.T + 1)
    picks = coordinates.pick(r_pick, groups, runs, cfg.coords)
    act = coordinates.controller_act(lg, groups, r_noise.spawn(runs))
    with np.errstate(all="ignore"):
        sim = coordinates.simulate(net, data, x0, act, None, batches, picks, with_phi3=False,
                                   cost_rows=np.arange(1), features=design)
    samples = coordinates.run_blocks(sim)
    target = (np.einsum("gmtd,gtd->gmt", samples.X, lg.K[:, :, 0])
              + lg.k[:, None, :, 0])                               # the controllers' means
    policy = lstm_policy.init(r_init, len(groups), cfg.policy)
    policy, _, losses = lstm_sstep.regress(r_fit, policy, samples.O, target,
                                           np.ones_like(target),
                                           dataclasses.replace(cfg.sstep, steps=steps))
    return policy, losses


def _methods(spec, train, net):
    """{label: optimizers.Optimizer} of a setting's net from the picklable ``spec``: {label:
    ("controllers", design text) | ("policy", policy path, design text)}."""
    gps_cfg = coordinatewise.Config()
    out = {}
    for label, (kind, *args) in spec.items():
        if kind == "controllers":
            cfg = dataclasses.replace(gps_cfg, T=args[1])
            out[label] = controllers(parse_design(args[0]), cfg, train, net)[0]
        else:
            out[label] = lstm_policy.optimizer(lstm_policy.load(args[0])[0],
                                               lstm_policy.ranges(net), "float32",
                                               parse_design(args[1]))
    return out


def screen_setting(job):
    """One setting's runs: job = (setting, spec (``_methods``), tuned, seeds, steps) →
    {method: (AUC (S,), final (S,))}, with the tuned AdaGrad and Adam. Module level: picklable."""
    (_, d_in, hidden, batch), spec, tuned, seeds, steps = job
    train = _paper2.objective(_paper2.Problem(steps=steps))
    problem = _paper2.Problem(d_in=d_in, hidden=hidden, batch=batch, steps=steps, every=10)
    obj = _paper2.objective(problem)
    methods = _methods({k: v + ((steps,) if v[0] == "controllers" else ()) for k, v in
                        spec.items()}, train, obj.net)
    methods.update({name: optimizers.by_name(name, **tuned[name]) for name in ("adagrad", "adam")})
    with np.errstate(all="ignore"):
        curves, _, _ = _paper2.run_methods(problem, obj, methods, seeds)
    out = {}
    for name, c in curves.items():                      # (K, S); a stopped run keeps its last
        c = np.where(np.isfinite(c), c, np.inf)
        out[name] = (c.mean(axis=0), c[-1])
    return out


def _table(settings, results, methods):
    lines = ["| setting | " + " | ".join(list(methods) + ["AdaGrad", "Adam"]) + " |",
             "|---" * (len(methods) + 3) + "|"]
    for setting, res in zip(settings, results):
        cells = [f"{res[m][0].mean():.4g} / {res[m][1].mean():.4g}"
                 for m in list(methods) + ["adagrad", "adam"]]
        lines.append(f"| {setting[1]}-{setting[2]}-10, minibatch {setting[3]} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _train_policies(args, cache, steps):
    """Meta-train the LSTM optimizer by GPS for each of args.designs, stored as the figures
    store it (``_train.learned_policy``: ``<cache>/policies``, resumable from
    ``<cache>/checkpoints``, so ``python -m paper_figures --out DIR`` reuses a policy trained
    with the figures' settings in ``DIR/cache``): {design: policy path}. Prints GPS's progress."""
    problem = _paper2.Problem(steps=steps)
    paths = {}
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        ctx = _train.Context(cache=cache, map_fn=pool.map)
        for text in args.designs:
            cfg = _settings.configure(dataclasses.replace(
                coordinatewise.Config(), T=steps, features=parse_design(text)), args.set)
            if args.quick:
                cfg = dataclasses.replace(cfg, iterations=1, samples=2, coords=2,
                                          sstep=dataclasses.replace(cfg.sstep, steps=2),
                                          policy=lstm_policy.Config(hidden=4))
            print(f"GPS for {text} ({cfg.iterations} iterations, seed {args.gps_seed})",
                  file=sys.stderr)
            _train.learned_policy(problem, cfg, args.gps_seed, ctx, x0_seed=X0_SEED)
            paths[text] = _train.learned_policy_path(problem, cfg, args.gps_seed, ctx,
                                                     x0_seed=X0_SEED)
    return paths


def _imitations(args, cache, steps):
    """``imitate`` for each of args.designs: {design: policy path in ``cache``}."""
    obj = _paper2.objective(_paper2.Problem(steps=steps))
    cfg = _settings.configure(dataclasses.replace(coordinatewise.Config(), T=steps), args.set)
    if args.quick:
        cfg = dataclasses.replace(cfg, coords=2, policy=lstm_policy.Config(hidden=4),
                                  sstep=dataclasses.replace(cfg.sstep, window=10, batch=8))
    paths = {}
    for text in args.designs:
        t0 = time.perf_counter()
        policy, losses = imitate(parse_design(text), cfg, obj, args.imitate,
                                 runs=2 if args.quick else 8)
        path = os.path.join(cache, "imitation_" + text.replace("=", "-").replace(",", "+"))
        os.makedirs(cache, exist_ok=True)
        lstm_policy.save(path, policy, design=text, losses=[float(losses[0]),
                                                            float(losses[-1])])
        print(f"imitation of {text}: S-step loss {losses[:10].mean():.3g} -> "
              f"{losses[-10:].mean():.3g}, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        paths[text] = path
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m paper_figures.screen",
        description="Fit GPS's first controllers to AdaGrad for each feature design (or, with "
                    "--train, meta-train the LSTM optimizer) and run them on held-out MNIST runs "
                    "in four settings (AUC / final value).")
    parser.add_argument("designs", nargs="*", default=["paper", "gradient=adagrad,psi1=clip"],
                        help="'paper' or KEY=VALUE,... of nn_features.Features")
    parser.add_argument("--seeds", type=int, nargs="+", default=[300, 301, 302],
                        help="held-out MNIST runs (x0 and minibatch stream)")
    parser.add_argument("--steps", type=int, default=400, help="steps of every run")
    parser.add_argument("--train", action="store_true",
                        help="meta-train the LSTM optimizer by GPS for each design and screen it")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="GPS settings for --train (coordinatewise.Config fields)")
    parser.add_argument("--gps-seed", type=int, default=0, help="meta-training seed (--train)")
    parser.add_argument("--imitate", type=int, default=0, metavar="STEPS",
                        help="also regress an LSTM onto each design's controllers for STEPS Adam "
                             "steps (no GPS) and screen it")
    parser.add_argument("--cache", default=None,
                        help="where --train keeps its policies (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the table's numbers here")
    parser.add_argument("--quick", action="store_true", help="20 steps, one seed")
    args = parser.parse_args(argv)
    try:
        for text in args.designs:
            parse_design(text)
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        _settings.configure(coordinatewise.Config(), args.set)
        with open(TUNED, encoding="utf-8") as fh:
            tuned = json.load(fh)["tuned"]
    except (ValueError, OSError, KeyError) as err:
        print(f"python -m paper_figures.screen: error: {err}", file=sys.stderr)
        return 2
    steps, seeds = (20, args.seeds[:1]) if args.quick else (args.steps, args.seeds)
    with tempfile.TemporaryDirectory() as scratch:
        return _screen(args, args.cache or scratch, tuned, steps, seeds)


def _screen(args, cache, tuned, steps, seeds):
    spec = {f"controllers {t}": ("controllers", t) for t in args.designs}
    if args.imitate:
        spec.update({f"imitation {t}": ("policy", p, t) for t, p in
                     _imitations(args, cache, steps).items()})
    if args.train:
        os.makedirs(cache, exist_ok=True)
        spec.update({f"LSTM {t}": ("policy", p, t) for t, p in
                     _train_policies(args, cache, steps).items()})
    jobs = [(s, spec, tuned, tuple(seeds), steps) for s in SETTINGS]
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        results = []
        for i, res in enumerate(pool.map(screen_setting, jobs)):
            results.append(res)
            print(f"  setting {i + 1}/{len(jobs)} done, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
    print(_table(SETTINGS, results, spec))
    if args.json:
        record = {"methods": {k: list(v) for k, v in spec.items()}, "seeds": list(seeds),
                  "steps": steps, "settings": [list(s) for s in SETTINGS],
                  "results": [{m: [v.tolist() for v in r[m]] for m in r} for r in results]}
        with open(args.json + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
