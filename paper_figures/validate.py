"""python -m paper_figures.validate FIGURE [KEY=VALUE ...] [--n N] [--cache DIR] [--json FILE]
                                  [--quick]

Design choices are made on validation functions, never on the test functions the figures report.
This command trains a paper-1 figure's GPS policy with some settings changed (``gps.h=1``,
``gps.symmetric=false``, ``gps.dynamics_fit.prior.pooled=false``, ``stabilise=true``,
``tune=released``, …), tunes the baselines as the figure does, runs every method from the
starting points of N functions of the validation split (docs/method.md (10), split 2) for the
figure's horizon, and prints per method the diverged share (92), the median and mean final
objective and the share of iterations at which it has the lowest mean objective; for the learned
optimizer also the share of iterations 1..T with a positive mean margin of victory (93).
For ``sl_vs_rl`` it trains the plain supervised learner instead (``sl.T=10``, ``n_train=10``,
``sl.lr=0.01``, …) and prints its rising and diverged shares on its training functions and on
the validation functions, at the training horizon T and at the end; for ``trajectories_2d`` the
measures of its three claims.

A value is read as the type of its setting: true or false (also yes/no, on/off, 1/0), an integer,
a number, a word, comma-separated for a tuple (``panels=0,2``); a nested group such as ``gps`` or
``sl`` is set only through its keys. Each configuration then checks its values before anything
runs; a bad setting is refused with what its key takes.

Trained policies are kept in --cache (default: a temporary folder, removed at the end).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy is imported

import argparse
import importlib
import json
import sys
import tempfile
import time

import numpy as np

from lto_ref import gps, metrics, objectives, optimizers
from paper_figures import _cli, _paper1, _protocol, _settings, _train

__all__ = ["FIGURES", "configure", "evaluate", "evaluate_supervised", "evaluate_2d", "main"]

configure = _settings.configure
FIGURES = ("fig1_logistic", "fig2_robust", "fig3_neural_net", "sl_vs_rl", "trajectories_2d")


def evaluate(cfg, ctx, n):
    """Every method of a paper-1 figure ``cfg`` on n validation functions: {method: {measure}}."""
    traces, x0_val, _, _, _ = _protocol.learned_against_baselines(
        cfg, ctx, *_paper1.criterion(cfg, cfg.tune), split=objectives.VALIDATION, n=n)
    methods = list(traces)
    curves = {k: t.fs for k, t in traces.items()}
    mean, _ = _protocol.mean_curves(curves)
    best = np.argmin(np.stack([mean[k] for k in methods]), axis=0)[1:]
    mov = metrics.margin_of_victory(curves)["learned"][1:]
    out = {}
    for k, name in enumerate(methods):
        div = metrics.diverged(traces[name], x0_val)
        final = traces[name].fs[-1]
        out[name] = {"diverged": float(np.mean(div)),
                     "median_final": float(np.median(np.where(div, np.inf, final))),
                     "mean_final": float(np.mean(final[~div])) if np.any(~div) else None,
                     "best_mean": float(np.mean(best == k))}
    out["learned"]["mov_positive"] = float(np.mean(mov > 0))
    rivals = np.min([mean[k] for k in ("gd", "momentum", "conjugate_gradient")], axis=0)[1:]
    out["learned"]["below_gd_momentum_cg"] = float(np.mean(mean["learned"][1:] < rivals))
    return out


def evaluate_supervised(cfg, ctx, n):
    """sl_vs_rl's plain supervised learner (``cfg.sl``) on its training functions and on n
    validation functions: {"train" | "validation": sl_vs_rl.shares, "J_final": last J}."""
    from paper_figures import sl_vs_rl
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    val, x0_val = objectives.split_data(family, objectives.VALIDATION, n)
    pol, log = _train.supervised_policy(family, train, x0, cfg.sl, cfg.seed, ctx)
    methods = {"supervised": optimizers.learned(pol, H=cfg.sl.H)}
    out = {split: sl_vs_rl.evaluate(family, problems, start, methods, cfg.steps,
                                     cfg.sl.T)[1]["supervised"]
           for split, problems, start in (("train", train, x0), ("validation", val, x0_val))}
    finite = log["J"][np.isfinite(log["J"])]
    return dict(out, J_final=float(finite[-1]) if finite.size else None)


def evaluate_2d(cfg, ctx, n):
    """trajectories_2d's three measures on n validation functions: shares of functions with
    learned steps larger than every baseline's (2D-1), of overshoot-then-recovery (2D-2), of
    wins among the lowest quartile of ‖g_0‖ (2D-3), and the median step ratio."""
    from paper_figures import trajectories_2d
    traces, _, tuned, _, _ = _protocol.learned_against_baselines(
        cfg, ctx, cfg.tune_steps, split=objectives.VALIDATION, n=n)
    names = trajectories_2d.METHODS
    ratio, rise_ok, slow_win = trajectories_2d.measure(
        np.stack([traces[m].xs for m in names]), np.stack([traces[m].fs for m in names]),
        traces["gd"].gs[0])
    return {"larger_steps": float(np.mean(ratio > 1)), "median_step_ratio": float(np.median(ratio)),
            "overshoot_recovery": float(np.mean(rise_ok)), "slow_wins": float(np.mean(slow_win)),
            "tuned": tuned}


def _print_2d(table, cfg):
    print(f"2D-1 learned steps larger than every baseline's: {table['larger_steps']:.0%} "
          f"(median ratio {table['median_step_ratio']:.3f}); 2D-2 overshoot then recovery: "
          f"{table['overshoot_recovery']:.0%}; 2D-3 wins in the lowest ‖g_0‖ quartile: "
          f"{table['slow_wins']:.0%}")


def _print_supervised(table, cfg):
    print(f"{'functions':<12}{'rising':>8}{'diverged at T':>15}{'diverged at end':>17}")
    for split in ("train", "validation"):
        row = table[split]
        print(f"{split:<12}{row['rising']:>8.0%}{row['diverged_T']:>15.0%}"
              f"{row['diverged_end']:>17.0%}")
    print(f"T = {cfg.sl.T}, end = {cfg.steps}; last meta-objective J = {table['J_final']}")


def _print_table(table, cfg):
    print(f"{'method':<20}{'diverged':>9}{'median f(T)':>13}{'mean f(T)':>12}{'best':>7}")
    for name, row in table.items():
        mean = "-" if row["mean_final"] is None else f"{row['mean_final']:.4g}"
        print(f"{name:<20}{row['diverged']:>9.0%}{row['median_final']:>13.4g}{mean:>12}"
              f"{row['best_mean']:>7.0%}")
    print(f"learned: mean margin of victory > 0 at {table['learned']['mov_positive']:.0%} of "
          f"iterations 1..{cfg.steps}; mean below GD's, momentum's and CG's at "
          f"{table['learned']['below_gd_momentum_cg']:.0%}")


def _usage_error(message):
    _cli.usage_error("python -m paper_figures.validate", message)


def _figures():
    """"  name  first line of its docstring" for each figure (the --help list)."""
    lines = []
    for name in FIGURES:
        doc = importlib.import_module(f"paper_figures.{name}").__doc__ or ""
        lines.append(f"  {name:<17}{doc.strip().splitlines()[0] if doc.strip() else ''}")
    return "\n".join(lines)


def _parse(argv):
    p = _cli.Parser(prog="python -m paper_figures.validate", description=__doc__,
                epilog=f"figures:\n{_figures()}",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=FIGURES, metavar="FIGURE", help="one of the figures below")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                   help="a setting of the figure's configuration (gps.h=1, stabilise=false, …)")
    p.add_argument("--n", type=int, default=100, help="validation functions (default 100)")
    p.add_argument("--cache", default=None, help="keep trained policies here")
    p.add_argument("--json", default=None, help="also write the table to this JSON file")
    p.add_argument("--quick", action="store_true", help="the figure's --quick configuration")
    return p.parse_intermixed_args(argv)


def _check_outputs(args):
    """Usage error (one line, exit 2) unless --json and --cache can be written."""
    if args.json:
        if os.path.isdir(args.json):
            _usage_error(f"--json {args.json}: is a folder")
        try:
            with open(args.json + ".tmp", "w", encoding="utf-8"):
                pass
            os.remove(args.json + ".tmp")
        except OSError as err:
            _usage_error(f"--json {args.json}: cannot write ({err.strerror or err})")
    if args.cache:
        try:
            os.makedirs(args.cache, exist_ok=True)
            tempfile.TemporaryFile(dir=args.cache).close()
        except OSError as err:
            _usage_error(f"--cache {args.cache}: cannot write ({err.strerror or err})")


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    module = importlib.import_module(f"paper_figures.{args.figure}")
    if args.n < 1:
        _usage_error(f"--n must be >= 1, got {args.n}")
    try:
        cfg = configure(module.QUICK if args.quick else module.FULL, args.settings)
    except ValueError as err:
        _usage_error(str(err))
    _check_outputs(args)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = _train.Context(cache=args.cache or tmp)
        evaluate_fn, show = {"sl_vs_rl": (evaluate_supervised, _print_supervised),
                             "trajectories_2d": (evaluate_2d, _print_2d)}.get(
                                 args.figure, (evaluate, _print_table))
        table = evaluate_fn(cfg, ctx, args.n)
    print(f"{args.figure} {' '.join(args.settings) or '(figure settings)'}: {args.n} "
          f"validation functions, {time.perf_counter() - start:.0f} s")
    show(table, cfg)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"figure": args.figure, "settings": args.settings, "n": args.n,
                       "config": gps.config_record(cfg), "table": table}, fh, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
