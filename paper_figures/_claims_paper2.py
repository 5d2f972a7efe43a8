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
    L, A, CG, L2 = (methods.index(m) for m in ("learned", "adam", "conjugate_gradient", "l2l"))
    fid = f"P2F{number}"
    rows = []
    if number in (1, 2, 3):
        for name, m in means.items():
            a, f = auc(m), final(m)
            if number == 1:
                best = methods[int(np.argmin(a))]
                rows.append(row(f"{fid}-AUC-{NAMES.get(name, name)}",
                                f"{NAMES.get(name, name)}: the learned optimizer has the lowest "
                                f"AUC of the nine methods",
                                f"learned {_fmt(a[L])}; lowest other {_fmt(np.min(np.delete(a, L)))}"
                                f" ({best} lowest)", best == "learned"))
            else:
                ok, other_a, other_f = _beats_all(m, methods)
                rows.append(row(f"{fid}-BEATS-{NAMES.get(name, name)}",
                                f"{NAMES.get(name, name)}: the learned optimizer beats every "
                                f"other method (lower AUC and lower final value)",
                                f"AUC {_fmt(a[L])} vs best other {_fmt(other_a)}; final "
                                f"{_fmt(f[L])} vs {_fmt(other_f)}", ok))
    if number == 1:
        ranks = {name: tuple(np.argsort([auc(m)[methods.index(h)] for h in HAND]))
                 for name, m in means.items()}
        rows.append(row(f"{fid}-RANK", "the hand-designed baselines' AUC ranking differs between "
                        "data sets", "; ".join(f"{NAMES.get(n, n)}: " + ", ".join(
                            HAND[i] for i in r[:3]) + " …" for n, r in ranks.items()),
                        len(set(ranks.values())) > 1))
        rows += _fig1_l2l(means, methods, fid, L, L2)
        lowest = sum(methods[int(np.argmin(auc(m)))] == "learned" for m in means.values())
        below = sum(final(m)[L] < final(m)[A] for m in means.values())
        rows.append(row(f"{fid}-ACCEPT", "the learned optimizer has the lowest AUC on at least two "
                        "of the three panels and ends below Adam on at least two (our acceptance "
                        "criterion)", f"lowest AUC on {lowest}, below Adam at the end on {below}",
                        lowest >= 2 and below >= 2))
    if number == 2:
        ups = {n: (final(means[n])[L2], np.min(means[n][L2])) for n in ("tfd", "cifar10")
               if n in means}
        rows.append(row(f"{fid}-L2L", "L2LBGDBGD ends above its own minimum on TFD and CIFAR-10 "
                        "(slow divergence)", "; ".join(f"{NAMES[n]}: final {_fmt(f)} vs min "
                                                       f"{_fmt(lo)}" for n, (f, lo) in ups.items()),
                        bool(ups) and all(f > lo for f, lo in ups.values())))
    if number == 3:
        tfd, c10 = means.get("tfd"), means.get("cifar10")
        if tfd is not None and c10 is not None:
            div = [_diverges(tfd, CG), _diverges(tfd, L2)]
            above = [auc(c10)[CG] > auc(c10)[L], auc(c10)[L2] > auc(c10)[L]]
            rows.append(row(f"{fid}-CG-L2L", "CG and L2LBGDBGD diverge on TFD and have AUC above "
                            "the learned optimizer's on CIFAR-10",
                            f"TFD final/initial: CG {_fmt(tfd[CG, -1])}/{_fmt(tfd[CG, 0])}, L2L "
                            f"{_fmt(tfd[L2, -1])}/{_fmt(tfd[L2, 0])}; CIFAR-10 AUC: CG "
                            f"{_fmt(auc(c10)[CG])}, L2L {_fmt(auc(c10)[L2])}, learned "
                            f"{_fmt(auc(c10)[L])}", all(div) and all(above)))
    if number == 4:
        for name, m in means.items():
            f = final(m)
            rows.append(row(f"{fid}-FINAL-{NAMES.get(name, name)}",
                            f"{NAMES.get(name, name)}: the learned optimizer has the lowest final "
                            f"value", f"learned {_fmt(f[L])}; lowest other "
                            f"{_fmt(np.min(np.delete(f, L)))}", int(np.argmin(f)) == L))
        div = {n: _diverges(means[n], L2) for n in ("tfd", "cifar10") if n in means}
        rows.append(row(f"{fid}-L2L", "L2LBGDBGD diverges on TFD and CIFAR-10",
                        "; ".join(f"{NAMES[n]}: final {_fmt(means[n][L2, -1])} vs initial "
                                  f"{_fmt(means[n][L2, 0])}" for n in div),
                        bool(div) and all(div.values())))
    if number == 5:
        for name, m in means.items():
            c = m[L]
            half = len(c) // 2
            rows.append(row(f"{fid}-LATE-{NAMES.get(name, name)}",
                            f"{NAMES.get(name, name)}: the learned optimizer stays finite over the "
                            f"second half of the horizon and ends no higher than at its middle",
                            f"f(middle) {_fmt(c[half])}, f(end) {_fmt(c[-1])}",
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
