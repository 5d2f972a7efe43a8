"""The checkable claims of paper 2's Figures 1–5 (docs/method.md §12), with our operational terms:
AUC = the mean true objective over the recorded iterations of the horizon; "beats" = lower AUC
and lower final value; "diverges" = final value above the initial value, or not finite. Each
claim is measured on the mean curve over the test runs of each data set.
"""
import numpy as np

from paper_figures._claims import row

__all__ = ["figure", "auc", "final"]

NAMES = {"tfd": "TFD", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
HAND = ("gd", "momentum", "conjugate_gradient", "lbfgs", "adam", "adagrad", "rmsprop")


def _mean(curves):
    """(methods, K) mean over the runs; a non-finite run makes its method's mean inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.mean(curves, axis=-1)
    return np.where(np.isfinite(m), m, np.inf)


def auc(mean):
    """Mean objective over the recorded iterations: (methods,)."""
    return np.mean(mean, axis=-1)


def final(mean):
    return mean[:, -1]


def _diverges(mean, k):
    return not np.isfinite(mean[k, -1]) or mean[k, -1] > mean[k, 0]


def _beats_all(mean, methods, who="learned"):
    """{data set-free}: does ``who`` beat every other method, and the margins."""
    k = methods.index(who)
    a, f = auc(mean), final(mean)
    others = [i for i in range(len(methods)) if i != k]
    return (all(a[k] < a[i] and f[k] < f[i] for i in others),
            min(a[i] for i in others), min(f[i] for i in others))


def _fmt(x):
    return f"{x:.4g}" if np.isfinite(x) else "inf"


def figure(number, curves, methods):
    """The rows of paper 2's Figure ``number``; curves {data set: (methods, K, S)}."""
    methods = list(methods)
    means = {name: _mean(c) for name, c in curves.items()}
    checks = {1: _fig1, 2: _fig2, 3: _fig3, 4: _fig4, 5: _fig5}
    return checks[number](means, methods, f"P2F{number}")


def _name(name):
    return NAMES.get(name, name)


def _lowest_auc(means, methods, fid):
    L, rows = methods.index("learned"), []
    for name, m in means.items():
        a = auc(m)
        best = methods[int(np.argmin(a))]
        rows.append(row(f"{fid}-AUC-{_name(name)}", f"{_name(name)}: the learned optimizer has the "
                        f"lowest AUC of the nine methods", f"learned {_fmt(a[L])}; lowest other "
                        f"{_fmt(np.min(np.delete(a, L)))} ({best} lowest)", best == "learned"))
    return rows


def _beats(means, methods, fid):
    L, rows = methods.index("learned"), []
    for name, m in means.items():
        ok, other_a, other_f = _beats_all(m, methods)
        rows.append(row(f"{fid}-BEATS-{_name(name)}", f"{_name(name)}: the learned optimizer beats "
                        f"every other method (lower AUC and lower final value)",
                        f"AUC {_fmt(auc(m)[L])} vs best other {_fmt(other_a)}; final "
                        f"{_fmt(final(m)[L])} vs {_fmt(other_f)}", ok))
    return rows


def _fig1(means, methods, fid):
    L, A = methods.index("learned"), methods.index("adam")
    rows = _lowest_auc(means, methods, fid)
    ranks = {name: tuple(np.argsort([auc(m)[methods.index(h)] for h in HAND]))
             for name, m in means.items()}
    rows.append(row(f"{fid}-RANK", "the hand-designed baselines' AUC ranking differs between data "
                    "sets", "; ".join(f"{_name(n)}: " + ", ".join(HAND[i] for i in r[:3]) + " …"
                                      for n, r in ranks.items()), len(set(ranks.values())) > 1))
    rows += _fig1_l2l(means, methods, fid, L, methods.index("l2l"))
    lowest = sum(methods[int(np.argmin(auc(m)))] == "learned" for m in means.values())
    below = sum(final(m)[L] < final(m)[A] for m in means.values())
    rows.append(row(f"{fid}-ACCEPT", "the learned optimizer has the lowest AUC on at least two of "
                    "the three panels and ends below Adam on at least two (our acceptance "
                    "criterion)", f"lowest AUC on {lowest}, below Adam at the end on {below}",
                    lowest >= 2 and below >= 2))
    return rows


def _fig2(means, methods, fid):
    L2 = methods.index("l2l")
    ups = {n: (final(means[n])[L2], np.min(means[n][L2])) for n in ("tfd", "cifar10")
           if n in means}
    return _beats(means, methods, fid) + [row(
        f"{fid}-L2L", "L2LBGDBGD ends above its own minimum on TFD and CIFAR-10 (slow divergence)",
        "; ".join(f"{NAMES[n]}: final {_fmt(f)} vs min {_fmt(lo)}" for n, (f, lo) in ups.items()),
        bool(ups) and all(f > lo for f, lo in ups.values()))]


def _fig3(means, methods, fid):
    rows = _beats(means, methods, fid)
    tfd, c10 = means.get("tfd"), means.get("cifar10")
    if tfd is None or c10 is None:
        return rows
    L, CG, L2 = (methods.index(m) for m in ("learned", "conjugate_gradient", "l2l"))
    div = [_diverges(tfd, CG), _diverges(tfd, L2)]
    above = [auc(c10)[CG] > auc(c10)[L], auc(c10)[L2] > auc(c10)[L]]
    return rows + [row(
        f"{fid}-CG-L2L", "CG and L2LBGDBGD diverge on TFD and have AUC above the learned "
        "optimizer's on CIFAR-10", f"TFD final/initial: CG {_fmt(tfd[CG, -1])}/{_fmt(tfd[CG, 0])}, "
        f"L2L {_fmt(tfd[L2, -1])}/{_fmt(tfd[L2, 0])}; CIFAR-10 AUC: CG {_fmt(auc(c10)[CG])}, L2L "
        f"{_fmt(auc(c10)[L2])}, learned {_fmt(auc(c10)[L])}", all(div) and all(above))]


def _fig4(means, methods, fid):
    L, L2, rows = methods.index("learned"), methods.index("l2l"), []
    for name, m in means.items():
        f = final(m)
        rows.append(row(f"{fid}-FINAL-{_name(name)}", f"{_name(name)}: the learned optimizer has "
                        f"the lowest final value", f"learned {_fmt(f[L])}; lowest other "
                        f"{_fmt(np.min(np.delete(f, L)))}", int(np.argmin(f)) == L))
    div = {n: _diverges(means[n], L2) for n in ("tfd", "cifar10") if n in means}
    return rows + [row(f"{fid}-L2L", "L2LBGDBGD diverges on TFD and CIFAR-10", "; ".join(
        f"{NAMES[n]}: final {_fmt(means[n][L2, -1])} vs initial {_fmt(means[n][L2, 0])}"
        for n in div), bool(div) and all(div.values()))]


def _fig5(means, methods, fid):
    L, rows = methods.index("learned"), []
    for name, m in means.items():
        c, half = m[L], len(m[L]) // 2
        rows.append(row(f"{fid}-LATE-{_name(name)}", f"{_name(name)}: the learned optimizer stays "
                        f"finite over the second half of the horizon and ends no higher than at "
                        f"its middle", f"f(middle) {_fmt(c[half])}, f(end) {_fmt(c[-1])}",
                        np.all(np.isfinite(c[half:])) and c[-1] <= c[half]))
    return rows


def _fig1_l2l(means, methods, fid, L, L2):
    parts, ok = [], True
    if "tfd" in means:
        f = final(means["tfd"])
        parts.append(f"TFD final: L2L {_fmt(f[L2])}, learned {_fmt(f[L])}")
        ok &= bool(f[L2] > f[L])
    for name in ("cifar10", "cifar100"):
        if name in means:
            f = final(means[name])
            pool = sorted(f[methods.index(h)] for h in HAND + ("l2l",))
            rank = pool.index(f[L2]) + 1
            parts.append(f"{NAMES[name]}: L2L's final value ranks {rank} of {len(pool)}")
            ok &= rank <= len(pool) // 2
    return [row(f"{fid}-L2L", "L2LBGDBGD's final value on TFD is above the learned optimizer's; "
                "on CIFAR-10 and CIFAR-100 it is in the better half of the baselines",
                "; ".join(parts), ok)]
