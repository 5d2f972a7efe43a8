"""Speed measurements: ``python -m lto_ref.benchmark [--problems N] [--repeats R]``.

Measured side by side in one run (the machines are shared and noisy, so only ratios taken in the
same run are quoted), on N = 1800 logistic-regression problems by default:

1. loss + gradient: autograd's reverse pass (``autodiff.value_and_grad``) against a hand-written
   NumPy gradient of the same loss; the ratio is autograd's overhead (target ≤ 3×);
2. rollout throughput (problem-steps per second) of ``rollout.run`` with GD, L-BFGS and the
   learned optimizer (a freshly initialised 229-50-4 policy: its cost does not depend on θ);
3. seconds per supervised meta-training iteration (90 LR problems, T = 40, both feature-gradient
   modes);
4. with ``--gps M``: a GPS training run on M LR training functions (default settings,
   ``--algorithm`` badmm or mdgps) — seconds and costs per iteration — and the policy's mean
   objective on 100 held-out functions against GD and momentum tuned on the training functions;
5. per-point Hessians of the two-layer net at the 8,000 points of one GPS cost quadratisation
   block (``--hessian-points``): the closed form (``closed_form``) against autograd's d
   Hessian-vector products (``autodiff.hessians``);
6. with ``--paper2`` (and ``--lstm-gps``): paper 2's objectives, baselines, L2LBGDBGD and the
   GPS-trained LSTM optimizer (``benchmark_paper2``).

Timings use the median of R interleaved repeats. This module is an entry point: it prints, and
``progress`` makes the trainers' callbacks that print progress with an estimate of the time left
(``paper_figures`` uses it too).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one BLAS thread per process, set before
os.environ.setdefault("OMP_NUM_THREADS", "1")        # numpy loads (when run as a command)

import argparse  # noqa: E402
import functools
import statistics
import sys
import time

import numpy as np

from lto_ref import autodiff, features, nets, objectives, optimizers, policy, rollout, supervised


def progress(label, total, describe, *, every=1, file=None):
    """A trainer callback ``(i, row)`` printing ``label i/total: describe(row) (about N s left)``
    every ``every`` iterations and at the last, to ``file`` (stderr by default)."""
    start = time.perf_counter()

    def callback(i, row):
        if (i + 1) % every and i + 1 != total:
            return
        left = (time.perf_counter() - start) / (i + 1) * (total - i - 1)
        print(f"{label} {i + 1}/{total}: {describe(row)} (about {left:.0f} s left)",
              file=file or sys.stderr, flush=True)
    return callback


def describe_gps(row):
    """One line of a GPS log row."""
    select = (f" (selection runs {row.select_cost:.3f})"
              if np.isfinite(getattr(row, "select_cost", np.nan)) else "")
    return (f"controllers {row.controller_cost:.3f}, policy {row.policy_cost:.3f}{select}, "
            f"mean KL {np.mean(row.kl):.2f}, {row.seconds:.1f} s")


def logistic_value_and_grad_numpy(x, problems, lam=5e-4):
    """Hand-written LR loss and gradient (docs/method.md (3)–(4)): ∇_w = Aᵀ(σ(z) − y)/N + λw, ∇_b = mean(σ(z) − y).

    x : (n, d), problems.a : (n, N, d − 1), problems.y : (n, N)  ->  f (n,), g (n, d)
    """
    w, b = x[:, :-1], x[:, -1]
    z = np.einsum("nNi,ni->nN", problems.a, w) + b[:, None]
    f = np.mean(np.logaddexp(0.0, z) - problems.y * z, axis=1) + 0.5 * lam * np.sum(w * w, 1)
    r = 0.5 * (1.0 + np.tanh(0.5 * z)) - problems.y                     # σ(z) − y, (n, N)
    g_w = np.einsum("nNi,nN->ni", problems.a, r) / z.shape[1] + lam * w
    return f, np.concatenate([g_w, r.mean(axis=1, keepdims=True)], axis=1)


def mlp_value_and_grad_numpy(net, x, inputs, labels):
    """Hand-written ``nets.loss`` and its gradient for a one-hidden-layer net: f (n,), g (n, P).

    The same layout as ``nets.logits`` (hidden (n, B, H), logits (n, C, B)); ∂f/∂z = (softmax(z)
    − onehot(y)) / B, then back through W2, the ReLU mask and W1.
    """
    p = nets.unflatten(net, x)
    a = np.matmul(inputs, p["W1"]) + p["b1"][:, None]                  # (n, B, H)
    h = np.maximum(a, 0.0)
    z = np.matmul(np.swapaxes(p["W2"], 1, 2), np.swapaxes(h, 1, 2)) + p["b2"][:, :, None]
    z_max = z.max(axis=1, keepdims=True)                               # z: (n, C, B)
    e = np.exp(z - z_max)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    f = np.mean(np.log(s[:, 0]) + z_max[:, 0] - z[:, labels, rows], axis=-1)
    dz = e / s
    dz[:, labels, rows] -= 1.0
    dz /= len(labels)
    dh = np.matmul(np.swapaxes(dz, 1, 2), np.swapaxes(p["W2"], 1, 2)) * (a > 0)   # (n, B, H)
    n = x.shape[0]
    parts = [np.matmul(inputs.T, dh), dh.sum(axis=1), np.matmul(np.swapaxes(h, 1, 2),
                                                                np.swapaxes(dz, 1, 2)),
             dz.sum(axis=2)]
    return f, np.concatenate([q.reshape(n, -1) for q in parts], axis=1)


def _interleaved(fns, repeats):
    """Median seconds of each callable, the calls interleaved so that load affects all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_gradient(problems, x, repeats):
    """Seconds per loss+gradient evaluation of the batch: autograd vs hand-written NumPy."""
    fam = objectives.logistic_regression()
    objective = functools.partial(fam.loss, problems=problems)
    f_ag, g_ag = autodiff.value_and_grad(objective, x)
    f_np, g_np = logistic_value_and_grad_numpy(x, problems)
    err = max(np.max(np.abs(f_ag - f_np)), np.max(np.abs(g_ag - g_np)))
    t = _interleaved({"autograd": lambda: autodiff.value_and_grad(objective, x),
                      "numpy": lambda: logistic_value_and_grad_numpy(x, problems)}, repeats)
    return {**t, "ratio": t["autograd"] / t["numpy"], "max_abs_diff": float(err)}


