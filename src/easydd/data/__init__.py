"""Datasets for easydd: load, verify, cache, split, normalise and (optionally) ZCA-whiten.

    >>> from easydd.data import load_dataset
    >>> ds = load_dataset("mnist")              # found in ./data, a packaged copy, or downloaded if allowed
    >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape
    (torch.Size([55000, 1, 28, 28]), torch.Size([5000, 1, 28, 28]), torch.Size([10000, 1, 28, 28]))

Sources are tried in the order :mod:`easydd.data.sources` gives; decoded uint8 arrays are cached
(:mod:`easydd.data.cache`) so that later loads take a fraction of a second.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import torch

from . import cache as _cache
from .formats import DataError
from .custom import custom_name, is_custom, load_custom
from .sources import DATASETS, DatasetSpec, canonical_name, load_raw, locate
from .zca import ZCA

__all__ = ["load_dataset", "Dataset", "ZCA", "DATASETS", "DatasetSpec", "DataError", "find_sources",
           "canonical_name", "stratified_split"]


@dataclass(eq=False)
class Dataset:
    """A dataset ready for training: float32 (N, C, H, W) tensors normalised with ``mean``/``std`` (and whitened by
    ``zca`` when set), int64 labels, a validation split carved from the original training set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    zca: ZCA | None = None
    path: str | None = None  # your own data: the absolute path it was loaded from (built-in datasets: None)
    _class_idx: dict = field(default_factory=dict, init=False, repr=False)
    _rng: torch.Generator | None = field(default=None, init=False, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    def class_indices(self, c: int) -> torch.Tensor:
        """Indices into x_train of the images of class ``c`` (ascending)."""
        c = int(c)
        if not 0 <= c < self.num_classes:
            raise IndexError(f"class {c} out of range 0..{self.num_classes - 1}")
        stamp = (id(self.y_train), self.y_train.device, len(self.y_train))
        if self._class_idx.get("stamp") != stamp:
            # one pass for all classes: a stable sort of the labels, cut at the class counts
            order = torch.sort(self.y_train, stable=True).indices
            counts = torch.bincount(self.y_train, minlength=self.num_classes).tolist()
            self._class_idx = dict(enumerate(torch.split(order, counts)))
            self._class_idx["stamp"] = stamp
        return self._class_idx[c]

    def images_of_class(self, c: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random training images of class ``c`` (without replacement; all of them if the class has fewer).

        Randomness comes from ``generator`` (a CPU torch.Generator); without one, from a generator private to this
        dataset (seeded 0), never from the global RNG.
        """
        idx = self.class_indices(c)
        if generator is None:
            if self._rng is None:
                self._rng = torch.Generator().manual_seed(0)
            generator = self._rng
        perm = torch.randperm(idx.numel(), generator=generator, device=generator.device)[: int(n)]
        return self.x_train[idx[perm.to(idx.device)]]

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0,1] pixels for pictures: inverse ZCA (if any), then * std + mean, clamped."""
        x = x.detach()
        if self.zca is not None:
            x = self.zca.inverse(x)
        shape = (-1, 1, 1) if x.dim() == 3 else (1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        return (x * std + mean).clamp(0.0, 1.0)

    denormalize = denormalise

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels -> the representation of x_train (mean/std, then ZCA if any)."""
        shape = (-1, 1, 1) if pixels.dim() == 3 else (1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=pixels.device).reshape(shape)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=pixels.device).reshape(shape)
        x = (pixels.float() - mean) / std
        return self.zca.transform(x) if self.zca is not None else x

    def to(self, device: str | torch.device) -> "Dataset":
        """A copy with all tensors on ``device``."""
        return Dataset(self.name, *(getattr(self, k).to(device) for k in
                                    ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")),
                       list(self.classes), self.mean, self.std, self.source, self.zca, self.path)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, "
                f"shape={self.shape}, classes={self.num_classes}, zca={self.zca is not None}, source={self.source!r})")


# ----------------------------------------------------------------------------------------------------------------

def stratified_split(y: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), both ascending: ``val_size`` indices drawn per class in proportion to its frequency
    (largest remainders get the leftover), seeded by ``seed`` through numpy's default_rng (no global RNG)."""
    y = np.asarray(y)
    n = len(y)
    if val_size <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (val_size / n)
    take = np.minimum(np.floor(quota).astype(np.int64), counts - 1)
    left = val_size - int(take.sum())
    if left > 0:
        room = counts - 1 - take
        order = np.lexsort((np.arange(len(classes)), -(quota - np.floor(quota))))  # largest remainder, then class
        while left > 0:
            progressed = False
            for k in order:
                if left and room[k] > 0:
                    take[k] += 1
                    room[k] -= 1
                    left -= 1
                    progressed = True
            if not progressed:
                break
    rng = np.random.default_rng(seed)
    val = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


class _BadArgument(DataError, ValueError):
    """An impossible argument (e.g. val_size): a DataError for the CLI, a ValueError for callers."""


def _resolve_val_size(val_size, spec_default, n: int, num_classes: int) -> int:
    v = spec_default if val_size is None else val_size
    if isinstance(v, float):
        if 0 < v < 1:
            v = round(v * n)
        elif not v.is_integer():
            raise _BadArgument(f"val_size={v}: give a number of images or a fraction in (0, 1)")
    v = int(v)
    if v < 0 or v > n - num_classes:
        raise _BadArgument(f"val_size={val_size}: must be between 0 and {n - num_classes} (training set of {n})")
    return v


def _channel_stats(x_u8: np.ndarray, max_value: int, chunk: int = 4096) -> tuple[tuple, tuple]:
    """Per-channel mean and std of x_u8 / max_value, summed chunk by chunk in float64 (no full-size float copy); a
    constant channel gets std 1 rather than a division by zero."""
    c = x_u8.shape[1]
    s1, s2, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(x_u8), chunk):
        part = x_u8[i:i + chunk].astype(np.float64) / max_value
        s1 += part.sum(axis=(0, 2, 3))
        s2 += (part ** 2).sum(axis=(0, 2, 3))
        n += part.shape[0] * part.shape[2] * part.shape[3]
    mean = s1 / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean ** 2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(v) if v > 1e-8 else 1.0 for v in std)


def _to_float(x_u8: np.ndarray, idx: np.ndarray | None, max_value: int, mean, std,
              chunk: int = 4096) -> torch.Tensor:
    """float32 ((x_u8[idx] / max_value) - mean) / std, gathered and converted chunk by chunk (no full-size uint8
    intermediate, works straight from a memory-mapped cache file)."""
    n = len(x_u8) if idx is None else len(idx)
    c = x_u8.shape[1]
    out = torch.empty((n, *x_u8.shape[1:]), dtype=torch.float32)
    scale = torch.tensor([1.0 / (max_value * s) for s in std], dtype=torch.float32).reshape(1, c, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32).reshape(1, c, 1, 1)
    for i in range(0, n, chunk):
        part = x_u8[i:i + chunk] if idx is None else x_u8[idx[i:i + chunk]]
        o = out[i:i + chunk]
        o.copy_(torch.from_numpy(np.array(part, dtype=np.uint8, copy=True)))
        o.mul_(scale).add_(shift)
    return out


def _raw_builtin(key: str, root, download, cache_dir, mirrors, use_cache: bool):
    """(raw arrays, where they came from) of a built-in dataset: the decoded cache, else its files (then cached)."""
    raw = _cache.load_cached(key, cache_dir) if use_cache else None
    if raw is not None:
        return raw, f"{raw.source} [cached in {_cache.entry_dir(key, cache_dir)}]"
    raw = load_raw(key, root, download=download, mirrors=mirrors)
    if use_cache:
        _cache.save_cached(key, raw, cache_dir)
    return raw, raw.source


def load_dataset(name: str, root: str | os.PathLike | None = None, *, val_size: int | float | None = None,
                 seed: int = 0, zca: bool = False, download: bool | None = None,
                 cache_dir: str | os.PathLike | None = None, mirrors: str | dict | None = None,
                 use_cache: bool = True) -> Dataset:
    """Load ``name`` (a built-in dataset, or a path to your own .npz / image folder, see
    :mod:`easydd.data.custom`) as a :class:`Dataset`.

    root: data root (default $EASYDD_DATA or ./data). val_size: images carved from the training set for validation
    (int, or a fraction in (0,1); default 5000, 10000 for tiny_imagenet, 10% for digits); stratified by class and
    seeded by ``seed``. zca: fit ZCA (eps 0.1) on the normalised training split and apply it to all splits.
    download: allow fetching missing files (default: env EASYDD_DOWNLOAD=1). cache_dir: where decoded arrays are
    cached (default $EASYDD_CACHE or ~/.cache/easydd). mirrors: base URL(s) overriding the canonical ones
    (default: env EASYDD_MIRROR).
    """
    custom = is_custom(name)
    if custom:  # your own .npz or image folder (see easydd.data.custom); never cached
        key, raw, val_default, fixed_stats = custom_name(name), load_custom(name), 0.1, None
        source = raw.source
        use_cache = False
    else:
        key = canonical_name(name)
        spec = DATASETS[key]
        val_default, fixed_stats = spec.val_size, ((tuple(spec.mean), tuple(spec.std)) if spec.mean else None)
        raw, source = _raw_builtin(key, root, download, cache_dir, mirrors, use_cache)

    x_tr_u8, y_tr_np = raw.x_train, raw.y_train
    num_classes = len(raw.classes)
    if fixed_stats:
        mean, std = fixed_stats
    else:  # digits and your own data: statistics of the training part, computed per channel
        mean, std = _channel_stats(x_tr_u8, raw.max_value)

    n_val = _resolve_val_size(val_size, val_default, len(y_tr_np), num_classes)
    tr_idx, va_idx = stratified_split(y_tr_np, n_val, seed)

    ds = Dataset(
        name=key,
        x_train=_to_float(x_tr_u8, tr_idx if n_val else None, raw.max_value, mean, std),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr_np[tr_idx], dtype=np.int64)),
        x_val=_to_float(x_tr_u8, va_idx, raw.max_value, mean, std),
        y_val=torch.from_numpy(np.ascontiguousarray(y_tr_np[va_idx], dtype=np.int64)),
        x_test=_to_float(raw.x_test, None, raw.max_value, mean, std),
        y_test=torch.from_numpy(np.array(raw.y_test, dtype=np.int64, copy=True)),
        classes=list(raw.classes),
        mean=mean,
        std=std,
        source=source,
    )
    del raw, x_tr_u8
    if custom:
        ds.path = str(Path(os.fspath(name)).expanduser().resolve())
    if zca:
        ds.zca = _fit_zca(ds, key, n_val, seed, cache_dir if use_cache else None, use_cache)
        ds.x_train = ds.zca.transform(ds.x_train)
        ds.x_val = ds.zca.transform(ds.x_val) if len(ds.x_val) else ds.x_val
        ds.x_test = ds.zca.transform(ds.x_test)
    return ds


_ZCA_EPS = 0.1


def _fit_zca(ds: Dataset, key: str, n_val: int, seed: int, cache_dir, use_cache: bool) -> ZCA:
    zkey = f"val{n_val}-seed{seed}-eps{_ZCA_EPS:g}"
    if use_cache:
        state = _cache.load_zca(key, zkey, cache_dir)
        if state is not None:
            try:
                return ZCA.from_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            except (KeyError, ValueError, TypeError):
                pass
    z = ZCA(eps=_ZCA_EPS).fit(ds.x_train)
    if use_cache:
        _cache.save_zca(key, zkey, {k: v.numpy() for k, v in z.state_dict().items()}, cache_dir)
    return z


def find_sources(root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 ) -> dict[str, str | None]:
    """Where each dataset would be loaded from right now without downloading (None: nowhere). Cheap: looks for
    files, does not verify checksums (a load does)."""
    out: dict[str, str | None] = {}
    for key in DATASETS:
        cached = _cache.cached_source(key, cache_dir)
        if cached is not None:
            out[key] = cached
            continue
        c = locate(key, root)
        out[key] = c.description if c else None
    return out
