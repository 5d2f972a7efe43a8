"""The blog's comparison (docs/method.md §9): supervised meta-training against GPS, same data.

Four optimizers share the features and the 1 × 50 softplus MLP and are trained on the 90
logistic-regression training functions with horizon T = 40:

- ``supervised``: the plain MLP trained as the blog says, differentiating the meta-loss through
  the whole unroll, feature gradients included (``feature_grad="full"``, docs/method.md §8);
- ``supervised_stop``: Andrychowicz et al.'s variant, the gradient features as constants;
- ``supervised_symmetric``: the plain variant with the reflection-odd policy (35);
- ``learned``: guided policy search (Figure 1's policy, shared cache).

Each runs for 100 iterations on its training functions and on the test functions; the figure and
the shares of rising and diverged runs separate iterations within the training horizon (≤ T)
from those beyond it.
"""
import dataclasses

import numpy as np

from lto_ref import gps as gps_lib, objectives, optimizers, rollout, supervised
from paper_figures import _claims, _paper1, _protocol, _train

__all__ = ["Config", "FULL", "QUICK", "SUPERVISED", "shares", "evaluate", "trainings", "compute",
           "plot", "plotted"]

# the supervised variants: name -> how it differs from the plain learner (supervised.Config())
SUPERVISED = {"supervised": {}, "supervised_stop": {"feature_grad": "stop"},
              "supervised_symmetric": {"symmetric": True}}
LABELS = {"supervised": "supervised, plain MLP, full gradients (blog)",
          "supervised_stop": "supervised, gradients as constants (Andrychowicz et al.)",
          "supervised_symmetric": "supervised, symmetric policy (35)",
          "learned": "GPS (predicted step descent)"}
RISE = 1e-3      # "rising": f at the end more than this above the minimum within the horizon


@dataclasses.dataclass(frozen=True)
class Config:
    family: str = "logistic_regression"
    n_train: int = 90
    n_test: int = 100
    steps: int = 100               # test horizon, beyond the training horizon sl.T
    seed: int = 0
    gps: gps_lib.Config = gps_lib.Config()   # Figure 1's policy (shared cache) …
    stabilise: bool = True                   # … after the rest-stability projection
    sl: supervised.Config = supervised.Config()   # the plain learner; variants by SUPERVISED
    n_thin: int = 10               # test functions drawn as thin curves

    def __post_init__(self):
        _protocol.check_config(self, n_train=1, n_test=1, steps=self.sl.T, seed=0, n_thin=0)


FULL = Config()
QUICK = dataclasses.replace(FULL, n_train=4, n_test=6, steps=30, gps=_paper1.QUICK_GPS,
                            stabilise=False, sl=supervised.Config(T=10, iterations=20))


def _variants(cfg):
    return {name: dataclasses.replace(cfg.sl, **change) for name, change in SUPERVISED.items()}


def trainings(cfg, ctx):
    """The meta-trainings ``compute`` needs (``_train.run_job`` jobs)."""
    return ([("gps", ctx, cfg.family, cfg.n_train, cfg.gps, cfg.seed, cfg.stabilise)]
            + [("sl", ctx, cfg.family, cfg.n_train, c, cfg.seed) for c in _variants(cfg).values()])


def shares(fs, diverged_T, diverged_end, T):
    """Shares of runs that rise and diverge, within the training horizon T and beyond it.

    fs : (steps+1, n) objective values of the full runs;  diverged_T, diverged_end : (n,) bool,
    docs/method.md (92) after T steps and at the end. A run is *rising* when f at the end is more
    than ``RISE`` above its minimum over iterations 0..T or non-finite (a NaN in the window
    counts as rising too).
    Returns {"rising", "diverged_T", "diverged_end"}: fractions in [0, 1].
    """
    with np.errstate(invalid="ignore"):
        rising = ~(np.isfinite(fs[-1]) & (fs[-1] <= np.min(fs[:T + 1], axis=0) + RISE))
    return {"rising": float(np.mean(rising)), "diverged_T": float(np.mean(diverged_T)),
            "diverged_end": float(np.mean(diverged_end))}


def evaluate(family, problems, x0, methods, steps, T):
    """Full runs and the shares of each method on these functions: ({name: Trace}, {name: dict})."""
    full = _protocol.run_methods(family, problems, x0, methods, steps)
    within = _protocol.run_methods(family, problems, x0, methods, T)
    return full, {k: shares(full[k].fs, _protocol.diverged(within[k], x0),
                            _protocol.diverged(full[k], x0), T) for k in methods}


