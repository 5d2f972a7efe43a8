"""The overfitting map's figure, drawn from its JSON record alone (``sl_map.compute``).

One panel per family: a heat map over n_train (columns) × T (rows) of the validation-minus-
training share of diverged runs at iteration 100 (red: the learner diverges on unseen functions
more than on its training functions). Each cell also gives the gaps at T and 4T and the training
share at 100, so a learner that diverges everywhere (no gap) is told from one that never does;
GPS's gap is written in the cell where its figure's policy was trained.
"""
import numpy as np

from paper_figures import _sl_map

__all__ = ["check", "plot"]

SHOWN = "100"      # the horizon the colour shows


def check(record):
    """ValueError naming the first missing or malformed part of a map record."""
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        raise ValueError("the record has no list 'rows'")
    for k, row in enumerate(record["rows"]):
        for key in ("family", "n_train", "T", "cells", "gps"):
            if key not in row:
                raise ValueError(f"rows[{k}] has no {key!r}")
        if len(row["cells"]) != len(row["n_train"]) * len(row["T"]):
            raise ValueError(f"rows[{k}] has {len(row['cells'])} cells, not "
                             f"{len(row['n_train'])} n_train × {len(row['T'])} T")
        for cell in row["cells"] + ([row["gps"]] if row["gps"] else []):
            for split in _sl_map.SPLITS:
                if not all(h in cell.get(split, {}) for h in _sl_map.HORIZONS):
                    raise ValueError(f"rows[{k}] ({row['family']}): a cell has no {split} shares "
                                     f"at {', '.join(_sl_map.HORIZONS)}")


def _cell_text(meta, gps):
    lines = [f"{_sl_map.gap(meta, SHOWN):+.2f}",
             f"T {_sl_map.gap(meta, 'T'):+.2f}  4T {_sl_map.gap(meta, '4T'):+.2f}",
             f"train {meta['train'][SHOWN]['diverged']:.2f}"]
    if gps is not None:
        lines.append(f"GPS {_sl_map.gap(gps, SHOWN):+.2f} "
                     f"(train {gps['train'][SHOWN]['diverged']:.2f})")
    return "\n".join(lines)


def _panel(ax, row):
    ns, Ts = row["n_train"], row["T"]
    grid = {(c["n_train"], c["T"]): c for c in row["cells"]}
    gaps = np.array([[_sl_map.gap(grid[(n, T)], SHOWN) for n in ns] for T in Ts])
    image = ax.imshow(gaps, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", origin="lower")
    gps = row["gps"]
    for i, T in enumerate(Ts):
        for j, n in enumerate(ns):
            here = gps if gps and (gps["n_train"], gps["T"]) == (n, T) else None
            ax.text(j, i, _cell_text(grid[(n, T)], here), ha="center", va="center", fontsize=7,
                    fontweight="bold" if here else "normal")
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_yticks(range(len(Ts)), [str(T) for T in Ts])
    ax.set_xlabel("training functions n_train")
    ax.set_ylabel("horizon T")
    where = ("GPS: its figure's policy is not in the cache" if gps is None else
             f"GPS: n_train = {gps['n_train']}, T = {gps['T']}")
    ax.set_title(f"{row['family']} ({where})", fontsize=10)
    return image


def plot(record):
    """The map as a matplotlib Figure (never shown); ValueError for a malformed record."""
    import matplotlib.pyplot as plt
    check(record)
    rows = record["rows"]
    if not rows:
        raise ValueError("the record has no rows to draw")
    heights = [len(row["T"]) + 0.6 for row in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.0 * sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False,
                             layout="constrained")
    for ax, row in zip(axes[:, 0], rows):
        image = _panel(ax, row)
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8,
                 label=f"diverged share at iteration {SHOWN}: validation − training")
    crit = record.get("criterion", {})
    fig.suptitle("Where supervised meta-training overfits: the plain learner (full feature "
                 "gradients)" + (" (--quick)" if record.get("quick") else "") + "\n"
                 f"colour and first line: validation − training diverged share at iteration "
                 f"{SHOWN}; then the gaps at T and 4T, the training share at {SHOWN}, GPS's where "
                 f"trained\n{record.get('n_val')} validation functions; trained until the "
                 f"meta-objective improves by < {crit.get('tol')} (relative) over "
                 f"{crit.get('chunk')} Adam steps, at most {crit.get('max_iterations')}",
                 fontsize=10)
    return fig
