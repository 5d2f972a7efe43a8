"""python -m paper_figures.sl_map [--quick] [--out DIR] [--families NAME ...] [--jobs N]
                                [--plot-only]

Where does supervised meta-training overfit? The blog: "On almost all unseen objective
functions, the learned optimizer started off reasonably, but quickly diverged after a while. On
the training objective functions, it exhibited no such issues." It states neither the horizon,
the number of training functions nor the family, so this command maps them: the plain supervised
learner (``_sl_map``) on a grid of n_train (training functions) × T (horizon) per family,
trained until its meta-objective stops improving (by less than 0.5 % from one chunk of 100 Adam
steps to the next; at most 2,000), and the shares of diverged and rising runs on its training
functions and on 100 validation functions at iterations T, 100 and 4T. GPS's policy of each
paper-1 figure is read from OUT/cache where ``python -m paper_figures --out OUT`` trained it
(never trained here) and evaluated the same way, in the cell where it was trained.

Writes OUT/sl_map.json (every number) and OUT/sl_map.png (the validation-minus-training diverged
share at iteration 100, one panel per family); trained policies and cell results are cached in
OUT/cache, so a second run re-plots at once and an interrupted one resumes. --plot-only redraws
the PNG from OUT/sl_map.json alone.
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
import sys
import time
from concurrent.futures.process import BrokenProcessPool

from lto_ref import supervised
from paper_figures import _cli, _preflight, _sl_map, _sl_map_plot, _train

__all__ = ["Row", "Grid", "FULL", "QUICK", "cells", "compute", "main"]

PROG = "python -m paper_figures.sl_map"
LR, RR, NN = "logistic_regression", "robust_linear_regression", "two_layer_net"


@dataclasses.dataclass(frozen=True)
class Row:
    """A family's cells: every n_train × T, and the paper-1 figure whose GPS policy is shown."""
    family: str
    n_train: tuple
    T: tuple
    figure: str


@dataclasses.dataclass(frozen=True)
class Grid:
    rows: tuple
    sl: supervised.Config          # the plain learner; ``iterations`` is the cap
    plateau: tuple                 # (chunk, tol) of supervised.plateaued
    n_val: int                     # validation functions
    quick: bool = False            # GPS from the figures' QUICK configurations
    seed: int = 0


# robust regression's and the neural net's largest n_train are their figures' (GPS's cells)
FULL = Grid(rows=(Row(LR, (1, 3, 10, 30, 90), (10, 20, 40), "fig1_logistic"),
                  Row(RR, (1, 3, 10, 30, 120), (40,), "fig2_robust"),
                  Row(NN, (1, 3, 10, 30, 80), (40,), "fig3_neural_net")),
            sl=supervised.Config(iterations=2000), plateau=(100, 0.005), n_val=100)
QUICK = Grid(rows=(Row(LR, (1, 4), (10, 20), "fig1_logistic"), Row(RR, (4,), (20,), "fig2_robust"),
                   Row(NN, (4,), (20,), "fig3_neural_net")),
             sl=supervised.Config(iterations=20), plateau=(5, 0.005), n_val=6, quick=True)


def cells(grid, families):
    """The grid's cells (``_sl_map.Cell``) of the rows whose family is in ``families``."""
    return [_sl_map.Cell(row.family, n, dataclasses.replace(grid.sl, T=T), grid.plateau,
                         grid.n_val, grid.seed)
            for row in grid.rows if row.family in families for T in row.T for n in row.n_train]


def _weight(cell):
    """Rough relative cost of a cell's training: per iteration about proportional to T, a third
    more with 90 functions than with 1, twice as much for the neural net (timed cells)."""
    return cell.sl.T * (cell.n_train + 200) * (2 if cell.family == NN else 1)


def _say(text):
    print(text, file=sys.stderr, flush=True)


def _train_cells(todo, ctx, jobs):
    """{cell name: meta} of every cell, longest first, ``jobs`` at a time, with progress."""
    todo = sorted(todo, key=_weight, reverse=True)
    total, done, results = sum(map(_weight, todo)), 0, {}
    start = time.perf_counter()
    _say(f"[sl_map] {len(todo)} cells, {jobs} at a time (cached ones are read back)")
    with concurrent.futures.ProcessPoolExecutor(jobs, initializer=_train.worker_init) as pool:
        futures = {pool.submit(_sl_map.run_cell, (cell, ctx)): cell for cell in todo}
        for future in concurrent.futures.as_completed(futures):
            cell, (meta, cached) = futures[future], future.result()
            results[cell.name] = meta
            if cached:                             # read back at once: not in the rate
                total -= _weight(cell)
            else:
                done += _weight(cell)
            rate = (time.perf_counter() - start) / done if done else 0.0
            left = (f"; about {rate * (total - done):.0f} s left"
                    if done and len(results) < len(todo) else "")
            _say(f"[sl_map] {len(results)}/{len(todo)} {cell.family} n_train={cell.n_train} "
                 f"T={cell.sl.T}{' (cached)' if cached else ''}: {meta['iterations']} "
                 f"iterations ({meta['stopped']}), diverged "
                 f"at 100 train {meta['train']['100']['diverged']:.0%} / validation "
                 f"{meta['validation']['100']['diverged']:.0%}{left}")
    return results


