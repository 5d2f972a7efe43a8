"""Tests of lto_ref.io and policy.save/load: exact round trips, atomic writes, bad files refused."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import rng_from, seeds
from lto_ref import io, policy

# hypothesis reuses one tmp_path per test; each example overwrites the same pair, which is fine
reuse_tmp = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
names = st.one_of(st.from_regex(r"x[a-z0-9_]{0,7}", fullmatch=True),
                  st.sampled_from(["file", "allow_pickle"]))  # np.savez's own keyword names
shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)
json_values = st.one_of(st.integers(), st.text(max_size=8), st.booleans(),
                        st.floats(allow_nan=False, allow_infinity=False))
metas = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("format_version", "arrays")),
                        json_values, max_size=5)
EXTREMES = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(float).max])


class _Tripwire:
    """Unpickling this object creates the folder ``path``: the proof that a pickle was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _values(rng, shape):
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-300, 300, size=shape)
    x = np.where(rng.random(shape) < 0.2, rng.choice(EXTREMES, size=shape), x)
    return np.asarray(x, order="F" if rng.random() < 0.5 else "C")


def _edit_json(json_path, edit):
    meta = json.loads(Path(json_path).read_text())
    edit(meta)
    Path(json_path).write_text(json.dumps(meta))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def _flat(pol):
    return [*pol.net[0], *pol.net[1], pol.shift, pol.scale, pol.var]


@reuse_tmp
@given(seeds, st.dictionaries(names, shapes, max_size=4), metas)
def test_save_load_round_trip_is_bitwise_exact(tmp_path, seed, array_shapes, meta):
    rng = rng_from(seed)
    arrays = {k: _values(rng, s) for k, s in array_shapes.items()}
    io.save_arrays(tmp_path / "x", arrays, meta)
    loaded, loaded_meta = io.load_arrays(tmp_path / "x")
    assert loaded.keys() == arrays.keys()
    for k, a in arrays.items():
        assert loaded[k].dtype == np.float64 and loaded[k].shape == a.shape
        assert loaded[k].tobytes() == a.tobytes()  # bitwise: NaN payloads, -0.0, subnormals
    expected = dict(meta, format_version=io.FORMAT_VERSION,
                    arrays={k: list(s) for k, s in array_shapes.items()})
    assert loaded_meta == expected
    assert {k: type(v) for k, v in loaded_meta.items()} == {k: type(v) for k, v in expected.items()}
    assert sorted(os.listdir(tmp_path)) == ["x.json", "x.npz"]


@reuse_tmp
@given(seeds, st.integers(1, 6), st.integers(1, 4), st.integers(1, 8),
       st.sampled_from(policy.ACTIVATIONS))
def test_policy_round_trip_is_exact_and_acts_identically(tmp_path, seed, d_obs, d_act, hidden,
                                                         activation):
    rng = rng_from(seed)
    pol = policy.init(rng, d_obs, d_act, hidden=hidden, activation=activation)
    net = [tuple(rng.standard_normal(np.shape(p)) for p in layer) for layer in pol.net]
    pol = pol._replace(net=net, shift=rng.standard_normal(d_obs), scale=rng.standard_normal(d_obs),
                       var=rng.random(d_act) + 0.1)  # every array random, not init's zeros/ones
    policy.save(tmp_path / "pol", pol, family="lr", seed=seed)
    loaded, meta = policy.load(tmp_path / "pol")
    for got, want in zip(_flat(loaded), _flat(pol), strict=True):
        assert got.dtype == np.float64 and np.array_equal(got, want)
    want = dict(family="lr", seed=seed, kind="policy", d_obs=d_obs, hidden=hidden, d_act=d_act,
                activation=activation)
    assert loaded.activation == activation and {k: meta[k] for k in want} == want
    obs = 3.0 * rng.standard_normal((5, d_obs))
    assert np.array_equal(policy.mean(loaded, obs), policy.mean(pol, obs))


def test_suffixes_address_the_same_pair(tmp_path):
    stem = str(tmp_path / "d" / "x")
    assert io.paths(stem) == io.paths(stem + ".npz") == io.paths(stem + ".json") \
        == io.paths(tmp_path / "d" / "x.json") == (stem + ".npz", stem + ".json")
    io.save_arrays(stem + ".npz", {"a": np.arange(3.0)}, {"tag": "first"})
    io.save_arrays(stem + ".json", {"a": np.arange(4.0)}, {"tag": "second"})
    for p in (stem, stem + ".npz", stem + ".json", tmp_path / "d" / "x"):
        arrays, meta = io.load_arrays(p)
        assert meta["tag"] == "second" and np.array_equal(arrays["a"], np.arange(4.0))
    assert sorted(os.listdir(tmp_path / "d")) == ["x.json", "x.npz"]


