"""Paper 1, Figures 1–3 (docs/method.md §9): margin of victory and two test functions, one family.

compute: the training and test functions of the family (docs/method.md (10)), baselines tuned on the
training functions (docs/method.md (23)–(24)), the GPS policy trained on them (cached), every method run from
the test functions' starting points for ``steps`` iterations. plot: (a) mean margin of victory
against iteration for GD, momentum, CG, L-BFGS and predicted step descent; (b), (c) the
objective on test functions ``panels``.
"""
import dataclasses
import functools

import numpy as np

from lto_ref import gps as gps_lib, metrics, objectives
from lto_ref.analysis import tuning_sensitivity
from paper_figures import _claims, _protocol

__all__ = ["Config", "criterion", "trainings", "compute", "plot", "plotted", "make", "METHODS", "QUICK_GPS"]

METHODS = _protocol.BASELINES + ("learned",)
TUNE = ("meta_loss", "released")
# --quick: the whole pipeline in seconds (tiny GPS: 3 iterations, 5 samples of 20 steps)
QUICK_GPS = gps_lib.Config(iterations=3, samples=5, T=20, sstep_steps=500)


@dataclasses.dataclass(frozen=True)
class Config:
    family: str                       # objectives factory name
    n_train: int                      # training functions (LR 90, RR 120, NN 80 (paper))
    n_test: int = 100
    steps: int = 100                  # test horizon T_test (our choice)
    seed: int = 0                     # GPS seed
    gps: gps_lib.Config = gps_lib.Config()
    stabilise: bool = False           # the rest-stability projection after GPS (deviation)
    panels: tuple = (0, 1)            # test functions of panels (b), (c)
    tune: str = "meta_loss"           # baselines' tuning: (23) over ``steps``, any divergence
    #                                   +inf; "released": the final objective (23b) at GPS's T

    def __post_init__(self):
        _protocol.check_config(self, n_train=1, n_test=1, steps=1, seed=0)
        if not all(isinstance(j, int) and 0 <= j < self.n_test for j in self.panels):
            raise ValueError(f"panels must be test functions 0..{self.n_test - 1}, "
                             f"got {self.panels!r}")
        if self.tune not in TUNE:
            raise ValueError(f"tune must be one of {TUNE}, got {self.tune!r}")


def trainings(cfg, ctx):
    """The meta-trainings ``compute`` needs (``_train.run_job`` jobs)."""
    return [("gps", ctx, cfg.family, cfg.n_train, cfg.gps, cfg.seed, cfg.stabilise)]


def compute(cfg, ctx):
    """{"arrays": curves (K, T+1, n), mean (K, T+1), mov (K, T+1), …; "meta": settings, claims}."""
    traces, x0_test, tuned, notes, log = _protocol.learned_against_baselines(
        cfg, ctx, *criterion(cfg, cfg.tune))
    curves = {name: traces[name].fs for name in METHODS}
    mean, replaced = _protocol.mean_curves(curves)
    mov = metrics.margin_of_victory(curves)
    wins = metrics.win_fraction(curves)
    div = {name: _protocol.diverged(traces[name], x0_test) for name in METHODS}
    stack = lambda d: np.stack([np.asarray(d[k], dtype=float) for k in METHODS])  # noqa: E731
    arrays = {"curves": stack(curves), "mean": stack(mean), "mov": stack(mov),
              "win_fraction": stack(wins), "diverged": stack(div),
              "controller_cost": log["controller_cost"], "policy_cost": log["policy_cost"]}
    claims = _claims.paper1(cfg.family, mean, mov, div, curves)
    other = TUNE[1 - TUNE.index(cfg.tune)]
    meta = {"family": cfg.family, "methods": list(METHODS), "tuned": tuned, "tune": cfg.tune,
            f"tuned_{other}": _tuned_by(cfg, other), "sensitivity": _sensitivity(cfg, tuned),
            "grid_notes": notes, "replaced_values": replaced, "claims": claims,
            "n_train": cfg.n_train, "n_test": cfg.n_test, "panels": list(cfg.panels),
            "gps_iteration": _iteration(cfg, log)}
    return {"arrays": arrays, "meta": meta}


def _iteration(cfg, log):
    """The GPS iteration (1-based) whose policy the figure uses: the last one, or the selected
    one (``gps.Config.select_steps``), with the selection scores of every iteration."""
    scores = np.asarray(log.get("select_cost", []), dtype=float)
    if not cfg.gps.select_steps or scores.size == 0:
        return {"used": len(log["controller_cost"]), "select_cost": None}
    return {"used": int(np.argmin(scores)) + 1,            # the first minimum, as gps.train
            "select_cost": [float(v) if np.isfinite(v) else None for v in scores]}


