"""Paper 2's speed measurements, run by ``python -m lto_ref.benchmark --paper2 [--lstm-gps]``.

On the MNIST objective (48-48-10 net, minibatch 64, 400 steps): autograd against a hand-written
MLP gradient, one Adam run with the true objective every step, tuning the seven baselines, one
L2LBGDBGD epoch; with ``--lstm-gps`` the profile of one GPS iteration of the LSTM optimizer
(T = 400, its default settings) and of one test run of the LSTM optimizer on a 100-200-10 net
(CIFAR-10 or its substitute, true objective every 10 steps). An entry point: it prints.
"""
import cProfile
import functools
import pstats
import time

import numpy as np

from lto_ref import autodiff, nets, optimizers, rollout
from lto_ref.benchmark import _interleaved, mlp_value_and_grad_numpy

__all__ = ["bench_paper2", "bench_lstm_gps", "bench_lstm_run", "report"]

def bench_paper2(repeats, tune=True, jobs=1):
    """Paper 2 on the MNIST objective (48-48-10, minibatch 64, 400 steps; ``data.find``):
    autograd against the hand-written MLP gradient, one Adam run with the true objective every
    step, tuning the seven hand-designed baselines (grid settings scored ``jobs`` at a time in a
    process pool, as ``python -m paper_figures --jobs`` does), one L2LBGDBGD meta-training
    epoch."""
    from lto_ref import data, l2l
    images, source = data.find("mnist")
    inputs, labels = data.preprocess(images, 48)
    net, rng = nets.mlp(48, 48, 10), np.random.default_rng(0)
    batches = nets.minibatches(rng, len(labels), 64, 400)
    out = {"source": source}
    for n in (1, 20):
        x = nets.init(rng, net, n)
        b = batches[0]
        loss = functools.partial(nets.loss, net, inputs=inputs[b], labels=labels[b])
        t = _interleaved({"autograd": lambda: autodiff.value_and_grad(loss, x),
                          "numpy": lambda: mlp_value_and_grad_numpy(net, x, inputs[b],
                                                                    labels[b])}, repeats)
        out[f"grad_n{n}"] = (t["autograd"], t["numpy"])
    minibatch = functools.partial(nets.minibatch_loss, net, inputs, labels)
    full = functools.partial(nets.loss, net, inputs=inputs, labels=labels)
    x0 = nets.init(rng, net, 1)
    t0 = time.perf_counter()
    rollout.run_minibatch(optimizers.adam(1e-2), minibatch, batches, full, x0, every=1)
    out["adam_run"] = time.perf_counter() - t0
    if tune:
        out["tuning"] = _bench_tuning(minibatch, batches, full, nets.init(rng, net, 3), jobs)
    stamps = []
    l2l.train(net, inputs, labels, l2l.Config(epochs=2), callback=lambda i, row: stamps.append(
        time.perf_counter()))
    out["l2l_epoch"] = stamps[-1] - stamps[19]        # the second epoch's 20 unrolls
    return out


def _bench_tuning(minibatch, batches, full, x3, jobs):
    """Seconds to tune the seven hand-designed baselines (true objective every step)."""
    import concurrent.futures
    import contextlib
    import warnings
    pool = (concurrent.futures.ProcessPoolExecutor(jobs) if jobs > 1
            else contextlib.nullcontext(None))
    with pool, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)              # edge-of-grid notices
        t0 = time.perf_counter()
        for name in ("gd", "momentum", "conjugate_gradient", "lbfgs", "adam", "adagrad",
                     "rmsprop"):
            rollout.tune_minibatch(functools.partial(optimizers.by_name, name),
                                   rollout.minibatch_grid(name), minibatch, batches, full, x3,
                                   map_fn=pool.map if jobs > 1 else map)
        return time.perf_counter() - t0




