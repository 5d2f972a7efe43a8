"""The blog's comparison (docs/method.md §9): supervised meta-training against GPS, same policy, same data.

Both policies (the symmetric 1 × 50 softplus MLP on the released-code features) are trained on
the 90 logistic-regression training functions with horizon 40 — by backpropagation through the
unrolled optimizer (docs/method.md §8) and by guided policy search (the Figure 1 policy, reused from the
cache) — and run for 100 iterations on the held-out test functions.
"""
import dataclasses

import numpy as np

from lto_ref import gps as gps_lib, objectives, optimizers, rollout, supervised
from paper_figures import _claims, _paper1, _protocol, _train

__all__ = ["Config", "FULL", "QUICK", "trainings", "compute", "plot", "plotted"]


@dataclasses.dataclass(frozen=True)
class Config:
    family: str = "logistic_regression"
    n_train: int = 90
    n_test: int = 100
    steps: int = 100               # test horizon, longer than training (sl.T)
    seed: int = 0
    gps: gps_lib.Config = gps_lib.Config()   # Figure 1's policy (shared cache) …
    stabilise: bool = True                   # … after the rest-stability projection
    sl: supervised.Config = supervised.Config()
    n_thin: int = 10               # test functions drawn as thin curves


FULL = Config()
QUICK = dataclasses.replace(FULL, n_train=4, n_test=6, steps=30, gps=_paper1.QUICK_GPS,
                            stabilise=False, sl=supervised.Config(T=10, iterations=20))


def trainings(cfg, ctx):
    """The meta-trainings ``compute`` needs (``_train.run_job`` jobs)."""
    return [("gps", ctx, cfg.family, cfg.n_train, cfg.gps, cfg.seed, cfg.stabilise),
            ("sl", ctx, cfg.family, cfg.n_train, cfg.sl, cfg.seed)]


def compute(cfg, ctx):
    """Test and training curves of both policies, divergence flags and the SL/RL claims."""
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    test, x0_test = objectives.split_data(family, objectives.TEST, cfg.n_test)
    rl, _ = _train.gps_policy(family, train, x0, cfg.gps, cfg.seed, ctx, stabilised=cfg.stabilise)
    sl, sl_log = _train.supervised_policy(family, train, x0, cfg.sl, cfg.seed, ctx)
    methods = {"supervised": optimizers.learned(sl, H=cfg.sl.H),
               "learned": optimizers.learned(rl, H=cfg.gps.H)}
    on_test = _protocol.run_methods(family, test, x0_test, methods, cfg.steps)
    on_train = _protocol.run_methods(family, train, x0, methods, cfg.steps)
    tuned, _ = _protocol.tune_baselines(family, train, x0, cfg.sl.T, names=("momentum",))
    mom = _protocol.run_methods(family, train, x0, {"m": optimizers.momentum(**tuned["momentum"])},
                                cfg.sl.T)["m"]
    sl_fs = on_train["supervised"].fs[:cfg.sl.T + 1]
    sl_train_loss = float(np.mean(rollout.meta_loss(sl_fs)))
    div = {k: _protocol.diverged(tr, x0_test) for k, tr in on_test.items()}
    claims = _claims.sl_vs_rl(sl_train_loss, float(np.mean(rollout.meta_loss(mom))),
                              div["supervised"], div["learned"])
    train_mean, _ = _protocol.mean_curves({k: on_train[k].fs for k in methods})
    arrays = {"test": np.stack([on_test[k].fs for k in methods]),
              "train_mean": np.stack([train_mean[k] for k in methods]),
              "diverged": np.stack([div[k] for k in methods]).astype(float),
              "sl_J": sl_log["J"]}
    meta = {"methods": list(methods), "claims": claims, "momentum_40": tuned["momentum"],
            "sl_train_meta_loss": sl_train_loss, "n_thin": cfg.n_thin,
            "train_steps": cfg.sl.T}
    return {"arrays": arrays, "meta": meta}


def plot(result):
    """(a) supervised, (b) GPS: objective on test functions (mean, thin curves), training mean."""
    import matplotlib.pyplot as plt
    a, meta = result["arrays"], result["meta"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    test = np.where(np.isfinite(a["test"]), a["test"], np.nan)
    it = np.arange(test.shape[1])
    for ax, k, name in zip(axes, range(2), meta["methods"]):
        for j in range(min(meta["n_thin"], test.shape[2])):
            ax.plot(it, test[k, :, j], color="0.6", lw=0.7)
        ax.plot(it, np.nanmean(test[k], axis=1), color="tab:red", lw=2.2,
                label="test mean (non-finite omitted)")
        ax.plot(it, a["train_mean"][k], "k--", lw=1.4, label="training mean")
        ax.axvline(meta["train_steps"], color="0.3", lw=0.6, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"({'ab'[k]}) {_protocol.LABELS[name]}")
    axes[0].set_ylabel("objective value")
    axes[0].legend(fontsize=8)
    fig.suptitle("Blog: supervised meta-training vs reinforcement learning (GPS), "
                 "logistic regression")
    fig.tight_layout()
    return fig


def plotted(result):
    """Every number the figure shows (for the JSON file)."""
    a, meta = result["arrays"], result["meta"]
    n = meta["n_thin"]
    return {name: {"test_thin": a["test"][k, :, :n].T.tolist(),
                   "test_mean": np.nanmean(np.where(np.isfinite(a["test"][k]), a["test"][k],
                                                    np.nan), axis=1).tolist(),
                   "train_mean": a["train_mean"][k].tolist()}
            for k, name in enumerate(meta["methods"])}

