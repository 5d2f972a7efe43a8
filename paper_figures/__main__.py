"""python -m paper_figures [NAMES...] [--quick] [--out DIR] [--seed N] [--jobs N] [--retrain]
                         [--data-dir DIR]

Regenerates paper 1's Figures 1–3, the blog's two figures and paper 2's figures, meta-training
included. Paper 2's data sets are looked for in --data-dir, then in the project's data cache,
then in the offline sources (``python -m lto_ref.data info`` says which are found). Each
figure's numbers are cached (``DIR/cache``), so re-plotting is instant and an interrupted run
resumes; ``--retrain`` recomputes everything. Writes DIR/<name>.png, .pdf, .json and
DIR/CLAIMS.md. ``--jobs N`` (N > 1; default: 2 or the number of cores if fewer) first runs the
meta-trainings the figures need (GPS for each family, the supervised baseline; for paper 2 GPS,
L2LBGDBGD and the baselines' tuning) up to N at a time in a process pool, each training in its
own process (paper 2's GPS, started first, samples in N processes of its own); the figures then
read the trained policies from the cache and run their test runs in the pool.
OpenBLAS/OpenMP default to one thread per process (set OPENBLAS_NUM_THREADS to override): the
trainings' small matrix products gain nothing from more, and threads of two processes would
fight for the cores.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import concurrent.futures
import dataclasses
import importlib
import json
import sys
import time

import numpy as np

from paper_figures import FIGURES, _cache, _claims, _train


class _Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line and exit code 2, no usage dump
        print(f"python -m paper_figures: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parse(argv):
    p = _Parser(prog="python -m paper_figures", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help=f"figures (default all): {FIGURES}")
    p.add_argument("--quick", action="store_true", help="tiny configurations (about a minute)")
    p.add_argument("--out", default="figures", help="output folder (default ./figures)")
    p.add_argument("--seed", type=int, default=0, help="meta-training seed (default 0)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="trainings run at once, each in its own process (default 2)")
    p.add_argument("--retrain", action="store_true", help="ignore every cache")
    p.add_argument("--data-dir", default=None, help="folder with the real data sets (paper 2)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        p.error(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    try:
        os.makedirs(os.path.join(args.out, "cache"), exist_ok=True)
        probe = os.path.join(args.out, ".write-test")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as err:
        p.error(f"--out {args.out!r} is not writable ({err.strerror or err})")
    return args


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _config(name, args):
    module = importlib.import_module(f"paper_figures.{name}")
    return module, dataclasses.replace(module.QUICK if args.quick else module.FULL, seed=args.seed)


def _order(job):
    """Longest trainings first, so that none starts last: paper 2's GPS, then paper 1's GPS on
    the neural net (80 functions, d = 12), then the rest in figure order."""
    if job[0] == "lstm_gps":
        return 0
    return 1 if job[0] == "gps" and job[2] == "two_layer_net" else 2


def _pretrain(names, args, ctx, pool):
    """Every training the figures need, several at once (each in one process of the pool)."""
    jobs = []
    for name in names:
        module, cfg = _config(name, args)
        jobs += [j for j in module.trainings(cfg, ctx) if j not in jobs]
    jobs.sort(key=_order)
    print(f"training {len(jobs)} policies, {args.jobs} at a time", file=sys.stderr, flush=True)
    for kind, family in pool.map(_train.run_job, jobs):
        print(f"  trained: {kind} on {family}", file=sys.stderr, flush=True)


def _figure(name, args, ctx):
    module, cfg = _config(name, args)
    start = time.perf_counter()
    print(f"[{name}] computing (cached results are reused)", file=sys.stderr, flush=True)
    result, cached = _cache.load_or_compute(ctx.cache, name, cfg, lambda c: module.compute(c, ctx),
                                            retrain=args.retrain)
    fig = module.plot(result)
    for ext in ("png", "pdf"):
        fig.savefig(os.path.join(args.out, f"{name}.{ext}"), dpi=110)
    record = {"figure": name, "quick": args.quick, "config": _cache.config_record(cfg),
              "plotted": module.plotted(result), **result["meta"]}
    with open(os.path.join(args.out, f"{name}.json"), "w") as fh:
        json.dump(_jsonable(record), fh, indent=1, sort_keys=True)
    seconds = time.perf_counter() - start
    print(f"[{name}] done in {seconds:.0f} s{' (from cache)' if cached else ''}",
          file=sys.stderr, flush=True)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    import matplotlib
    matplotlib.use("Agg")
    names = args.names or list(FIGURES)
    ctx = _train.Context(cache=os.path.join(args.out, "cache"), retrain=args.retrain,
                         data_dir=args.data_dir, jobs=args.jobs)
    start = time.perf_counter()
    try:
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                _pretrain(names, args, ctx, pool)
                # the pool has just (re)trained everything; it now scores grids of settings
                ctx = ctx._replace(retrain=False, map_fn=pool.map)
                for name in names:
                    _figure(name, args, ctx)
        else:
            for name in names:
                _figure(name, args, ctx)
    except LookupError as err:                      # a data set that is nowhere to be found
        if isinstance(err, (KeyError, IndexError)):  # … not a programming error
            raise
        print(f"python -m paper_figures: {err}", file=sys.stderr)
        return 2
    with open(os.path.join(args.out, "CLAIMS.md"), "w") as fh:
        fh.write(_claims.markdown(_claims.collect(args.out, args.quick)))
    print(f"all done in {time.perf_counter() - start:.0f} s; figures and CLAIMS.md in "
          f"{args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
