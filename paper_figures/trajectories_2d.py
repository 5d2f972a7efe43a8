"""The blog's trajectory plot (docs/method.md §9): 2-parameter logistic regression, one arrow per step.

GPS with the logistic-regression settings is trained on the LR2D training functions (docs/method.md §2.4),
the baselines are tuned on them (docs/method.md (23)–(24)); every method then runs 20 iterations on the test
functions. Two of them are drawn as contour plots of f over (w, b) with each method's iterates
joined by arrows, the learned optimizer in light red.
"""
import dataclasses

import numpy as np

from lto_ref import gps as gps_lib, objectives
from paper_figures import _claims, _paper1, _protocol

__all__ = ["Config", "FULL", "QUICK", "measure", "trainings", "compute", "plot", "plotted"]

METHODS = _paper1.METHODS
COLOURS = dict(_protocol.COLOURS, learned="#ff8080")     # the learned optimizer in light red


@dataclasses.dataclass(frozen=True)
class Config:
    family: str = "logistic_regression_2d"
    n_train: int = 90
    n_test: int = 100
    steps: int = 20                # iterations drawn
    tune_steps: int = 100          # the baselines' tuning horizon (docs/method.md (23)–(24))
    seed: int = 0
    gps: gps_lib.Config = gps_lib.Config()
    stabilise: bool = False        # no rest-stability projection
    grid: int = 80                 # contour resolution per axis

    def __post_init__(self):
        _protocol.check_config(self, n_train=1, n_test=1, steps=1, tune_steps=1, seed=0, grid=2)


FULL = Config()
QUICK = dataclasses.replace(FULL, n_train=4, n_test=8, tune_steps=30, gps=_paper1.QUICK_GPS,
                            grid=30)


def measure(xs, fs, g0):
    """Per-function quantities of the three claims; xs (K, T+1, n, 2), fs (K, T+1, n)."""
    k = METHODS.index("learned")
    steps = np.linalg.norm(np.diff(xs[:, :11], axis=1), axis=-1).mean(axis=1)   # (K, n), 0–9
    others = np.delete(steps, k, axis=0)                   # a NaN baseline never counts against
    ratio = steps[k] / np.max(np.where(np.isnan(others), 0.0, others), axis=0)   # the learned
    rises = np.diff(fs[k], axis=0) > 0                                          # (T, n)
    rise_ok = rises[:5].any(axis=0) & ~rises[5:].any(axis=0)
    slow = np.linalg.norm(g0, axis=-1) <= np.quantile(np.linalg.norm(g0, axis=-1), 0.25)
    rivals = np.delete(fs[:, -1], k, axis=0)
    better = fs[k, -1] < np.min(np.where(np.isnan(rivals), np.inf, rivals), axis=0)
    return ratio, rise_ok, better[slow]


def _contours(family, problems, xs, j, n):
    """A grid spanning every method's iterates on test function j, and f on it."""
    pts = xs[:, :, j].reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    w, b = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], n),
                       np.linspace(lo[1] - pad[1], hi[1] + pad[1], n))
    grid = np.stack([w.ravel(), b.ravel()], axis=1)
    one = objectives.subset(problems, np.zeros(len(grid), dtype=int) + j)
    return w, b, family.loss(grid, one).reshape(n, n)


def trainings(cfg, ctx):
    """The meta-trainings ``compute`` needs (``_train.run_job`` jobs)."""
    return [("gps", ctx, cfg.family, cfg.n_train, cfg.gps, cfg.seed, cfg.stabilise)]


def compute(cfg, ctx):
    """Iterates of every method on the test functions, the claims and two contour grids."""
    traces, _, tuned, notes, _ = _protocol.learned_against_baselines(cfg, ctx, cfg.tune_steps)
    family = objectives.family_by_name(cfg.family)
    test, _ = objectives.split_data(family, objectives.TEST, cfg.n_test)
    xs = np.stack([traces[m].xs for m in METHODS])
    fs = np.stack([traces[m].fs for m in METHODS])
    g0 = traces["gd"].gs[0]
    ratio, rise_ok, slow_win = measure(xs, fs, g0)
    ex1 = int(np.flatnonzero(rise_ok)[0]) if rise_ok.any() else 0
    ex2 = int(np.argmin(np.linalg.norm(g0, axis=-1)))
    ex2 = ex2 if ex2 != ex1 else (1 if ex1 == 0 else 0)
    arrays = {"xs": xs, "fs": fs}
    for tag, j in (("ex1", ex1), ("ex2", ex2)):
        w, b, f = _contours(family, test, xs, j, cfg.grid)
        arrays.update({f"{tag}_w": w, f"{tag}_b": b, f"{tag}_f": f})
    meta = {"methods": list(METHODS), "tuned": tuned, "grid_notes": notes,
            "examples": [ex1, ex2], "claims": _claims.trajectories_2d(ratio, rise_ok, slow_win)}
    return {"arrays": arrays, "meta": meta}


def plot(result):
    """Two contour panels with one arrow per iteration and method."""
    import matplotlib.pyplot as plt
    a, meta = result["arrays"], result["meta"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, tag, j in zip(axes, ("ex1", "ex2"), meta["examples"]):
        f = a[f"{tag}_f"]
        ax.contour(a[f"{tag}_w"], a[f"{tag}_b"], f, levels=np.quantile(f, np.linspace(0, 1, 25)),
                   colors="0.75", linewidths=0.6)
        for k, name in enumerate(meta["methods"]):
            p = a["xs"][k, :, j]
            p = p[np.all(np.isfinite(p), axis=1)]
            ax.plot(p[:1, 0], p[:1, 1], "ko", ms=4)
            for s, e in zip(p[:-1], p[1:]):
                ax.annotate("", xy=e, xytext=s, arrowprops=dict(
                    arrowstyle="->", color=COLOURS[name], lw=2.0 if name == "learned" else 1.0))
            ax.plot([], [], color=COLOURS[name], label=_protocol.LABELS[name])
        ax.set_xlim(a[f"{tag}_w"].min(), a[f"{tag}_w"].max())
        ax.set_ylim(a[f"{tag}_b"].min(), a[f"{tag}_b"].max())
        ax.set_xlabel("w")
        ax.set_ylabel("b")
        ax.set_title(f"test function {j}")
    axes[0].legend(fontsize=8)
    fig.suptitle("Blog: trajectories on 2-D logistic regression (20 iterations)")
    fig.tight_layout()
    return fig


def plotted(result):
    """Every number the figure shows (for the JSON file)."""
    a, meta = result["arrays"], result["meta"]
    return {f"function_{j}": {name: a["xs"][k, :, j].tolist()
                              for k, name in enumerate(meta["methods"])}
            for j in meta["examples"]}

