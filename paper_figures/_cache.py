"""Load-or-compute for figure results: a ``.npz`` of arrays + ``.json`` of everything else.

A figure's ``compute(cfg)`` returns ``{"arrays": {name: ndarray}, "meta": {JSON-able}}``. The
result is stored under ``<cache dir>/<name>`` together with the configuration it came from; a
later run with the same configuration reads it back instead of computing (``--retrain``
recomputes). Writes go through ``lto_ref.io`` (atomic, JSON last), so an interrupted run never
leaves a half-written result that would be read back.
"""
import dataclasses
import hashlib
import json
import os

import numpy as np

from lto_ref import gps, io

__all__ = ["config_record", "load_or_compute", "digest"]


def config_record(cfg):
    """The JSON form of a (nested) frozen-dataclass configuration, identity fields only
    (``gps.config_record``: how work is split, e.g. ``gps.Config.chunks``, is left out)."""
    return json.loads(json.dumps(gps.config_record(cfg), sort_keys=True))


def load_or_compute(folder, name, cfg, compute, *, retrain=False):
    """The cached result of ``compute(cfg)`` under ``folder/name``, computing it when needed.

    Returns (result, from_cache): result = {"arrays": dict, "meta": dict}.
    """
    path = os.path.join(folder, name)
    key = config_record(cfg)
    if not retrain and os.path.exists(io.paths(path)[1]):
        try:
            arrays, meta = io.load_arrays(path)
        except ValueError:
            arrays, meta = None, {}
        if meta.get("config") == key and "result" in meta:
            return {"arrays": arrays, "meta": meta["result"]}, True
    result = compute(cfg)
    io.save_arrays(path, result["arrays"], {"config": key, "result": result["meta"]})
    return result, False


def _feed(h, value):
    if isinstance(value, np.ndarray):
        h.update(f"array {value.dtype.str} {value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"config {type(value).__name__} ".encode())
        h.update(json.dumps(config_record(value), sort_keys=True).encode())
    elif isinstance(value, dict):
        h.update(f"dict {len(value)}".encode())
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)}".encode())
        for item in value:
            _feed(h, item)
    elif value is None or isinstance(value, (str, bool, int, float, np.generic)):
        h.update(f"{type(value).__name__} {value!r};".encode())
    else:
        raise ValueError(f"digest: cannot hash a {type(value).__name__}")


def digest(value):
    """A 16-hex-digit sha256 of ``value``: arrays by dtype, shape and bytes, frozen-dataclass
    configurations by their record, dicts by sorted key, lists and tuples (named ones too) item
    by item, scalars and strings by type and repr. Equal inputs give equal digests across
    processes; a changed array element, setting or key gives another."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:16]
