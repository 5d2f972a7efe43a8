"""Paper 2's protocol (docs/method.md §12): the data, the minibatch objectives, the tuned
baselines and the runs every paper-2 figure shares.

A problem is a data set (MNIST to train on; TFD, CIFAR-10, CIFAR-100 or their substitutes to
test on) seen through a ``d_in-h-C`` ReLU net on inputs randomly projected to d_in dimensions. A
run is seeded by one integer: x⁽⁰⁾ from ``SeedSequence([seed, 0])``, the minibatch stream from
``SeedSequence([seed, 1])``, shared by every method. The baselines are tuned on MNIST only.
"""
import dataclasses
import functools
import time
import warnings
from typing import NamedTuple

import numpy as np

from lto_ref import data, nets, nn_features, optimizers, rollout

__all__ = ["BASELINES", "LABELS", "COLOURS", "Problem", "Objective", "objective", "stream",
           "start", "tune_baselines", "run_methods", "panels"]

BASELINES = ("gd", "momentum", "conjugate_gradient", "lbfgs", "adam", "adagrad", "rmsprop")
LABELS = {"gd": "SGD", "momentum": "momentum", "conjugate_gradient": "conjugate gradient",
          "lbfgs": "L-BFGS", "adam": "Adam", "adagrad": "AdaGrad", "rmsprop": "RMSprop",
          "l2l": "L2LBGDBGD", "learned": "learned optimizer"}
COLOURS = {"gd": "tab:blue", "momentum": "tab:orange", "conjugate_gradient": "tab:green",
           "lbfgs": "tab:purple", "adam": "tab:brown", "adagrad": "tab:pink",
           "rmsprop": "tab:gray", "l2l": "tab:olive", "learned": "tab:red"}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One paper-2 objective: a data set, a net d_in-hidden-C, minibatch size and horizon."""
    data: str = "mnist"            # "mnist", "tfd", "cifar10", "cifar100"
    d_in: int = 48                 # random projection of the pixels
    hidden: int = 48
    batch: int = 64
    steps: int = 400
    every: int = 1                 # the true objective is recorded every this many steps


class Objective(NamedTuple):
    """A loaded problem: the net, the preprocessed training set and where it came from."""
    net: nets.Net
    inputs: np.ndarray   # (N, d_in) float64, standardised
    labels: np.ndarray   # (N,) int64
    name: str            # e.g. "TFD (substitute)"
    description: str     # which source ``data.find`` used


def objective(problem, data_dir=None):
    """The problem's net and data (``data.find``: data_dir, the cache, the offline sources)."""
    images, description = data.find(problem.data, data_dir=data_dir)
    inputs, labels = data.preprocess(images, problem.d_in)
    net = nets.mlp(problem.d_in, problem.hidden, images.classes)
    name = {"mnist": "MNIST", "tfd": "TFD", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
    label = name.get(problem.data, problem.data) + (" (substitute)" if images.substitute else "")
    return Objective(net, inputs, labels, label, description)


def stream(problem, obj, seed):
    """(batches (steps, batch), x⁽⁰⁾ (1, P)) of run ``seed``: the same for every method."""
    batches = nets.minibatches(np.random.default_rng(np.random.SeedSequence([seed, 1])),
                               len(obj.labels), problem.batch, problem.steps)
    return batches, start(obj.net, [seed])


def start(net, seeds):
    """x⁽⁰⁾ (len(seeds), P), row i ~ N(0, 0.1²) from ``SeedSequence([seeds[i], 0])``."""
    return np.concatenate([nets.init(np.random.default_rng(np.random.SeedSequence([s, 0])), net, 1)
                           for s in seeds])


def _losses(obj):
    """(f̂(x, batch), f(x)) of a loaded problem, picklable for a process pool's map."""
    return (functools.partial(nets.minibatch_loss, obj.net, obj.inputs, obj.labels),
            functools.partial(nets.loss, obj.net, inputs=obj.inputs, labels=obj.labels))


def tune_baselines(problem, obj, seeds, *, names=BASELINES, map_fn=map, report=None):
    """{name: best setting}, {name: [(setting, score)]}: each baseline's grid on ``obj`` from the
    x⁽⁰⁾ of ``seeds`` (one row each) on the stream of ``seeds[0]``; score = mean true objective.
    ``report(name, best, seconds)``, if given, is called as each baseline is tuned."""
    minibatch, full = _losses(obj)
    batches, _ = stream(problem, obj, seeds[0])
    x0 = start(obj.net, seeds)
    best, tables = {}, {}
    for name in names:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)        # grid edges are in the table
            best[name], tables[name] = rollout.tune_minibatch(
                functools.partial(optimizers.by_name, name), rollout.minibatch_grid(name),
                minibatch, batches, full, x0, every=problem.every, map_fn=map_fn)
        if report is not None:
            report(name, best[name], time.perf_counter() - t0)
    return best, tables


def run_methods(problem, obj, methods, seeds, report=None):
    """True-objective curves {name: (K, S)}, the steps at which the runs stopped {name: (S,)
    int} and the recorded iterations (K,) of S = len(seeds) runs. A run that met a non-finite
    value is frozen at its last finite iterate and stopped at that step (``problem.steps`` if
    it never did), so it diverged iff stopped < problem.steps (``rollout.MinibatchTrace``).

    methods : {name: optimizers.Optimizer}; each seed is its own run (its own stream and x⁽⁰⁾).
    report : optional ``report(i, seed)`` after the i-th seed's runs.
    """
    minibatch, full = _losses(obj)
    curves, stopped, its = {name: [] for name in methods}, {name: [] for name in methods}, None
    for i, seed in enumerate(seeds):
        batches, x0 = stream(problem, obj, seed)
        for name, opt in methods.items():
            trace = rollout.run_minibatch(opt, minibatch, batches, full, x0, every=problem.every)
            curves[name].append(trace.fs[:, 0])
            stopped[name].append(int(trace.stopped[0]))
            its = trace.its
        if report is not None:
            report(i, seed)
    return ({k: np.stack(v, axis=1) for k, v in curves.items()},
            {k: np.array(v) for k, v in stopped.items()}, its)


def _short(features):
    """The legend's name of an ``nn_features.Features.describe`` phrase."""
    return "paper's features" if features == nn_features.PAPER.describe() else "scale-free features"


def panels(axes, result, bold, widths=(1.8, 1.2)):
    """One panel per data set of ``result``: the mean true objective of every method over the
    runs (a diverged run leaves a gap; values above 3 × the loss at x⁽⁰⁾ leave the axes), the
    method ``bold`` drawn with widths[0], the others with widths[1]."""
    a, meta = result["arrays"], result["meta"]
    for ax, name in zip(axes, meta["tests"]):
        with np.errstate(invalid="ignore"):
            mean = np.mean(a[f"{name}_curves"], axis=-1)
        top = 3 * np.nanmax(mean[:, 0])
        ax.set_yscale("log")               # before the limits: a linear autoscale may go below 0
        for k, method in enumerate(meta["methods"]):
            shown = np.where(mean[k] <= top, mean[k], np.nan)
            label = LABELS[method] + (f" ({_short(meta['features'])})" if method == "learned"
                                      and "features" in meta else "")
            ax.plot(a["its"], shown, color=COLOURS[method], label=label,
                    lw=widths[0] if method == bold else widths[1])
        ax.set_ylim(top=top)
        ax.set_title(meta["sources"][name]["title"])
        ax.set_xlabel("iteration")
        ax.set_ylabel("true objective (training loss)")