def test_save_creates_missing_folders(tmp_path):
    io.save_arrays(tmp_path / "a" / "b" / "x", {"a": np.ones(2)}, {})
    assert np.array_equal(io.load_arrays(tmp_path / "a" / "b" / "x")[0]["a"], np.ones(2))


def test_save_leaves_no_temporary_files_and_writes_mode_644(tmp_path):
    for k in range(3):  # fresh write, then overwrites
        io.save_arrays(tmp_path / "x", {"a": np.full(k + 1, k, dtype=float)}, {"k": k})
    policy.save(tmp_path / "pol", policy.init(rng_from(0), 3, 2))
    assert sorted(os.listdir(tmp_path)) == ["pol.json", "pol.npz", "x.json", "x.npz"]
    for name in os.listdir(tmp_path):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("arrays, meta", [
    ({"a": np.ones(2)}, {"bad": object()}),
    ({"a": np.ones(2)}, {"bad": np.ones(2)}),
    ({"a": np.ones(2)}, {"bad": {1, 2}}),
    ({"a": np.array([{"x": 1}], dtype=object)}, {}),
], ids=["object-meta", "array-meta", "set-meta", "object-array"])
def test_failed_save_raises_and_leaves_nothing_behind(tmp_path, existing, arrays, meta):
    if existing:
        io.save_arrays(tmp_path / "x", {"a": np.arange(5.0)}, {"ok": 1})
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError):
        io.save_arrays(tmp_path / "x", arrays, meta)
    assert _snapshot(tmp_path) == before  # no .tmp- file, no new or overwritten .json


