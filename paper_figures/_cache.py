"""Load-or-compute for figure results: a ``.npz`` of arrays + ``.json`` of everything else.

A figure's ``compute(cfg)`` returns ``{"arrays": {name: ndarray}, "meta": {JSON-able}}``. The
result is stored under ``<cache dir>/<name>`` together with the configuration it came from; a
later run with the same configuration reads it back instead of computing (``--retrain``
recomputes). Writes go through ``lto_ref.io`` (atomic, JSON last), so an interrupted run never
leaves a half-written result that would be read back.
"""
import json
import os

from lto_ref import gps, io

__all__ = ["config_record", "load_or_compute"]


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