def bench_rollout(problems, x0, steps, repeats):
    """Problem-steps per second of ``rollout.run`` for GD and L-BFGS."""
    fam = objectives.logistic_regression()
    objective = functools.partial(fam.loss, problems=problems)
    pol = policy.init(np.random.default_rng(0), features.obs_dim(fam.dim), fam.dim)
    opts = {"gd": optimizers.gd(1.0), "lbfgs": optimizers.lbfgs(0.2),
            "learned": optimizers.learned(pol)}
    t = _interleaved({k: (lambda o=o: rollout.run(o, objective, x0, steps)) for k, o in opts.items()},
                     repeats)
    return {k: x0.shape[0] * steps / s for k, s in t.items()}


def bench_hessian(points, repeats):
    """Seconds for the two-layer net's Hessians at ``points`` random points: closed form vs
    autograd, and their largest difference."""
    fam = objectives.two_layer_net()
    problems, x = objectives.split_data(fam, objectives.TRAIN, points)
    x = 2.0 * x
    objective = functools.partial(fam.loss, problems=problems)
    err = np.max(np.abs(fam.hessian(x, problems) - autodiff.hessians(objective, x)))
    t = _interleaved({"closed_form": lambda: fam.hessian(x, problems),
                      "autograd": lambda: autodiff.hessians(objective, x)}, repeats)
    return {**t, "ratio": t["autograd"] / t["closed_form"], "max_abs_diff": float(err)}


def bench_supervised(problems, x0, steps, iterations):
    """Seconds per supervised meta-training iteration, between the first and the last callback
    (the one-off whitening fit and the first iteration's tracing excluded)."""
    fam = objectives.logistic_regression()
    out = {}
    for mode in ("full", "stop"):
        cfg = supervised.Config(T=steps, iterations=iterations + 1, feature_grad=mode)
        stamps = []
        supervised.train(fam, problems, x0, cfg, callback=lambda i, row: stamps.append(
            time.perf_counter()))
        out[mode] = (stamps[-1] - stamps[0]) / iterations
    return out


