"""The checkable claims of docs/method.md §9: statements of the papers and the blog, our thresholds.

Each check returns a row {"id", "claim", "measured", "reproduced"}; failures are reported with
their numbers, never tuned away. ``markdown`` renders all rows as CLAIMS.md.
"""
import json
import os

import numpy as np

from paper_figures import FIGURES

__all__ = ["row", "paper1", "sl_vs_rl", "trajectories_2d", "markdown", "features", "collect"]


def row(cid, claim, measured, ok):
    return {"id": cid, "claim": claim, "measured": measured, "reproduced": bool(ok)}


def _frac(mask):
    return float(np.mean(mask))


def paper1(family, F, mov, div, curves):
    """Claims of Figures 1–3 from mean curves F (T+1,), mean margins ``mov`` (T+1,), divergence
    flags ``div`` (n,) and the per-function curves (T+1, n), each a dict over the methods."""
    L = F["learned"]
    T = len(L) - 1                     # 100 in the paper's protocol; shorter for --quick
    e, m20, m30, m10 = T + 1, min(20, T), min(30, T), min(10, T)
    if family == "logistic_regression":
        best3 = np.minimum.reduce([F["gd"], F["momentum"], F["conjugate_gradient"]])
        frac = _frac(L[1:e] < best3[1:e])
        gap = L[T] - F["lbfgs"][T]
        room = L[0] - L[T]
        return [
            row("LR-1", "learned below GD, momentum and CG at >= 90% of iterations 1-100",
                 f"{100 * frac:.0f}% of iterations", frac >= 0.9),
            row("LR-2", "margin largest early: max mean MoV over 1 <= i <= 30 exceeds MoV at 100",
                 f"max {np.max(mov['learned'][1:m30 + 1]):.4f} vs {mov['learned'][T]:.4f}",
                 np.max(mov["learned"][1:m30 + 1]) > mov["learned"][T]),
            row("LR-3", "L-BFGS may end slightly lower: gap at 100 <= 5% of the learned descent",
                 f"F_learned - F_LBFGS = {gap:.4f}, 5% of descent = {0.05 * room:.4f}",
                 gap <= 0.05 * room),
            row("LR-MoV", "positive mean MoV over iterations 1-20 (a check of ours)",
                 f"{np.mean(mov['learned'][1:m20 + 1]):.4f}",
                 np.mean(mov["learned"][1:m20 + 1]) > 0)]
    if family == "robust_linear_regression":
        ahead = F["momentum"] <= L
        last = int(np.flatnonzero(ahead[1:])[-1]) + 1 if ahead[1:].any() else 0
        others = np.minimum.reduce([F["gd"], F["conjugate_gradient"], F["lbfgs"]])
        return [
            row("RR-1", "momentum faster early: F_mom < F_learned for some i <= 20",
                 f"{int(np.sum(F['momentum'][1:m20 + 1] < L[1:m20 + 1]))} of {m20} iterations",
                 np.any(F["momentum"][1:m20 + 1] < L[1:m20 + 1])),
            row("RR-2", "learned overtakes momentum by ~30: last i with F_mom <= F_learned in "
                 "[15, 50]", f"last i = {last}", 15 <= last <= 50),
            row("RR-3", "learned below GD, CG and L-BFGS at every iteration 1-100",
                 f"{100 * _frac(L[1:e] < others[1:e]):.0f}% of iterations",
                 np.all(L[1:e] < others[1:e])),
            row("RR-4", "CG and L-BFGS diverge on >= 50% of test functions",
                 f"CG {100 * _frac(div['conjugate_gradient']):.0f}%, L-BFGS "
                 f"{100 * _frac(div['lbfgs']):.0f}%",
                 min(_frac(div["conjugate_gradient"]), _frac(div["lbfgs"])) >= 0.5)]
    if family == "two_layer_net":
        d = F["momentum"] - L
        win = mov["learned"][m10:e] > 0
        return [
            row("NN-1", "learned best: mean MoV > 0 at >= 90% of iterations 10-100",
                 f"{100 * _frac(win):.0f}% of iterations", _frac(win) >= 0.9),
            row("NN-2", "margin over momentum > 0 on 20-100 and at 100 >= half its maximum",
                 f"mean margin min {d[m20:e].min():.4g}, at {T} {d[T]:.4g}, max "
                 f"{d[m20:e].max():.4g}; median margin at {T} "
                 f"{np.nanmedian(curves['momentum'][T] - curves['learned'][T]):.4g}; learned "
                 f"diverged on {100 * _frac(div['learned']):.0f}%",
                 np.all(d[m20:e] > 0) and d[T] >= 0.5 * d[m20:e].max()),
            row("NN-3", "CG and L-BFGS diverge on >= 25% of test functions",
                 f"CG {100 * _frac(div['conjugate_gradient']):.0f}%, L-BFGS "
                 f"{100 * _frac(div['lbfgs']):.0f}%",
                 min(_frac(div["conjugate_gradient"]), _frac(div["lbfgs"])) >= 0.25)]
    raise ValueError(f"no paper-1 claims for family {family!r}")