def criterion(cfg, tune):
    """(tuning horizon, rollout.tune criterion) of a ``tune`` setting of ``Config``."""
    return (cfg.steps, "meta_loss") if tune == "meta_loss" else (cfg.gps.T, "final")


def _tuned_by(cfg, tune):
    """The baselines' settings under the other tuning criterion (a reference; not run)."""
    family = objectives.family_by_name(cfg.family)
    train, x0 = objectives.split_data(family, objectives.TRAIN, cfg.n_train)
    steps, rule = criterion(cfg, tune)
    return _protocol.tune_baselines(family, train, x0, steps, criterion=rule)[0]


def _sensitivity(cfg, tuned):
    """Each baseline over its step-size grid on the test functions (other settings as tuned):
    {name: {"lr", "diverged", "final_mean", "final_median": lists, nan as None}}."""
    family = objectives.family_by_name(cfg.family)
    test, x0_test = objectives.split_data(family, objectives.TEST, cfg.n_test)
    rows = tuning_sensitivity.sweep_family(family, test, x0_test, cfg.steps, tuned,
                                           names=_protocol.BASELINES)
    clean = lambda v: [float(x) if np.isfinite(x) else None for x in v]  # noqa: E731
    return {name: {k: clean(v) for k, v in r._asdict().items()} for name, r in rows.items()}


def plot(result, title):
    """The three-panel figure of docs/method.md §9 (matplotlib Figure, never shown)."""
    import matplotlib.pyplot as plt
    a, meta = result["arrays"], result["meta"]
    names = meta["methods"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    it = np.arange(a["mov"].shape[1])
    for k, name in enumerate(names):
        style = dict(lw=2.2 if name == "learned" else 1.3, color=_protocol.COLOURS[name])
        axes[0].plot(it, a["mov"][k], label=_protocol.LABELS[name], **style)
        for ax, j in zip(axes[1:], meta["panels"]):
            ax.plot(it, a["curves"][k, :, j], label=_protocol.LABELS[name], **style)
    focus = np.concatenate([a["mov"][names.index("learned")], a["mov"][names.index("momentum")]])
    lo, hi = np.nanmin(focus), np.nanmax(focus)
    pad = 0.2 * max(hi - lo, 1e-12)
    axes[0].set_ylim(lo - pad, hi + pad)
    axes[0].axhline(0.0, color="k", lw=0.6)
    axes[0].set_title("(a) mean margin of victory")
    if hi - lo > 10.0:   # diverging functions: linear near 0, logarithmic beyond ±0.01
        axes[0].set_yscale("symlog", linthresh=0.01)
        axes[0].set_title("(a) mean margin of victory (symlog scale)")
    for ax, j in zip(axes[1:], meta["panels"]):
        ax.set_title(f"({'bc'[meta['panels'].index(j)]}) test function {j}")
        ax.set_ylabel("objective value")
        finite = a["curves"][:, :, j][np.isfinite(a["curves"][:, :, j])]
        ax.set_ylim(finite.min() - 0.05 * np.ptp(finite), np.percentile(finite, 99) * 1.05)
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plotted(result):
    """Every number the figure shows (for the JSON file)."""
    a, meta = result["arrays"], result["meta"]
    return {name: {"mean_margin_of_victory": a["mov"][k].tolist(),
                   "mean_objective": a["mean"][k].tolist(),
                   **{f"test_function_{j}": a["curves"][k, :, j].tolist() for j in meta["panels"]}}
            for k, name in enumerate(meta["methods"])}


def make(family, n_train, title, *, stabilise=False, **gps_options):
    """(FULL, QUICK, trainings, compute, plot, plotted) of one family's figure.

    ``stabilise`` applies the rest-stability projection to the full figure's policy only: a
    barely trained --quick policy is far from rest-stable and the projection fails slowly.
    """
    full = Config(family=family, n_train=n_train, stabilise=stabilise,
                  gps=dataclasses.replace(gps_lib.Config(), **gps_options))
    quick = dataclasses.replace(full, n_train=4, n_test=6, steps=30, stabilise=False,
                                gps=dataclasses.replace(QUICK_GPS, **gps_options))
    if full.gps.select_steps:                 # the iteration is chosen over the test horizon
        quick = dataclasses.replace(quick, gps=dataclasses.replace(quick.gps,
                                                                   select_steps=quick.steps))
    return full, quick, trainings, compute, functools.partial(plot, title=title), plotted
