"""Parsers for the on-disk formats of the supported datasets.

Every parser returns plain numpy arrays: images as uint8 (N, C, H, W), labels as int64 (N,). Anything wrong with a
file (truncated gzip, bad magic number, wrong size, a pickle that tries to load something it should not) is turned
into a :class:`DataError` whose message names the file and the fix; numpy/gzip/pickle tracebacks never reach the user.

Formats: IDX (MNIST, Fashion-MNIST; gzip-compressed or raw), CIFAR-10/100 python batches (read with a restricted
unpickler, from the extracted folder or straight from the .tar.gz), SVHN ``*_32x32.mat`` (MATLAB v5, through
scipy.io), the tiny-imagenet-200 folder or zip (JPEG, through Pillow) and scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "RawData",
    "md5_bytes",
    "md5_file",
    "read_payload",
    "parse_idx",
    "load_idx",
    "restricted_loads",
    "parse_cifar_batch",
    "parse_cifar_meta",
    "load_cifar_dir",
    "load_cifar_archive",
    "load_svhn_mat",
    "load_tiny_imagenet",
    "load_digits_arrays",
]


from ..errors import DataError  # noqa: E402  (defined with the other user errors; re-exported here)


@dataclass
class RawData:
    """Decoded dataset as stored in the cache: uint8 images (N, C, H, W), int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str
    max_value: int = 255  # pixel value that maps to 1.0 (16 for scikit-learn's digits)

    def check(self, what: str, fix: str = "the files are corrupt: delete them and load again") -> "RawData":
        """Validate shapes/dtypes/label range, non-empty splits and at least two classes; raise DataError naming
        ``what`` and ``fix`` (the advice: a downloaded file can be fetched again, the user's own data cannot)."""
        for split in ("train", "test"):
            x, y = getattr(self, "x_" + split), getattr(self, "y_" + split)
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{what}: decoded {split} images have dtype {x.dtype} and {x.ndim} dims, "
                                f"expected uint8 (N,C,H,W); {fix}")
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{what}: {len(x)} {split} images but {len(y)} labels; {fix}")
            if len(y) == 0:
                raise DataError(f"{what}: the {split} split holds no images; {fix}")
            if int(y.min()) < 0 or int(y.max()) >= len(self.classes):
                raise DataError(f"{what}: {split} labels outside 0..{len(self.classes) - 1}; {fix}")
        present = np.unique(self.y_train)
        if len(present) < 2:
            raise DataError(f"{what}: the training split has only class {present.tolist()}; distillation and "
                            f"evaluation need at least two classes; {fix}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{what}: train images {self.x_train.shape[1:]} and test images "
                            f"{self.x_test.shape[1:]} differ in shape")
        return self


# ----------------------------------------------------------------------------------------------------------------
# checksums and compressed payloads

def md5_bytes(data: bytes | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while True:
            buf = f.read(chunk)
            if not buf:
                break
            h.update(buf)
    return h.hexdigest()


def _decompress_gzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{what}: not a valid gzip file ({e}); it is truncated or corrupt: delete it and "
                        "load again (with EASYDD_DOWNLOAD=1 to fetch a fresh copy)") from None


def read_payload(path: str | os.PathLike, md5: str | None = None, *, what: str | None = None) -> bytes:
    """Bytes of ``path``, gunzipped if it is a gzip file (detected by magic number, not by name).

    If ``md5`` is given it is checked against the DECOMPRESSED payload, so differently compressed copies of the same
    data (e.g. Debian's re-gzipped Fashion-MNIST) are all accepted.
    """
    what = what or str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{what}: cannot read ({e.strerror}); check the path and its permissions") from None
    if data[:2] == b"\x1f\x8b":
        data = _decompress_gzip(data, what)
    if md5 is not None:
        got = md5_bytes(data)
        if got != md5:
            raise DataError(f"{what}: checksum mismatch (md5 of payload {got}, expected {md5}): the file is corrupt "
                            "or not the official release; delete it and load again (with EASYDD_DOWNLOAD=1 to fetch "
                            "a fresh copy)")
    return data


