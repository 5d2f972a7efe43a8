"""Files written by lto_ref: a ``.npz`` of arrays plus a ``.json`` of metadata, never pickles.

``save_arrays("run/policy", arrays, meta)`` writes ``run/policy.npz`` and then ``run/policy.json``,
each atomically (a temporary file in the same folder, then ``os.replace``), so a JSON file marks a
complete pair and nothing half-written is ever read back. ``load_arrays`` reads with
``allow_pickle=False`` and refuses — with a ``ValueError`` naming the file — a missing or
truncated file, an unknown format version, object (pickle-bearing) arrays, and arrays whose
names or shapes differ from those the JSON records.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT_VERSION", "save_arrays", "load_arrays", "paths", "save_tree", "load_tree"]

FORMAT_VERSION = 1


def paths(path):
    """(npz_path, json_path) for ``path`` given with or without the ``.npz`` / ``.json`` suffix."""
    stem = os.fspath(path)
    for suffix in (".npz", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem + ".npz", stem + ".json"


def _atomic_write(target, write):
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary result files
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_npz(fh, arrays):
    """What ``np.savez`` does, without its keyword clash for arrays named 'file' or 'allow_pickle'."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, value, allow_pickle=False)


def save_arrays(path, arrays, meta):
    """Write ``arrays`` (dict name -> numeric array) and JSON-serialisable ``meta`` (dict).

    The old JSON of the pair (if any) is removed first, so an interrupted overwrite leaves no
    JSON and is refused by ``load_arrays`` instead of pairing new arrays with old metadata.
    """
    arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"array {k!r} has dtype object; only numeric arrays are saved")
    reserved = {"format_version", "arrays"} & set(meta)
    if reserved:
        raise ValueError(f"meta must not use the reserved keys {sorted(reserved)}")
    record = dict(meta, format_version=FORMAT_VERSION,
                  arrays={k: list(v.shape) for k, v in arrays.items()})
    try:
        text = json.dumps(record, indent=1, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"meta must be JSON-serialisable: {err}") from None
    npz_path, json_path = paths(path)
    if os.path.exists(json_path):
        os.remove(json_path)
    _atomic_write(npz_path, lambda fh: _write_npz(fh, arrays))
    _atomic_write(json_path, lambda fh: fh.write(text.encode()))
    return npz_path, json_path


def _read_meta(json_path):
    if not os.path.exists(json_path):
        raise ValueError(f"{json_path}: no such file (a save that never completed?)")
    try:
        with open(json_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{json_path}: unreadable metadata ({err})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(f"{json_path}: format_version must be {FORMAT_VERSION}, got {version!r}")
    shapes = meta.get("arrays")
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and all(type(n) is int and n >= 0 for n in v)
            for v in shapes.values()):
        raise ValueError(f"{json_path}: missing or malformed 'arrays' record (name -> shape list)")
    return meta


def load_arrays(path):
    """Read a pair written by ``save_arrays``: returns (arrays dict, meta dict)."""
    npz_path, json_path = paths(path)
    meta = _read_meta(json_path)
    try:
        loaded = np.load(npz_path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):      # a plain .npy array
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ValueError(f"{npz_path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{npz_path}: unreadable or pickle-bearing array file ({err})") from None
    expected = {k: tuple(v) for k, v in meta["arrays"].items()}
    found = {k: v.shape for k, v in arrays.items()}
    if expected != found:
        raise ValueError(f"{npz_path}: arrays {found} do not match the recorded {expected}")
    return arrays, meta


def _encode(node, arrays):
    """JSON description of a tree of NamedTuples, lists, tuples, dicts, arrays and scalars."""
    if isinstance(node, np.ndarray) or isinstance(node, np.generic):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(node)
        return {"array": key}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"value": node}
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return {"namedtuple": type(node).__name__,
                "fields": {f: _encode(getattr(node, f), arrays) for f in node._fields}}
    if isinstance(node, (list, tuple)):
        return {type(node).__name__: [_encode(v, arrays) for v in node]}
    if isinstance(node, dict) and all(isinstance(k, str) for k in node):
        return {"dict": {k: _encode(v, arrays) for k, v in node.items()}}
    raise ValueError(f"cannot save a {type(node).__name__} in a tree")


def _decode(desc, arrays, types, where):
    if "array" in desc:
        return arrays[desc["array"]]
    if "value" in desc:
        return desc["value"]
    if "namedtuple" in desc:
        cls = types.get(desc["namedtuple"])
        if cls is None:
            raise ValueError(f"{where}: unknown record type {desc['namedtuple']!r}")
        return cls(**{f: _decode(v, arrays, types, where) for f, v in desc["fields"].items()})
    if "list" in desc or "tuple" in desc:
        kind = "list" if "list" in desc else "tuple"
        items = [_decode(v, arrays, types, where) for v in desc[kind]]
        return items if kind == "list" else tuple(items)
    if "dict" in desc:
        return {k: _decode(v, arrays, types, where) for k, v in desc["dict"].items()}
    raise ValueError(f"{where}: malformed tree record {desc!r:.80}")


def save_tree(path, tree, meta):
    """Write a tree of NamedTuples / lists / tuples / dicts / arrays / JSON scalars."""
    arrays = {}
    structure = _encode(tree, arrays)
    return save_arrays(path, arrays, dict(meta, tree=structure))


def load_tree(path, types):
    """Read a tree written by ``save_tree``; ``types`` maps NamedTuple names to their classes."""
    arrays, meta = load_arrays(path)
    json_path = paths(path)[1]
    if not isinstance(meta.get("tree"), dict):
        raise ValueError(f"{json_path}: no 'tree' record")
    try:
        return _decode(meta["tree"], arrays, types, json_path), meta
    except (KeyError, TypeError) as err:
        raise ValueError(f"{json_path}: malformed tree record ({err})") from None