def bench_gps(M, algorithm, iterations):
    """Train GPS on M LR functions; evaluate on 100 held-out ones against tuned GD and momentum."""
    import warnings
    from lto_ref import gps
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, M)
    cfg = gps.Config(algorithm=algorithm, iterations=iterations)
    t0 = time.perf_counter()
    pol, log = gps.train(fam, problems, x0, cfg, seed=0,
                         callback=progress("GPS", iterations, describe_gps))
    total = time.perf_counter() - t0
    test, x0_test = objectives.split_data(fam, objectives.TEST, 100)
    train_obj = functools.partial(fam.loss, problems=problems)
    test_obj = functools.partial(fam.loss, problems=test)
    curves = {"learned": rollout.run(optimizers.learned(pol, H=cfg.H), test_obj, x0_test, 100).fs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in ("gd", "momentum"):
            best, _ = rollout.tune(getattr(optimizers, name), rollout.default_grid(name),
                                   train_obj, x0, 100)
            curves[name] = rollout.run(getattr(optimizers, name)(**best), test_obj, x0_test, 100).fs
    return log, total, {k: v.mean(axis=1) for k, v in curves.items()}


class _Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line and exit code 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parse(argv):
    parser = _Parser(prog="python -m lto_ref.benchmark", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=1800,
                        help="logistic-regression problems timed together (default 1800)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="interleaved repeats of each timing; the median is shown (default 7)")
    parser.add_argument("--steps", type=int, default=100,
                        help="iterations of each optimizer's rollout (default 100)")
    parser.add_argument("--sl-iterations", type=int, default=5,
                        help="supervised iterations to time (0 skips)")
    parser.add_argument("--hessian-points", type=int, default=8000,
                        help="two-layer-net points for the Hessian timing (0 skips)")
    parser.add_argument("--gps", type=int, default=0, metavar="M",
                        help="also train GPS on M LR functions and evaluate it (0 skips)")
    parser.add_argument("--algorithm", choices=("badmm", "mdgps"), default="badmm",
                        help="with --gps: the GPS variant (default badmm)")
    parser.add_argument("--gps-iterations", type=int, default=10,
                        help="with --gps: GPS iterations (default 10)")
    parser.add_argument("--paper2", action="store_true",
                        help="also time paper 2's MNIST objective, baselines and L2LBGDBGD")
    parser.add_argument("--lstm-gps", action="store_true",
                        help="with --paper2: also profile one GPS iteration of the LSTM "
                             "optimizer (T = 400, about 3 min) and one of its test runs")
    parser.add_argument("--jobs", type=int, default=2,
                        help="processes scoring paper 2's tuning grids (default 2)")
    args = parser.parse_args(argv)
    if (args.problems < 1 or args.repeats < 1 or args.steps < 1 or args.sl_iterations < 0
            or args.gps < 0 or args.gps_iterations < 1 or args.jobs < 1
            or args.hessian_points < 0):
        parser.error("--problems, --repeats, --steps, --gps-iterations, --jobs must be >= 1 and "
                     "--sl-iterations, --gps, --hessian-points >= 0")
    return args


def main(argv=None):
    args = _parse(argv)
    fam = objectives.logistic_regression()
    problems, x0 = objectives.split_data(fam, objectives.TRAIN, args.problems)
    print(f"lto_ref benchmark: {args.problems} logistic-regression problems, "
          f"median of {args.repeats} interleaved repeats")
    g = bench_gradient(problems, x0, args.repeats)
    print(f"loss+gradient   autograd {1e3 * g['autograd']:8.2f} ms   numpy {1e3 * g['numpy']:8.2f} ms"
          f"   ratio {g['ratio']:.2f}x   (max |diff| {g['max_abs_diff']:.1e})")
    r = bench_rollout(problems, x0, args.steps, max(1, args.repeats // 2))
    for name, rate in r.items():
        print(f"rollout {name:<7} {rate:12,.0f} problem-steps/s   ({args.steps} steps)"
              f"   {r['gd'] / rate:5.1f}x GD's time")
    if args.sl_iterations:
        tr, x0_tr = objectives.split_data(fam, objectives.TRAIN, 90)
        s = bench_supervised(tr, x0_tr, 40, args.sl_iterations)
        for mode, sec in s.items():
            print(f"supervised iteration (90 LR problems, T = 40, feature_grad={mode}): "
                  f"{sec:.3f} s")
    if args.hessian_points:
        h = bench_hessian(args.hessian_points, max(1, args.repeats // 2))
        print(f"two-layer-net Hessians at {args.hessian_points} points: closed form "
              f"{h['closed_form']:.3f} s   autograd {h['autograd']:.3f} s   ratio {h['ratio']:.2f}x"
              f"   (max |diff| {h['max_abs_diff']:.1e})")
    if args.gps:
        log, total, F = bench_gps(args.gps, args.algorithm, args.gps_iterations)
        print(f"GPS {args.algorithm}, {args.gps} LR functions: {total:.0f} s in all; "
              f"s/iteration {np.round(log.seconds, 1).tolist()}")
        print(f"  controllers' 40-step cost {np.round(log.controller_cost, 3).tolist()}")
        print(f"  policy's 40-step cost     {np.round(log.policy_cost, 3).tolist()}")
        for name, f in F.items():
            print(f"  held-out mean f at 10/40/100: {name:<9} {f[10]:.4f} {f[40]:.4f} {f[100]:.4f}")
    if args.paper2:
        from lto_ref import benchmark_paper2
        benchmark_paper2.report(args.repeats, args.jobs, args.lstm_gps)


if __name__ == "__main__":
    main()