# ----------------------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)

_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode an (uncompressed) IDX buffer into a numpy array of its declared type and shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{what}: not an IDX file (bad magic number); it is corrupt or mislabelled: delete it and "
                        "load again")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what}: IDX header truncated; delete the file and load again")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if len(data) != header + count * dtype.itemsize:
        raise DataError(f"{what}: IDX size mismatch (header says {dims}, {len(data) - header} bytes of data); "
                        "the file is truncated or corrupt: delete it and load again")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr if dtype.isnative or dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def load_idx(path: str | os.PathLike, md5: str | None = None, *, what: str | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, optionally verifying the md5 of its decompressed payload."""
    what = what or str(path)
    return parse_idx(read_payload(path, md5, what=what), what)


def idx_images(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise DataError(f"{what}: expected uint8 images (N,H,W), got {arr.dtype} {arr.shape}; wrong file?")
    return arr[:, None, :, :]


def idx_labels(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a 1-D label file, got shape {arr.shape}; wrong file?")
    return arr.astype(np.int64)


# ----------------------------------------------------------------------------------------------------------------
# CIFAR python batches: restricted unpickling

def _np_func(*candidates: tuple[str, str]):
    import importlib

    for mod, name in candidates:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    return None


def _safe_dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("object dtypes are not allowed")
    return dt


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    # what protocol-2 pickles written by Python 3 use to carry bytes; nothing else is allowed through it
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(obj, "latin1", errors)


_ALLOWED: dict[tuple[str, str], object] | None = None


def _allowed_globals() -> dict[tuple[str, str], object]:
    """Exactly the globals a CIFAR batch (or a dict of numpy arrays pickled by numpy 1 or 2) refers to."""
    global _ALLOWED
    if _ALLOWED is None:
        reconstruct = _np_func(("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"))
        frombuffer = _np_func(("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"))
        allowed: dict[tuple[str, str], object] = {
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): _safe_dtype,
            ("_codecs", "encode"): _latin1_encode,
        }
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if reconstruct is not None:
                allowed[(mod, "_reconstruct")] = reconstruct
        for mod in ("numpy.core.numeric", "numpy._core.numeric"):
            if frombuffer is not None:
                allowed[(mod, "_frombuffer")] = frombuffer
        _ALLOWED = allowed
    return _ALLOWED


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        fn = _allowed_globals().get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")
        return fn

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR batch")


def restricted_loads(data: bytes, what: str = "pickle") -> object:
    """Unpickle ``data`` allowing only dicts, lists, tuples, str/bytes, numbers and plain numpy arrays.

    Anything else (a reference to os.system, builtins.eval, an object dtype, ...) raises DataError.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{what}: refused to unpickle ({e}); this is not a genuine CIFAR batch: delete it and "
                        "load again (with EASYDD_DOWNLOAD=1 to fetch the official archive)") from None
    except Exception as e:  # truncated or garbled data: EOFError, ValueError, TypeError, KeyError, ...
        raise DataError(f"{what}: corrupt pickle ({type(e).__name__}: {e}); delete it and load again "
                        "(with EASYDD_DOWNLOAD=1 to fetch the official archive)") from None