def compute(cfg, ctx):
    """Curves of the four optimizers on training and test functions, their shares, the claims."""
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    test, x0_test = objectives.split_data(family, objectives.TEST, cfg.n_test)
    methods, J = {}, {}
    for name, c in _variants(cfg).items():
        pol, log = _train.supervised_policy(family, train, x0, c, cfg.seed, ctx)
        methods[name], J[name] = optimizers.learned(pol, H=c.H), log["J"]
    rl, _ = _train.gps_policy(family, train, x0, cfg.gps, cfg.seed, ctx, stabilised=cfg.stabilise)
    methods["learned"] = optimizers.learned(rl, H=cfg.gps.H)
    T = cfg.sl.T
    on_test, test_shares = evaluate(family, test, x0_test, methods, cfg.steps, T)
    on_train, train_shares = evaluate(family, train, x0, methods, cfg.steps, T)
    tuned, _ = _protocol.tune_baselines(family, train, x0, T, names=("momentum",))
    mom = _protocol.run_methods(family, train, x0, {"m": optimizers.momentum(**tuned["momentum"])},
                                T)["m"]
    sl_train_loss = float(np.mean(rollout.meta_loss(on_train["supervised"].fs[:T + 1])))
    claims = _claims.sl_vs_rl(sl_train_loss, float(np.mean(rollout.meta_loss(mom.fs))),
                              train_shares["supervised"]["diverged_end"],
                              test_shares["supervised"]["diverged_end"],
                              test_shares["learned"]["diverged_end"])
    train_mean, _ = _protocol.mean_curves({k: on_train[k].fs for k in methods})
    arrays = {"test": np.stack([on_test[k].fs for k in methods]),
              "train_mean": np.stack([train_mean[k] for k in methods]),
              **{f"J_{k}": v for k, v in J.items()}}
    meta = {"methods": list(methods), "claims": claims, "momentum_40": tuned["momentum"],
            "sl_train_meta_loss": sl_train_loss, "n_thin": cfg.n_thin, "train_steps": T,
            "shares": {"train": train_shares, "test": test_shares}}
    return {"arrays": arrays, "meta": meta}


def _finite(a):
    return np.where(np.isfinite(a), a, np.nan)


def _finite_mean(a):
    """Mean over the last axis of the finite values; nan where there are none."""
    ok = np.isfinite(a)
    n = ok.sum(axis=-1)
    return np.where(n > 0, np.where(ok, a, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)


def plot(result):
    """One panel per optimizer: test functions (thin), test and training means, horizon T."""
    import matplotlib.pyplot as plt
    a, meta = result["arrays"], result["meta"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.4), sharey=True)
    test = _finite(a["test"])
    it = np.arange(test.shape[1])
    for k, (ax, name) in enumerate(zip(axes.flat, meta["methods"])):
        for j in range(min(meta["n_thin"], test.shape[2])):
            ax.plot(it, test[k, :, j], color="0.6", lw=0.7)
        ax.plot(it, _finite_mean(test[k]), color="tab:red", lw=2.2,
                label="test mean (non-finite omitted)")
        ax.plot(it, a["train_mean"][k], "k--", lw=1.4, label="training mean")
        ax.axvline(meta["train_steps"], color="0.3", lw=0.6, ls=":")
        ax.set_yscale("log")
        tr, te = meta["shares"]["train"][name], meta["shares"]["test"][name]
        ax.set_title(f"({'abcd'[k]}) {LABELS[name]}\ntraining / test: diverged at T "
                     f"{tr['diverged_T']:.0%} / {te['diverged_T']:.0%}, at {it[-1]} "
                     f"{tr['diverged_end']:.0%} / {te['diverged_end']:.0%}, rising "
                     f"{tr['rising']:.0%} / {te['rising']:.0%}", fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("iteration (dotted: training horizon T)")
    for ax in axes[:, 0]:
        ax.set_ylabel("objective value")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Blog: supervised meta-training vs reinforcement learning (GPS), "
                 "logistic regression")
    fig.tight_layout()
    return fig


def plotted(result):
    """Every number the figure shows (for the JSON file); non-finite values as null."""
    a, meta = result["arrays"], result["meta"]
    n = meta["n_thin"]
    null = lambda v: [None if not np.isfinite(x) else float(x) for x in v]  # noqa: E731
    return {name: {"test_thin": [null(c) for c in a["test"][k, :, :n].T],
                   "test_mean": null(_finite_mean(a["test"][k])),
                   "train_mean": a["train_mean"][k].tolist(),
                   "shares": {s: meta["shares"][s][name] for s in ("train", "test")}}
            for k, name in enumerate(meta["methods"])}
