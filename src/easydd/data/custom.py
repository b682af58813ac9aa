"""Your own data: an ``.npz`` file of arrays or a folder of images, loaded wherever a dataset name is accepted.

    load_dataset("scans.npz")          # arrays x_train, y_train, x_test, y_test (optional: classes)
    load_dataset("path/to/folder")     # folder/train/<class>/*.png|jpg|..., folder/test/<class>/...
    easydd distill method=dsa dataset=path/to/folder ipc=10

Arrays: uint8 images (pixels 0..255) or floats in [0, 1], shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with
C = 1 or 3; integer labels 0..K-1. Folders: one sub-folder per class (its name is the class name, classes in sorted
order); every image must have the same size (resize them first); images are read as grayscale when all of them
are, RGB otherwise. Mean and std are computed per channel on the training split; a validation split (10% by
default) is carved from it as for the built-in datasets; DSA uses the strategy for natural images (with flips).
Nothing is cached: an .npz loads in moments; a large image folder is worth converting to .npz once.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .formats import DataError, RawData

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def is_custom(name) -> bool:
    """A path to an .npz file or a folder (anything with a path separator or the .npz suffix counts as a path,
    so that a built-in name such as 'mnist' is never shadowed by a folder of that name)."""
    s = os.fspath(name)
    return s.lower().endswith(".npz") or os.sep in s or "/" in s or Path(s).expanduser().is_dir()


def custom_name(path) -> str:
    """A file-name-safe dataset name from the path's stem ('my scans.npz' -> 'my_scans')."""
    p = Path(os.fspath(path)).expanduser()
    stem = p.stem if p.suffix.lower() == ".npz" else p.resolve().name
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower() or "custom"


def load_custom(path) -> RawData:
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; give a built-in dataset name, an .npz file or a folder with "
                        "train/<class>/ and test/<class>/ images")
    raw = _from_npz(p) if p.is_file() else _from_folder(p)
    return raw.check(str(p), fix="fix your data (an .npz of x_train, y_train, x_test, y_test with "
                     "labels 0..K-1, or a folder of train/<class>/ and test/<class>/ images)")


# -- arrays ------------------------------------------------------------------------------------------------------

def _images(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{what}: images of shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) "
                        "with 1 or 3 channels")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{what}: {int((~np.isfinite(x)).sum())} pixel(s) are NaN or inf; replace them (e.g. "
                            "numpy.nan_to_num) or drop those images")
        lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
        if lo < 0 or hi > 1:
            raise DataError(f"{what}: float pixels range over [{lo:g}, {hi:g}]; give uint8 0..255 or floats in "
                            "[0, 1] (not normalised ones: easydd normalises itself)")
        return np.ascontiguousarray(np.rint(x * 255).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer) and x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{what}: integer pixels outside 0..255; give uint8 images or floats in [0, 1]")
    return np.ascontiguousarray(x.astype(np.uint8))


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be a 1-D integer array (got {y.dtype}, shape {y.shape})")
    return y.astype(np.int64)


def _from_npz(p: Path) -> RawData:
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # a truncated zip, a pickle, not an npz at all
        raise DataError(f"{p}: cannot read it as an .npz of arrays ({type(e).__name__}: {e}); save it with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    need = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise DataError(f"{p}: missing array(s) {missing} (found {sorted(arrays)}); save it with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    y_tr, y_te = _labels(arrays["y_train"], f"{p} y_train"), _labels(arrays["y_test"], f"{p} y_test")
    k = int(max(y_tr.max(initial=-1), y_te.max(initial=-1))) + 1
    classes = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else [str(c) for c in range(k)]
    if len(classes) < k:
        raise DataError(f"{p}: {len(classes)} class names but labels up to {k - 1}")
    return RawData(_images(arrays["x_train"], f"{p} x_train"), y_tr, _images(arrays["x_test"], f"{p} x_test"),
                   y_te, classes, f"{p} (npz)")


# -- folders -----------------------------------------------------------------------------------------------------

def _from_folder(p: Path) -> RawData:
    from PIL import Image
    splits = {s: p / s for s in ("train", "test")}
    for s, d in splits.items():
        if not d.is_dir():
            raise DataError(f"{p}: no {s}/ folder; lay the images out as {p}/train/<class>/*.png and "
                            f"{p}/test/<class>/*.png")
    classes = sorted(d.name for d in splits["train"].iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{splits['train']}: no class folders; put each class's images in a folder of its own")
    unknown = sorted(d.name for d in splits["test"].iterdir() if d.is_dir() and d.name not in classes)
    if unknown:
        raise DataError(f"{splits['test']}: class folder(s) {unknown} have no training folder")
    files: dict[str, list[tuple[Path, int]]] = {}
    for s, d in splits.items():
        files[s] = [(f, c) for c, name in enumerate(classes) if (d / name).is_dir()
                    for f in sorted((d / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    empty = [name for c, name in enumerate(classes) if not any(cc == c for _, cc in files["train"])]
    if empty:
        raise DataError(f"{splits['train']}: class folder(s) {empty} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def read(f: Path) -> Image.Image:
        try:
            im = Image.open(f)
            im.load()
            return im
        except Exception as e:
            raise DataError(f"{f}: not a readable image ({type(e).__name__}); remove or replace it") from None

    images = {s: [read(f) for f, _ in files[s]] for s in files}
    every = images["train"] + images["test"]
    gray = all(im.mode in ("1", "L", "I;16", "I", "F", "LA") for im in every)
    size = every[0].size
    for (f, _), im in zip(files["train"] + files["test"], every):
        if im.size != size:
            raise DataError(f"{f}: {im.size[0]}x{im.size[1]} pixels, but {files['train'][0][0]} has "
                            f"{size[0]}x{size[1]}; resize all images to one size first")

    def stack(s):
        arr = [np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8) for im in images[s]]
        x = np.stack(arr) if arr else np.zeros((0, size[1], size[0]) + (() if gray else (3,)), np.uint8)
        return x[:, None] if gray else x.transpose(0, 3, 1, 2)

    return RawData(np.ascontiguousarray(stack("train")), np.array([c for _, c in files["train"]], np.int64),
                   np.ascontiguousarray(stack("test")), np.array([c for _, c in files["test"]], np.int64),
                   classes, f"{p} (image folder)")