def _str_keys(d: object, what: str) -> dict:
    if not isinstance(d, dict):
        raise DataError(f"{what}: expected a dict in the CIFAR batch, got {type(d).__name__}; wrong file?")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def parse_cifar_batch(data: bytes, label_key: str = "labels", what: str = "CIFAR batch") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N,3,32,32) and labels int64 from the bytes of one CIFAR python batch."""
    d = _str_keys(restricted_loads(data, what), what)
    if "data" not in d or label_key not in d:
        raise DataError(f"{what}: missing key 'data' or {label_key!r} (keys: {sorted(map(str, d))}); wrong file?")
    x, y = d["data"], d[label_key]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DataError(f"{what}: 'data' is not a uint8 (N, 3072) array; the file is corrupt: delete it")
    try:
        y = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: {label_key!r} is not a list of integers; the file is corrupt: delete it") from None
    if y.shape != (x.shape[0],):
        raise DataError(f"{what}: {x.shape[0]} images but {y.size} labels; the file is corrupt: delete it")
    return np.ascontiguousarray(x.reshape(-1, 3, 32, 32)), y


def parse_cifar_meta(data: bytes, key: str, what: str = "CIFAR meta") -> list[str]:
    d = _str_keys(restricted_loads(data, what), what)
    names = d.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"{what}: no list of class names under {key!r}; the file is corrupt: delete it")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


# layout of the two python releases: folder name, train files, test files, meta file, label key, class-name key
CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


def _cifar_assemble(kind: str, read, md5s: dict[str, str] | None, where: str) -> tuple:
    folder, train, test, meta, label_key, names_key = CIFAR_LAYOUT[kind]
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fname in train + test:
        data = read(fname)
        what = f"{where}/{fname}"
        if md5s is not None and fname in md5s:
            got = md5_bytes(data)
            if got != md5s[fname]:
                raise DataError(f"{what}: checksum mismatch (md5 {got}, expected {md5s[fname]}): corrupt or not the "
                                "official release; delete it and load again (with EASYDD_DOWNLOAD=1 for a fresh copy)")
        parts[fname] = parse_cifar_batch(data, label_key, what)
    data = read(meta)
    if md5s is not None and meta in md5s and md5_bytes(data) != md5s[meta]:
        raise DataError(f"{where}/{meta}: checksum mismatch; delete it and load again (with EASYDD_DOWNLOAD=1)")
    classes = parse_cifar_meta(data, names_key, f"{where}/{meta}")
    x_tr = np.concatenate([parts[f][0] for f in train])
    y_tr = np.concatenate([parts[f][1] for f in train])
    x_te = np.concatenate([parts[f][0] for f in test])
    y_te = np.concatenate([parts[f][1] for f in test])
    return x_tr, y_tr, x_te, y_te, classes


def load_cifar_dir(kind: str, folder: str | os.PathLike, md5s: dict[str, str] | None = None,
                   source: str | None = None) -> RawData:
    """Load an extracted ``cifar-10-batches-py`` / ``cifar-100-python`` folder."""
    folder = Path(folder)

    def read(fname: str) -> bytes:
        p = folder / fname
        try:
            return p.read_bytes()
        except OSError as e:
            raise DataError(f"{p}: cannot read ({e.strerror}); the {kind} folder is incomplete: delete it and "
                            "load again (with EASYDD_DOWNLOAD=1)") from None

    x_tr, y_tr, x_te, y_te, classes = _cifar_assemble(kind, read, md5s, str(folder))
    return RawData(x_tr, y_tr, x_te, y_te, classes, source or f"data root {folder}").check(str(folder))


def load_cifar_archive(kind: str, archive: str | os.PathLike, md5s: dict[str, str] | None = None,
                       source: str | None = None) -> RawData:
    """Load CIFAR straight from ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (nothing is extracted)."""
    folder = CIFAR_LAYOUT[kind][0]
    wanted = set(CIFAR_LAYOUT[kind][1] + CIFAR_LAYOUT[kind][2] + [CIFAR_LAYOUT[kind][3]])
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                parts = m.name.replace("\\", "/").strip("/").split("/")
                if m.isfile() and len(parts) == 2 and parts[0] == folder and parts[1] in wanted:
                    f = tf.extractfile(m)
                    if f is not None:
                        members[parts[1]] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: unreadable archive ({e}); it is truncated or corrupt: delete it and load "
                        "again (with EASYDD_DOWNLOAD=1)") from None

    def read(fname: str) -> bytes:
        if fname not in members:
            raise DataError(f"{archive}: member {folder}/{fname} missing; the archive is not the official {kind} "
                            "release: delete it and load again (with EASYDD_DOWNLOAD=1)")
        return members[fname]

    x_tr, y_tr, x_te, y_te, classes = _cifar_assemble(kind, read, md5s, f"{archive}:{folder}")
    return RawData(x_tr, y_tr, x_te, y_te, classes, source or f"data root {archive}").check(str(archive))


# ----------------------------------------------------------------------------------------------------------------
# SVHN (MATLAB v5 .mat)

def load_svhn_mat(path: str | os.PathLike, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N,3,32,32) and labels int64 in 0..9 (the file's label 10 is the digit 0).

    Give ``md5`` for any file you did not just write: scipy's MATLAB reader can crash the whole process
    (segmentation fault) on a damaged file (found by fuzzing, tests/test_fuzz.py), so the dataset loader parses an
    SVHN file only after its checksum matched the official release."""
    try:
        import scipy.io
    except ImportError:
        raise DataError("SVHN needs scipy to read its MATLAB .mat files: pip install scipy") from None
    if md5 is not None:
        got = md5_file(path)
        if got != md5:
            raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {md5}): corrupt or not the official "
                            "release; delete it and load again (with EASYDD_DOWNLOAD=1 for a fresh copy)")
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
        x, y = mat["X"], mat["y"]
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, KeyError ... on bad files
        raise DataError(f"{path}: not a readable SVHN .mat file ({type(e).__name__}: {e}); delete it and load "
                        "again (with EASYDD_DOWNLOAD=1)") from None
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: 'X' is not a uint8 32x32x3xN array; wrong or corrupt file: delete it")
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if y.shape[0] != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {y.shape[0]} labels; corrupt file: delete it")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