def sl_vs_rl(sl_train_loss, mom_train_loss, sl_train_div, sl_test_div, rl_test_div):
    """The blog's SL-vs-RL checks (docs/method.md §9); *_div are diverged shares in [0, 1]."""
    return [
        row("SL-1", "supervised fits its training functions: 40-step training meta-loss <= "
             "tuned momentum's", f"{sl_train_loss:.3f} vs {mom_train_loss:.3f}",
             sl_train_loss <= mom_train_loss),
        row("SL-2", "supervised diverges on >= 50% of test functions",
             f"{100 * sl_test_div:.0f}%", sl_test_div >= 0.5),
        row("SL-3", "supervised does not diverge on its training functions: <= 10%",
             f"{100 * sl_train_div:.0f}%", sl_train_div <= 0.1),
        row("RL-1", "GPS diverges on <= 10% of test functions", f"{100 * rl_test_div:.0f}%",
             rl_test_div <= 0.1)]


def trajectories_2d(step_ratio, rise_ok, slow_win):
    """The blog's 2-D trajectory checks (docs/method.md §9) from per-function measurements."""
    return [
        row("2D-1", "much larger steps: learned mean ‖Δx‖ over iterations 0-9 exceeds every "
             "baseline's on >= 75% of test functions", f"{100 * _frac(step_ratio > 1):.0f}%",
             _frac(step_ratio > 1) >= 0.75),
        row("2D-2", "overshoot then recovery: f rises within the first 5 steps, never after "
             "(some function)", f"{int(np.sum(rise_ok))} functions", np.any(rise_ok)),
        row("2D-3", "vanishing gradients: in the lowest quartile of ‖g_0‖ the learned f(x_20) "
             "is below every baseline's on >= 75%", f"{100 * _frac(slow_win):.0f}%",
             _frac(slow_win) >= 0.75)]


def markdown(sections, features=None):
    """CLAIMS.md: one table row per claim. sections : list of (figure name, rows); features :
    what paper 2's learned optimizer reads (``nn_features.Features.describe``), stated above
    the table."""
    lines = ["# Claims of the papers and the blog, as reproduced by `python -m paper_figures`", ""]
    if features:
        lines += [f"Paper 2's learned optimizer reads {features}.", ""]
    lines += ["| figure | claim | statement | measured | reproduced |", "|---|---|---|---|---|"]
    for figure, rows in sections:
        lines += [f"| {figure} | {r['id']} | {r['claim']} | {r['measured']} | "
                  f"{'yes' if r['reproduced'] else 'no'} |" for r in rows]
    return "\n".join(lines) + "\n"


def features(folder, quick=False):
    """What the learned optimizer of paper 2's figure JSONs in ``folder`` reads, or None."""
    for name in FIGURES:
        path = os.path.join(folder, f"{name}.json")
        if name.startswith("paper2_fig") and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
            if record.get("quick") == quick and "features" in record:
                return record["features"]
    return None


def collect(folder, quick=False):
    """(figure, claims) of every figure JSON in ``folder`` made with ``--quick`` or not."""
    sections = []
    for name in FIGURES:
        path = os.path.join(folder, f"{name}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
            if record.get("quick") == quick:
                sections.append((name, record["claims"]))
    return sections
