"""KEY=VALUE settings of a (nested) frozen-dataclass configuration, each read as its field's type
(``python -m paper_figures.validate``)."""
import dataclasses
import typing

import numpy as np

__all__ = ["configure"]

_BOOLS = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}


def _value(text, kind, current, key):
    """``text`` as a value of the type ``kind`` of the setting ``key`` (current value
    ``current``); ValueError naming the key and what it takes."""
    if kind is bool:
        if text.lower() not in _BOOLS:
            raise ValueError(f"{key} takes true or false (or yes/no, on/off, 1/0), got {text!r}")
        return _BOOLS[text.lower()]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key} takes an integer, got {text!r}") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise ValueError(f"{key} takes a finite number, got {text!r}")
        return value
    if kind is tuple:
        element = type(current[0]) if current else int
        parts = [t for t in text.strip("()[] ").split(",") if t.strip()]
        return tuple(_value(t.strip(), element, None, f"each of {key}") for t in parts)
    if dataclasses.is_dataclass(kind):
        raise ValueError(f"{key} is a group of settings: set {key}.KEY=VALUE with KEY one of "
                         f"{', '.join(f.name for f in dataclasses.fields(kind))}")
    return text


def configure(cfg, settings):
    """``cfg`` with KEY=VALUE settings applied; dotted keys reach nested configurations.

    Each value is read as the type of the field it sets (bool: true/false, yes/no, on/off, 1/0;
    int; float; str; tuple: comma-separated; a nested configuration only through its fields);
    then each configuration checks itself once, with all its settings applied (a later setting
    of a key wins). settings : iterable of "key=value" strings; raises ValueError naming the
    setting and what its key takes.
    """
    changes = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"setting {item!r} is not KEY=VALUE")
        path = key.split(".")
        try:
            value = _typed(cfg, path, text, key)
        except ValueError as err:
            raise ValueError(f"setting {item}: {err}") from None
        node = changes
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = (value, item)
    return _apply(cfg, changes)[0]


def _typed(obj, path, text, key):
    """The value ``text`` sets the field ``path`` (the last names of ``key``) of ``obj`` to."""
    fields = [f.name for f in dataclasses.fields(obj)]
    prefix = key[:len(key) - len(".".join(path))]
    if path[0] not in fields:
        raise ValueError(f"{type(obj).__name__} has no field {path[0]!r}; the keys here are "
                         f"{', '.join(prefix + f for f in fields)}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"{prefix + path[0]} is a single setting, not a group")
        return _typed(current, path[1:], text, key)
    kind = typing.get_type_hints(type(obj)).get(path[0], type(current))
    return _value(text, kind, current, key)


def _apply(obj, changes):
    """(``obj`` with the nested changes {name: (value, item) | {...}}, the items applied)."""
    values, items = {}, []
    for name, change in changes.items():
        if isinstance(change, dict):
            values[name], inner = _apply(getattr(obj, name), change)
        else:
            values[name], inner = change[0], [change[1]]
        items += inner
    try:
        return dataclasses.replace(obj, **values), items
    except (TypeError, ValueError) as err:
        raise ValueError(f"setting {' '.join(items)}: {err}") from None