def _gps(row, grid, ctx):
    """GPS's numbers at its figure's cell of ``row``, or None (with a warning) if not cached."""
    module = importlib.import_module(f"paper_figures.{row.figure}")
    cfg = module.QUICK if grid.quick else module.FULL
    found = _sl_map.gps_result(cfg, ctx, grid.n_val)
    if found is None:
        _say(f"[sl_map] warning: {row.figure}'s GPS policy is not in {ctx.cache} (run python -m "
             f"paper_figures {row.figure}{' --quick' if grid.quick else ''} with this --out); "
             f"its gap is left out")
    return found


def compute(grid, families, ctx, jobs):
    """The map's record (JSON-able): the settings and, per row, every cell's and GPS's numbers."""
    by_name = _train_cells(cells(grid, families), ctx, jobs)
    rows = [{"family": r.family, "n_train": list(r.n_train), "T": list(r.T), "figure": r.figure,
             "cells": [by_name[c.name] for c in cells(grid, [r.family])],
             "gps": _gps(r, grid, ctx)} for r in grid.rows if r.family in families]
    return {"quick": grid.quick, "horizons": list(_sl_map.HORIZONS), "n_val": grid.n_val,
            "seed": grid.seed, "criterion": {"chunk": grid.plateau[0], "tol": grid.plateau[1],
                                             "max_iterations": grid.sl.iterations},
            "sl": {"lr": grid.sl.lr, "clip": grid.sl.clip, "feature_grad": grid.sl.feature_grad,
                   "symmetric": grid.sl.symmetric, "H": grid.sl.H}, "rows": rows}


def _usage_error(message):
    _cli.usage_error(PROG, message)


def _parse(argv):
    p = _cli.Parser(prog=PROG, description=__doc__.split("\n\n", 1)[1],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny grid (under a minute)")
    p.add_argument("--out", default="figures", help="output folder (default ./figures)")
    p.add_argument("--families", nargs="+", metavar="NAME", default=[r.family for r in FULL.rows],
                   help=f"rows of the map (default all: {', '.join(r.family for r in FULL.rows)})")
    p.add_argument("--jobs", type=int, default=2, help="cells trained at once (default 2)")
    p.add_argument("--plot-only", action="store_true", help="redraw OUT/sl_map.png from the JSON")
    args = p.parse_args(argv)
    known = [r.family for r in FULL.rows]
    unknown = [f for f in args.families if f not in known]
    if unknown:
        p.error(f"--families: unknown family {unknown[0]!r}; choose from {', '.join(known)}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def _write(path, write):
    """Write ``path`` atomically: ``write(temporary path)``, then rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def _dump(record, path):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, sort_keys=True, allow_nan=False)


def _fail(message, code):
    print(f"{PROG}: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return code


def _plot(record, out):
    import matplotlib
    matplotlib.use("Agg")
    fig = _sl_map_plot.plot(record)
    _write(os.path.join(out, "sl_map.png"), lambda p: fig.savefig(p, dpi=110, format="png"))


def _plot_only(out):
    path = os.path.join(out, "sl_map.json")
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        _sl_map_plot.check(record)
    except (OSError, ValueError) as err:
        _usage_error(f"--plot-only: cannot read {path} ({err})")
    _plot(record, out)
    _say(f"[sl_map] {os.path.join(out, 'sl_map.png')} redrawn from {path}")
    return 0


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.plot_only:
        return _plot_only(args.out)
    problem = _preflight.unwritable(args.out)
    if problem:
        _usage_error(problem)
    try:
        held = _preflight.lock(args.out)
    except _preflight.Busy as err:
        _usage_error(err)
    start = time.perf_counter()
    ctx = _train.Context(cache=os.path.join(args.out, "cache"), progress=False)
    try:
        record = compute(QUICK if args.quick else FULL, args.families, ctx, args.jobs)
    except KeyboardInterrupt:
        for child in multiprocessing.active_children():
            child.terminate()
        return _fail("interrupted; finished cells are cached, run again to resume", 130)
    except BrokenProcessPool:
        return _fail("a worker process died (out of memory?); run again to resume", 1)
    except (OSError, ValueError) as err:
        return _fail(err, 1)
    finally:
        held.close()
    record["seconds"] = round(time.perf_counter() - start)
    _write(os.path.join(args.out, "sl_map.json"), lambda p: _dump(record, p))
    _plot(record, args.out)
    _say(f"[sl_map] done in {record['seconds']} s: sl_map.json and sl_map.png in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
