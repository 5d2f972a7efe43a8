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
import multiprocessing
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from paper_figures import DESCRIPTIONS, FIGURES, _cache, _claims, _cli, _preflight, _train

PROG = "python -m paper_figures"
DESCRIPTION = """Regenerates the papers' figures, meta-training included: OUT/NAME.png, .pdf, .json
and OUT/CLAIMS.md. Trained policies and results are cached in OUT/cache, so a rerun re-plots at
once and an interrupted run resumes (one run at a time per OUT). Paper 2's figures need data:
`python -m lto_ref.data info` says which sets are found."""


def _parse(argv):
    width = max(map(len, FIGURES))
    p = _cli.Parser(prog=PROG, description=DESCRIPTION,
                epilog="figures (default: all):\n" + "\n".join(
                    f"  {n:<{width}}  {d}" for n, d in DESCRIPTIONS.items()),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="figures to make (listed below)")
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
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        p.error(f"--data-dir {args.data_dir!r} is not a folder")
    problem = _preflight.unwritable(args.out)
    if problem:
        p.error(problem)
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
    """Every training the figures need, several at once (each in one process of the pool);
    the ones already in the cache are only counted."""
    jobs = []
    for name in names:
        module, cfg = _config(name, args)
        jobs += [j for j in module.trainings(cfg, ctx) if j not in jobs]
    todo = sorted(jobs if args.retrain else [j for j in jobs if not _train.is_cached(j)],
                  key=_order)
    if len(todo) < len(jobs):
        _say(f"loaded {len(jobs) - len(todo)} trained policies from the cache")
    if not todo:
        return
    _say(f"training {len(todo)} policies, {args.jobs} at a time")
    start = time.perf_counter()
    for k, (kind, family) in enumerate(pool.map(_train.run_job, todo), 1):
        left = (time.perf_counter() - start) / k * (len(todo) - k)
        _say(f"  trained {k}/{len(todo)}: {kind} on {family}"
             + (f" (about {left:.0f} s left)" if k < len(todo) else ""))


def _say(text):
    print(text, file=sys.stderr, flush=True)


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


def _needs(names, args):
    """{data set: [figures]} of the selected figures."""
    needs = {}
    for name in names:
        for data_set in _preflight.data_sets(_config(name, args)[1]):
            needs.setdefault(data_set, []).append(name)
    return needs


def _run(names, args, ctx):
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs,
                                                    initializer=_train.worker_init) as pool:
            _pretrain(names, args, ctx, pool)
            # the pool has just (re)trained everything; it now scores grids of settings
            ctx = ctx._replace(retrain=False, map_fn=pool.map)
            for name in names:
                _figure(name, args, ctx)
    else:
        for name in names:
            _figure(name, args, ctx)
    with open(os.path.join(args.out, "CLAIMS.md"), "w") as fh:
        fh.write(_claims.markdown(_claims.collect(args.out, args.quick),
                                    _claims.features(args.out, args.quick)))


def _sigint_follows(wait=1.0):
    """Whether a Ctrl-C reaches this process within ``wait`` seconds: one sent to the whole run
    may end the pool's workers (``_train.worker_init``) before this process handles it."""
    try:
        time.sleep(wait)
    except KeyboardInterrupt:
        return True
    return False


def _fail(message, code):
    print(f"{PROG}: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return code


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    import matplotlib
    matplotlib.use("Agg")
    names = args.names or list(FIGURES)
    try:
        held = _preflight.lock(args.out)
    except _preflight.Busy as err:
        return _fail(err, 2)
    start = time.perf_counter()
    interrupted = []

    def on_sigint(signum, frame):                     # remembered: the pool may break first
        interrupted.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, on_sigint)
    try:
        missing = _preflight.missing_data(_needs(names, args), args.data_dir)
        if missing:
            return _fail(missing, 2)
        _run(names, args, _train.Context(cache=os.path.join(args.out, "cache"),
                                         retrain=args.retrain, data_dir=args.data_dir,
                                         jobs=args.jobs))
    except KeyboardInterrupt:
        for child in multiprocessing.active_children():
            child.terminate()
        return _fail("interrupted; what was finished is cached, run again to resume", 130)
    except BrokenProcessPool:
        if interrupted or _sigint_follows():          # Ctrl-C ends the workers first
            return _fail("interrupted; what was finished is cached, run again to resume", 130)
        return _fail("a worker process died (out of memory?); run again to resume", 1)
    except LookupError as err:                      # a data set that is nowhere to be found
        if isinstance(err, (KeyError, IndexError)):  # … not a programming error
            raise
        return _fail(err, 2)
    except (OSError, ValueError) as err:            # files, permissions, malformed data
        if interrupted:
            return _fail("interrupted; what was finished is cached, run again to resume", 130)
        return _fail(err, 1)
    finally:
        held.close()
    _say(f"all done in {time.perf_counter() - start:.0f} s; figures and CLAIMS.md in {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:                       # before or after the run's own handler
        sys.exit(_fail("interrupted", 130))