def _print(p, jobs):
    print(f"paper 2, MNIST 48-48-10, minibatch 64 ({p['source']})")
    for n in (1, 20):
        a, b = p[f"grad_n{n}"]
        print(f"  loss+gradient, {n} nets: autograd {1e3 * a:.2f} ms   numpy {1e3 * b:.2f} ms   "
              f"ratio {a / b:.2f}x")
    print(f"  400 Adam steps, true objective every step: {p['adam_run']:.2f} s")
    if "tuning" in p:
        print(f"  tuning the seven baselines (100 settings, 3 x0, 400 steps, {jobs} process"
              f"{'es' if jobs > 1 else ''}): {p['tuning']:.0f} s")
    print(f"  one L2LBGDBGD meta-training epoch (20 unrolls of 20 steps): {p['l2l_epoch']:.2f} s")


def _phases(profile, names):
    """{name: cumulative seconds} of the functions ``names`` (module:function) in a profile."""
    stats = pstats.Stats(profile).stats
    out = {}
    for (file, _, func), (_, _, _, cum, _) in stats.items():
        for name in names:
            module, function = name.split(":")
            if file.endswith(f"/{module}.py") and func == function:
                out[name] = out.get(name, 0.0) + cum
    return out


GPS_PHASES = ("coordinatewise:sample", "dynamics:fit", "pibar:fit", "lstm_sstep:regress",
              "lstm_sstep:mean", "iteration:_c_step", "coordinatewise:policy_cost")


def bench_lstm_gps(jobs=2):
    """Seconds of one GPS iteration of the LSTM optimizer on MNIST (default settings, the runs
    and per-group fits in ``jobs`` processes) and of its phases: (total, {phase: seconds})."""
    import concurrent.futures
    import contextlib
    from lto_ref import data
    from lto_ref.gps import coordinatewise
    images, _ = data.find("mnist")
    inputs, labels = data.preprocess(images, 48)
    net = nets.mlp(48, 48, 10)
    x0 = nets.init(np.random.default_rng(0), net, 1)[0]
    cfg = coordinatewise.Config()
    state = coordinatewise.init_state(net, cfg, 0)
    pool = (concurrent.futures.ProcessPoolExecutor(jobs) if jobs > 1
            else contextlib.nullcontext(None))
    with pool:
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        profile.enable()
        coordinatewise.iteration_step(state, net, (inputs, labels), x0, cfg, 0,
                                      map_fn=pool.map if jobs > 1 else map)
        profile.disable()
        total = time.perf_counter() - t0
    return total, _phases(profile, GPS_PHASES)


def bench_lstm_run(dtype="float32"):
    """Seconds of one 400-step test run of a fresh LSTM-128 optimizer (``dtype``) on a 100-200-10
    net on CIFAR-10 (or its substitute), true objective every 10 steps, and its two parts."""
    from lto_ref import data, lstm_policy
    images, _ = data.find("cifar10")
    inputs, labels = data.preprocess(images, 100)
    net, rng = nets.mlp(100, 200, 10), np.random.default_rng(0)
    pol = lstm_policy.init(rng, len(net.groups))
    batches = nets.minibatches(rng, len(labels), 64, 400)
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    rollout.run_minibatch(lstm_policy.optimizer(pol, lstm_policy.ranges(net), dtype),
                          functools.partial(nets.minibatch_loss, net, inputs, labels), batches,
                          functools.partial(nets.loss, net, inputs=inputs, labels=labels),
                          nets.init(rng, net, 1), every=10)
    profile.disable()
    total = time.perf_counter() - t0
    return total, _phases(profile, ("lstm_policy:step_means", "nets:loss"))


def report(repeats, jobs, lstm_gps=False):
    """Print paper 2's measurements."""
    _print(bench_paper2(repeats, jobs=jobs), jobs)
    if lstm_gps:
        total, phases = bench_lstm_gps(jobs)
        print(f"  one GPS iteration of the LSTM optimizer (20 runs x 400 steps, {jobs} processes):"
              f" {total:.0f} s")
        for name, sec in phases.items():
            print(f"    {name:<28} {sec:6.1f} s")
        total, phases = bench_lstm_run()
        print(f"  one test run, LSTM-128 (float32) on 100-200-10 CIFAR-10, 400 steps: {total:.0f} s")
        for name, sec in phases.items():
            print(f"    {name:<28} {sec:6.1f} s")
