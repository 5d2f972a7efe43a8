"""Paper 2's baselines (docs/method.md §12): the seven hand-designed optimizers tuned on MNIST
and L2LBGDBGD meta-trained on it, run on MNIST and on TFD (or its substitute).

compute: MNIST through a 48-48-10 net (inputs projected to 48 dimensions), minibatch 64, 400
steps; every baseline tuned there over its grid by the mean true objective; L2LBGDBGD meta-trained
on the same objective (cached); then every method from three seeded x⁽⁰⁾ on MNIST and on TFD with
a 48-48-7 net. plot: the mean true objective against iteration on both, and L2L's meta-loss.
"""
import dataclasses

import numpy as np

from lto_ref import benchmark, l2l, optimizers
from paper_figures import _claims, _paper2, _train

__all__ = ["Config", "FULL", "QUICK", "trainings", "compute", "plot", "plotted"]

METHODS = _paper2.BASELINES + ("l2l",)


@dataclasses.dataclass(frozen=True)
class Config:
    problem: _paper2.Problem = _paper2.Problem()
    tests: tuple = ("mnist", "tfd")        # data sets shown, with the same net and stream rules
    seeds: tuple = (0, 1, 2)               # the runs shown (mean over them)
    tune_seeds: tuple = (100, 101, 102)    # x⁽⁰⁾ of the tuning runs (MNIST)
    l2l_config: l2l.Config = l2l.Config()
    seed: int = 0                          # meta-training seed of L2LBGDBGD


FULL = Config()
QUICK = dataclasses.replace(FULL, problem=_paper2.Problem(steps=40, every=5), seeds=(0,),
                            tune_seeds=(100,), l2l_config=dataclasses.replace(l2l.Config(), T=40,
                                                                       epochs=2))


def trainings(cfg, ctx):
    """The meta-training and tuning ``compute`` needs (``_train.run_job`` jobs)."""
    return [("l2l", ctx, cfg.problem, cfg.l2l_config, cfg.seed),
            ("tune", ctx, cfg.problem, cfg.tune_seeds)]


def compute(cfg, ctx):
    """Curves {data set: (K, S) per method}, the tuned table, L2L's meta-loss and checks."""
    mnist = _paper2.objective(cfg.problem, ctx.data_dir)
    _train.say(ctx, f"  data {mnist.description}")
    tuned, tables = _train.tuned_baselines(cfg.problem, cfg.tune_seeds, ctx)   # cached
    params, l2l_log = _train.l2l_params(cfg.problem, cfg.l2l_config, cfg.seed, ctx)
    methods = {name: optimizers.by_name(name, **tuned[name]) for name in _paper2.BASELINES}
    methods["l2l"] = l2l.optimizer(params, cfg.l2l_config)
    arrays, sources = {"l2l_meta_loss": np.asarray(l2l_log["loss"], dtype=float)}, {}
    for name in cfg.tests:
        problem = dataclasses.replace(cfg.problem, data=name)
        obj = mnist if name == "mnist" else _paper2.objective(problem, ctx.data_dir)
        if obj is not mnist:
            _train.say(ctx, f"  data {obj.description}")
        report = (benchmark.progress(f"  {obj.name} runs of every method:", len(cfg.seeds),
                                     lambda seed: f"seed {seed}") if ctx.progress else None)
        curves, stopped, its = _paper2.run_methods(problem, obj, methods, cfg.seeds, report)
        arrays[f"{name}_curves"] = np.stack([curves[m] for m in METHODS])     # (K_m, T', S)
        arrays[f"{name}_diverged"] = np.stack([stopped[m] < problem.steps
                                                for m in METHODS]).astype(float)
        arrays["its"] = its
        sources[name] = {"title": obj.name, "source": obj.description}
    claims = _checks(arrays, cfg)
    meta = {"methods": list(METHODS), "tests": list(cfg.tests), "sources": sources,
            "unrolls_per_epoch": cfg.l2l_config.T // cfg.l2l_config.unroll,
            "tuned": tuned, "tables": {k: [[p, s] for p, s in v] for k, v in tables.items()},
            "claims": claims}
    return {"arrays": arrays, "meta": meta}


def _checks(a, cfg):
    mean = np.mean(a["mnist_curves"], axis=-1)                          # (methods, K)
    adam = mean[METHODS.index("adam")]
    loss = a["l2l_meta_loss"]
    k = max(1, len(loss) // 10)
    return [
        _claims.row("P2-ADAM", "tuned Adam ends well below x(0)'s loss on MNIST (a check of ours)",
                    f"{adam[0]:.4f} -> {adam[-1]:.4f}", adam[-1] < 0.5 * adam[0]),
        _claims.row("P2-L2L", "L2LBGDBGD's meta-loss falls: mean of the last tenth of its unrolls "
                    "below the first tenth's (a check of ours)",
                    f"{np.mean(loss[:k]):.4f} -> {np.mean(loss[-k:]):.4f}",
                    np.mean(loss[-k:]) < np.mean(loss[:k]))]


def plot(result):
    """(a) MNIST, (b) TFD: mean true objective of every method; (c) L2L's meta-loss."""
    import matplotlib.pyplot as plt
    a, meta = result["arrays"], result["meta"]
    fig, axes = plt.subplots(1, len(meta["tests"]) + 1, figsize=(16, 4.4))
    _paper2.panels(axes, result, "l2l")
    axes[0].legend(fontsize=8)
    loss = a["l2l_meta_loss"]
    per_epoch = meta.get("unrolls_per_epoch", 20)          # T / unroll of the default run
    epochs = loss[:len(loss) // per_epoch * per_epoch].reshape(-1, per_epoch).mean(axis=1)
    axes[-1].plot(np.arange(1, len(epochs) + 1), epochs, color=_paper2.COLOURS["l2l"], lw=1.2)
    axes[-1].set_title("L2LBGDBGD meta-training")
    axes[-1].set_xlabel("epoch (one 400-step run)")
    axes[-1].set_ylabel("mean meta-loss of its unrolls (Σ of 20 f̂)")
    fig.suptitle("Paper 2's baselines, tuned on MNIST (48-48-C nets, minibatch 64)")
    fig.tight_layout()
    return fig


def plotted(result):
    """Every number the figure shows (for the JSON file)."""
    a, meta = result["arrays"], result["meta"]
    out = {"iterations": a["its"].tolist(), "l2l_meta_loss": a["l2l_meta_loss"].tolist(),
           "diverged": {}}
    for name in meta["tests"]:
        with np.errstate(invalid="ignore"):
            mean = np.mean(a[f"{name}_curves"], axis=-1)          # nan where a run diverged
        out[name] = {m: mean[k].tolist() for k, m in enumerate(meta["methods"])}
        out["diverged"][name] = {m: float(np.mean(a[f"{name}_diverged"][k]))
                                 for k, m in enumerate(meta["methods"])}
    return out