def test_interrupted_array_write_removes_its_temporary_file(tmp_path, monkeypatch):
    io.save_arrays(tmp_path / "x", {"a": np.arange(5.0)}, {"ok": 1})
    before = _snapshot(tmp_path)

    def crash(fh, arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    monkeypatch.setattr(io, "_write_npz", crash)
    with pytest.raises(OSError):
        io.save_arrays(tmp_path / "x", {"a": np.ones(9)}, {"ok": 2})
    after = _snapshot(tmp_path)  # old arrays untouched, no temporary file; the JSON is withdrawn
    npz_name = os.path.basename(io.paths(tmp_path / "x")[0])
    assert after == {k: v for k, v in before.items() if k == npz_name}


def _truncate(p):
    Path(p).write_bytes(Path(p).read_bytes()[: os.path.getsize(p) // 2])


def _write(data):
    return lambda p: Path(p).write_bytes(data)


def _pickled(make_obj):
    return lambda p: np.savez(p, a=np.array([make_obj(p)], dtype=object))


def _npy(p):
    """A plain .npy array written under the .npz name."""
    with open(p, "wb") as fh:
        np.lib.format.write_array(fh, np.zeros(1))


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


NPZ, JSON = 0, 1
MALFORMED = {  # name: (which file to spoil, how, which file the message must name)
    "missing-json": (JSON, os.remove, JSON),
    "missing-npz": (NPZ, os.remove, NPZ),
    "truncated-npz": (NPZ, _truncate, NPZ),
    "garbage-npz": (NPZ, _write(bytes(range(256)) * 4), NPZ),
    "empty-npz": (NPZ, _write(b""), NPZ),
    "npy-as-npz": (NPZ, _npy, NPZ),
    "pickle-npz": (NPZ, _pickled(lambda p: {"x": 1}), NPZ),
    "tripwire-npz": (NPZ, _pickled(lambda p: _Tripwire(p + ".unpickled")), NPZ),
    "version-2": (JSON, lambda p: _edit_json(p, _set("format_version", 2)), JSON),
    "version-str": (JSON, lambda p: _edit_json(p, _set("format_version", "1")), JSON),
    "version-missing": (JSON, lambda p: _edit_json(p, lambda m: m.pop("format_version")), JSON),
    "invalid-json": (JSON, _write(b'{"format_version": 1, '), JSON),
    "empty-json": (JSON, _write(b""), JSON),
    "not-utf8-json": (JSON, _write(b"\xff\xfe\x00"), JSON),
    "list-json": (JSON, _write(b"[1, 2]"), JSON),
    "arrays-missing": (JSON, lambda p: _edit_json(p, lambda m: m.pop("arrays")), JSON),
    "arrays-list": (JSON, lambda p: _edit_json(p, _set("arrays", [[1]])), JSON),
    "array-renamed": (JSON, lambda p: _edit_json(p, _set("arrays", {"b": [1]})), NPZ),
    "array-extra": (JSON, lambda p: _edit_json(p, _set("arrays", {"a": [1], "b": [1]})), NPZ),
    "array-absent": (JSON, lambda p: _edit_json(p, _set("arrays", {})), NPZ),
    "array-reshaped": (JSON, lambda p: _edit_json(p, _set("arrays", {"a": [1, 1]})), NPZ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_pair_is_refused_naming_the_file(tmp_path, case):
    spoil, corrupt, named = MALFORMED[case]
    pair = io.save_arrays(tmp_path / "x", {"a": np.zeros(1)}, {})
    corrupt(pair[spoil])
    with pytest.raises(ValueError) as err:
        io.load_arrays(tmp_path / "x")
    assert pair[named] in str(err.value)
    assert not os.path.exists(pair[NPZ] + ".unpickled")  # allow_pickle=False: never run a pickle


@pytest.mark.parametrize("shape", [3, None, [2.5], [-1]], ids=["int", "null", "float", "negative"])
def test_non_list_shape_record_is_refused(tmp_path, shape):
    pair = io.save_arrays(tmp_path / "x", {"a": np.zeros(3)}, {})
    _edit_json(pair[JSON], _set("arrays", {"a": shape}))
    with pytest.raises(ValueError, match=re.escape(pair[JSON])):
        io.load_arrays(tmp_path / "x")


@pytest.mark.parametrize("name", ["file", "allow_pickle"])
def test_array_names_clashing_with_savez_arguments_round_trip(tmp_path, name):
    io.save_arrays(tmp_path / "x", {name: np.arange(2.0)}, {})
    assert np.array_equal(io.load_arrays(tmp_path / "x")[0][name], np.arange(2.0))


POLICY_EDITS = {
    "kind-missing": lambda m: m.pop("kind"),
    "kind-other": _set("kind", "trace"),
    "d_obs-off": lambda m: m.__setitem__("d_obs", m["d_obs"] + 1),
    "hidden-off": lambda m: m.__setitem__("hidden", m["hidden"] - 1),
    "d_act-off": lambda m: m.__setitem__("d_act", m["d_act"] + 1),
    "d_obs-missing": lambda m: m.pop("d_obs"),
    "d_act-text": _set("d_act", "two"),
    "activation-unknown": _set("activation", "tanh"),
    "activation-missing": lambda m: m.pop("activation"),
    "d_obs-inf": _set("d_obs", float("inf")),
    "hidden-float": _set("hidden", 2.5),
    "d_act-bool": _set("d_act", True),
}


@pytest.mark.parametrize("edit", POLICY_EDITS.values(), ids=list(POLICY_EDITS))
def test_malformed_policy_file_is_refused_naming_the_file(tmp_path, edit):
    path = str(tmp_path / "pol")
    _, json_path = policy.save(path, policy.init(rng_from(1), 4, 2, hidden=5))
    _edit_json(json_path, edit)
    with pytest.raises(ValueError, match=re.escape(json_path)):
        policy.load(path)


def test_reserved_meta_keys_and_lax_versions_are_refused(tmp_path):
    for key in ("format_version", "arrays"):
        with pytest.raises(ValueError, match=key):
            io.save_arrays(tmp_path / "x", {"a": np.zeros(1)}, {key: 1})
    pair = io.save_arrays(tmp_path / "x", {"a": np.zeros(1)}, {})
    for version in (True, 1.0):
        _edit_json(pair[JSON], _set("format_version", version))
        with pytest.raises(ValueError, match="format_version"):
            io.load_arrays(tmp_path / "x")


def test_interrupted_overwrite_leaves_no_json(tmp_path, monkeypatch):
    """Overwriting removes the old JSON first, so new arrays never pair with old metadata."""
    pair = io.save_arrays(tmp_path / "x", {"a": np.zeros(1)}, {"run": 1})

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(io, "_write_npz", fail)
    with pytest.raises(OSError):
        io.save_arrays(tmp_path / "x", {"a": np.zeros(2)}, {"run": 2})
    assert not os.path.exists(pair[JSON])
    with pytest.raises(ValueError, match="no such file"):
        io.load_arrays(tmp_path / "x")


def test_plain_array_pair_is_not_a_policy(tmp_path):
    path = str(tmp_path / "arrays")
    io.save_arrays(path, {"W1": np.ones((2, 3))}, {"family": "lr"})
    with pytest.raises(ValueError, match=re.escape(path)):
        policy.load(path)
