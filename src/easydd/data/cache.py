"""Cache of decoded datasets: uint8 images and int64 labels as .npy files (np.save, never pickle).

Layout: ``<cache_dir>/<name>/v<CACHE_VERSION>/{x_train,y_train,x_test,y_test}.npy + meta.json``. An entry is written
into a private temporary folder and renamed into place in one step, so readers only ever see complete entries and
concurrent writers (e.g. several expert processes loading at once) cannot corrupt each other. ZCA matrices fitted on
a given split are cached beside the arrays (``zca/<key>/``), the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from .formats import RawData

__all__ = ["CACHE_VERSION", "default_cache_dir", "entry_dir", "load_cached", "save_cached", "load_zca", "save_zca",
           "clear"]

CACHE_VERSION = 1
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_DTYPES = {"x_train": np.uint8, "y_train": np.int64, "x_test": np.uint8, "y_test": np.int64}


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("EASYDD_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "easydd"


def entry_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    return default_cache_dir(cache_dir) / name / f"v{CACHE_VERSION}"


def _read_meta(d: Path) -> dict | None:
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("version") == CACHE_VERSION else None


def cached_source(name: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """Original source of a cached entry (cheap: reads meta.json only), or None when nothing is cached."""
    d = entry_dir(name, cache_dir)
    meta = _read_meta(d)
    if meta is None or not all((d / f"{k}.npy").is_file() for k in _ARRAYS):
        return None
    return f"cache {d} (from {meta.get('source', '?')})"


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def load_cached(name: str, cache_dir: str | os.PathLike | None = None) -> RawData | None:
    """The cached entry for ``name`` or None (missing, stale or damaged entries count as missing)."""
    d = entry_dir(name, cache_dir)
    meta = _read_meta(d)
    if meta is None:
        return None
    try:
        # images memory-mapped (read lazily, straight from the page cache), labels read
        arrays = {k: np.load(d / f"{k}.npy", allow_pickle=False, mmap_mode="r" if k[0] == "x" else None)
                  for k in _ARRAYS}
    except (OSError, ValueError, EOFError):
        return None
    for k, a in arrays.items():
        if a.dtype != _DTYPES[k] or list(a.shape) != meta.get("shapes", {}).get(k):
            return None
    crcs = {k: _crc(a) for k, a in arrays.items()}  # ~50 ms for MNIST: a damaged entry is never trusted
    if "crc32" not in meta:  # an entry from before checksums: record them now (best effort)
        meta["crc32"] = crcs
        try:
            tmp = d / f".meta.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, d / "meta.json")
        except OSError:
            pass
    elif crcs != meta["crc32"]:
        bad = sorted(k for k in crcs if crcs[k] != meta["crc32"].get(k))
        warnings.warn(f"easydd: the cached {name} in {d} is damaged ({', '.join(bad)} fail their checksum); "
                      "reading the dataset from its source again", stacklevel=3)
        return None
    return RawData(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   list(meta["classes"]), str(meta.get("source", "")), int(meta.get("max_value", 255)))


def _commit_dir(tmp: Path, final: Path) -> bool:
    """Atomically move the complete folder ``tmp`` to ``final``, replacing what is there (a stale or damaged entry,
    or an identical one from a concurrent writer: readers never see a half-written folder)."""
    try:
        os.replace(tmp, final)
        return True
    except OSError:
        pass
    trash = final.with_name(f".{final.name}.trash-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.replace(final, trash)
    except OSError:
        pass
    try:
        os.replace(tmp, final)
        ok = True
    except OSError:
        ok = final.exists()
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return ok


def save_cached(name: str, raw: RawData, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Write ``raw`` as the cache entry of ``name``; returns its folder, or None if the cache is not writable."""
    final = entry_dir(name, cache_dir)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as e:
        warnings.warn(f"easydd: cannot write the dataset cache in {final.parent} ({e.strerror}); set EASYDD_CACHE "
                      "or cache_dir= to a writable folder to make later loads fast", stacklevel=3)
        return None
    try:
        shapes = {}
        for k in _ARRAYS:
            a = np.ascontiguousarray(getattr(raw, k), dtype=_DTYPES[k])
            np.save(tmp / f"{k}.npy", a, allow_pickle=False)
            shapes[k] = list(a.shape)
        meta = {"version": CACHE_VERSION, "name": name, "classes": list(raw.classes), "source": raw.source,
                "max_value": int(raw.max_value), "shapes": shapes,
                "crc32": {k: _crc(np.load(tmp / f"{k}.npy", mmap_mode="r")) for k in _ARRAYS}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"easydd: cannot write the dataset cache in {final.parent} ({e.strerror}); continuing "
                      "without it", stacklevel=3)
        return None
    return final if _commit_dir(tmp, final) else None


def _zca_dir(name: str, key: str, cache_dir) -> Path:
    return entry_dir(name, cache_dir) / "zca" / key


def load_zca(name: str, key: str, cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray] | None:
    d = _zca_dir(name, key, cache_dir)
    if not (d / "done").is_file():
        return None
    try:
        return {p.stem: np.load(p, allow_pickle=False) for p in sorted(d.glob("*.npy"))}
    except (OSError, ValueError, EOFError):
        return None


def save_zca(name: str, key: str, state: dict[str, np.ndarray], cache_dir: str | os.PathLike | None = None) -> None:
    final = _zca_dir(name, key, cache_dir)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        for k, v in state.items():
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(v), allow_pickle=False)
        (tmp / "done").write_text("ok\n")
    except OSError:
        return  # the cache is an optimisation only
    _commit_dir(tmp, final)


def clear(name: str | None = None, cache_dir: str | os.PathLike | None = None) -> None:
    """Delete the cache of one dataset (or all of them)."""
    d = default_cache_dir(cache_dir)
    shutil.rmtree(d / name if name else d, ignore_errors=True)