# ----------------------------------------------------------------------------------------------------------------
# Tiny ImageNet (folder or zip of JPEGs)

TINY_DIR = "tiny-imagenet-200"


class _TinyFiles:
    """Uniform read access to tiny-imagenet-200, whether a folder or the official zip."""

    def __init__(self, path: Path):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
                names = self.zip.namelist()
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{path}: unreadable zip ({e}); it is truncated or corrupt: delete it and load "
                                "again (with EASYDD_DOWNLOAD=1)") from None
            self.prefix = TINY_DIR + "/" if f"{TINY_DIR}/wnids.txt" in set(names) else ""
            self.children: dict[str, set[str]] = {}  # folder -> entries, built once (the zip has ~120k names)
            for n in names:
                if n.startswith(self.prefix):
                    parent, _, child = n[len(self.prefix):].rstrip("/").rpartition("/")
                    if child:
                        self.children.setdefault(parent, set()).add(child)

    def read(self, rel: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(self.prefix + rel)
            return (self.path / rel).read_bytes()
        except (KeyError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise DataError(f"{self.path}: cannot read {rel} ({e}); the tiny-imagenet-200 copy is incomplete or "
                            "corrupt: delete it and load again (with EASYDD_DOWNLOAD=1)") from None

    def listdir(self, rel: str) -> list[str]:
        if self.zip is not None:
            return sorted(self.children.get(rel.strip("/"), ()))
        try:
            return sorted(os.listdir(self.path / rel))
        except OSError as e:
            raise DataError(f"{self.path / rel}: cannot list ({e.strerror}); the tiny-imagenet-200 folder is "
                            "incomplete: delete it and load again (with EASYDD_DOWNLOAD=1)") from None

    def close(self):
        if self.zip is not None:
            self.zip.close()


def _decode_jpegs(files: _TinyFiles, rels: list[str], size: int, Image) -> np.ndarray:
    out = np.empty((len(rels), 3, size, size), dtype=np.uint8)
    for i, rel in enumerate(rels):
        data = files.read(rel)
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"))
        except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...
            raise DataError(f"{files.path}: {rel} is not a readable image ({e}); the copy is corrupt: delete it and "
                            "load again (with EASYDD_DOWNLOAD=1)") from None
        if arr.shape != (size, size, 3):
            raise DataError(f"{files.path}: {rel} is {arr.shape[1]}x{arr.shape[0]}, expected {size}x{size}; "
                            "not the official tiny-imagenet-200")
        out[i] = arr.transpose(2, 0, 1)
    return out


def load_tiny_imagenet(path: str | os.PathLike, source: str | None = None, size: int = 64) -> RawData:
    """Tiny ImageNet from the ``tiny-imagenet-200`` folder or ``tiny-imagenet-200.zip``.

    train/<wnid>/images/*.JPEG is the training set; val/ (labels in val/val_annotations.txt) is the test set, as in
    the distillation literature (the official test/ split has no labels). Classes are the sorted wnids; their names
    come from words.txt when present.
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError("Tiny ImageNet needs Pillow to decode its JPEGs: pip install pillow") from None
    path = Path(path)
    files = _TinyFiles(path)
    try:
        wnids = sorted(w.strip() for w in files.read("wnids.txt").decode("utf-8", "replace").split() if w.strip())
        if not wnids:
            raise DataError(f"{path}: wnids.txt is empty; corrupt copy: delete it and load again (EASYDD_DOWNLOAD=1)")
        index = {w: i for i, w in enumerate(wnids)}
        names = dict.fromkeys(wnids, "")
        try:
            for line in files.read("words.txt").decode("utf-8", "replace").splitlines():
                wnid, _, words = line.partition("\t")
                if wnid in names:
                    names[wnid] = words.split(",")[0].strip()
        except DataError:
            pass  # names are cosmetic
        classes = [names[w] or w for w in wnids]

        train_rels, train_y = [], []
        for w in wnids:
            imgs = [f for f in files.listdir(f"train/{w}/images") if f.lower().endswith((".jpeg", ".jpg", ".png"))]
            if not imgs:
                raise DataError(f"{path}: no training images for class {w}; the copy is incomplete: delete it and "
                                "load again (with EASYDD_DOWNLOAD=1)")
            train_rels += [f"train/{w}/images/{f}" for f in imgs]
            train_y += [index[w]] * len(imgs)
        test_rels, test_y = [], []
        for line in files.read("val/val_annotations.txt").decode("utf-8", "replace").splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1] in index:
                test_rels.append(f"val/images/{fields[0]}")
                test_y.append(index[fields[1]])
            elif line.strip():
                raise DataError(f"{path}: val/val_annotations.txt has an unknown class in line {line[:60]!r}; "
                                "corrupt copy: delete it and load again (with EASYDD_DOWNLOAD=1)")
        x_tr = _decode_jpegs(files, train_rels, size, Image)
        x_te = _decode_jpegs(files, test_rels, size, Image)
    finally:
        files.close()
    return RawData(x_tr, np.asarray(train_y, np.int64), x_te, np.asarray(test_y, np.int64), classes,
                   source or f"data root {path}").check(str(path))


# ----------------------------------------------------------------------------------------------------------------
# scikit-learn digits

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the test split of digits never depends on the user's seed


def load_digits_arrays() -> RawData:
    """scikit-learn's 1797 8x8 digits (pixel values 0..16), split once into a fixed stratified 80/20 train/test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = np.rint(d.images).astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test.append(rng.permutation(idx)[: int(round(len(idx) * DIGITS_TEST_FRACTION))])
    test_idx = np.sort(np.concatenate(test))
    train_mask = np.ones(len(y), bool)
    train_mask[test_idx] = False
    return RawData(x[train_mask], y[train_mask], x[test_idx], y[test_idx], [str(i) for i in range(10)],
                   "scikit-learn", max_value=16).check("digits")
