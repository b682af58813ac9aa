"""The distilled set: images, hard or soft labels, an optional learned learning rate, and metadata.

Saved as ``<name>.safetensors`` (tensors + metadata as a JSON string in the safetensors header) with a readable
``<name>.json`` copy of the metadata beside it. Loading never unpickles. Soft labels are stored as LOGITS
(N, K); training on them uses the soft cross-entropy against ``softmax(logits)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .errors import DistilledFileError  # defined with the other user errors; re-exported here
from .io import atomic_write  # noqa: F401  (moved to easydd.io; re-exported here)


def _check_tensors(path, t: dict) -> float | None:
    """The shapes, dtypes and values of a distilled file's tensors; its learned lr (or None)."""
    def bad(msg):
        return DistilledFileError(f"{path}: {msg}; re-create it with `easydd distill` or `easydd select` (or save "
                                  "float32 images (N, C, H, W) with int64 labels (N,) via easydd.Distilled(...).save)")
    x, y = t["images"], t["labels"]
    if x.dim() != 4 or x.dtype != torch.float32:
        raise bad(f"images are {x.dtype} of shape {tuple(x.shape)}, not float32 (N, C, H, W)")
    if x.shape[0] == 0:
        raise bad("the set holds no images")
    if y.dim() == 1:
        if y.dtype != torch.int64:
            raise bad(f"hard labels are {y.dtype}, not int64")
    elif y.dim() != 2 or not y.dtype.is_floating_point:
        raise bad(f"labels of shape {tuple(y.shape)} and dtype {y.dtype}: expected int64 (N,) or float soft-label "
                  "logits (N, K)")
    if y.shape[0] != x.shape[0]:
        raise bad(f"{x.shape[0]} images but {y.shape[0]} labels")
    if not bool(torch.isfinite(x).all()) or (y.dtype.is_floating_point and not bool(torch.isfinite(y).all())):
        raise bad("the images or labels contain NaN or inf (a diverged run?)")
    if "lr" not in t:
        return None
    lr = t["lr"]
    if lr.numel() != 1 or not lr.dtype.is_floating_point:
        raise bad(f"the learned learning rate is {lr.dtype} of shape {tuple(lr.shape)}, not one float")
    return float(lr.flatten()[0])  # a NaN one is refused where it would be used (evaluation), which names --lr


@dataclass
class Distilled:
    images: torch.Tensor                   # (N, C, H, W), in the dataset's normalised (and maybe ZCA) space
    labels: torch.Tensor                   # (N,) int64 hard labels or (N, K) float soft-label logits
    lr: float | None = None                # learned learning rate (trajectory methods), used by evaluation
    meta: dict = field(default_factory=dict)  # dataset, ipc, method, config, mean, std, zca, ...

    @property
    def soft(self) -> bool:
        return self.labels.dim() == 2

    @property
    def hard_labels(self) -> torch.Tensor:
        return self.labels.argmax(1) if self.soft else self.labels

    @property
    def ipc(self) -> int:
        return int(self.meta.get("ipc", 0)) or int(torch.bincount(self.hard_labels).max())

    def __len__(self) -> int:
        return self.images.shape[0]

    def detach(self) -> "Distilled":
        return Distilled(self.images.detach().clone().cpu(), self.labels.detach().clone().cpu(),
                         None if self.lr is None else float(self.lr), dict(self.meta))

    # -- files ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.safetensors) and its .json metadata atomically (temp file + rename)."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {"images": self.images.detach().cpu().contiguous().float(),
                   "labels": self.labels.detach().cpu().contiguous()}
        if self.lr is not None:
            tensors["lr"] = torch.tensor([float(self.lr)])
        meta_json = json.dumps(self.meta, default=str, sort_keys=True)
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"easydd": meta_json}))
        atomic_write(path.with_suffix(".json"),
                     lambda tmp: Path(tmp).write_text(json.dumps(self.meta, default=str, indent=2, sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Distilled":
        path = Path(path)
        if path.is_dir():
            cand = [path / "distilled.safetensors", path / "best.safetensors"]
            found = [c for c in cand if c.exists()]
            if not found:
                raise DistilledFileError(f"{path} holds no distilled.safetensors; pass a run directory made by "
                                         "`easydd distill`/`easydd select` or a .safetensors file")
            path = found[0]
        if not path.exists():
            raise DistilledFileError(f"no such file: {path}")
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise DistilledFileError(f"{path} is not a readable safetensors file ({e}); re-create it with "
                                     "`easydd distill` or `easydd select`") from None
        if "images" not in tensors or "labels" not in tensors:
            raise DistilledFileError(f"{path} is a safetensors file but not an easydd distilled set "
                                     "(no 'images'/'labels' tensors)")
        try:
            meta = json.loads(header.get("easydd", "{}"))
        except json.JSONDecodeError:
            raise DistilledFileError(f"{path}: corrupt metadata header; re-create the file") from None
        if not isinstance(meta, dict):
            raise DistilledFileError(f"{path}: the metadata header is not a JSON object; re-create the file")
        lr = _check_tensors(path, tensors)
        return cls(tensors["images"], tensors["labels"], lr, meta)

    def check_dataset(self, dataset) -> None:
        """Raise a clear error if this set was made for another dataset (name or image shape)."""
        name = self.meta.get("dataset")
        k = dataset.num_classes
        if self.soft and self.labels.shape[1] != k:
            raise DistilledFileError(f"the set's soft labels have {self.labels.shape[1]} classes but {dataset.name} "
                                     f"has {k}; evaluate it on the dataset it was made from (--dataset NAME)")
        if not self.soft and len(self) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= k):
            raise DistilledFileError(f"the set's labels range over {int(self.labels.min())}..{int(self.labels.max())} "
                                     f"but {dataset.name} has classes 0..{k - 1}; evaluate it on the dataset it was "
                                     "made from (--dataset NAME)")
        if name and name != dataset.name:
            raise DistilledFileError(f"this distilled set was made from {name!r}, not {dataset.name!r}; "
                                     f"evaluate it with --dataset {name}")
        if tuple(self.images.shape[1:]) != tuple(dataset.shape):
            raise DistilledFileError(f"distilled images have shape {tuple(self.images.shape[1:])} but {dataset.name} "
                                     f"images are {tuple(dataset.shape)}")
        if bool(self.meta.get("zca", False)) != (dataset.zca is not None):
            raise DistilledFileError("the distilled set and the dataset disagree on ZCA whitening; load the "
                                     f"dataset with zca={bool(self.meta.get('zca', False))}")

    # -- pictures -------------------------------------------------------------------------------------------
    def save_grid(self, path: str | os.PathLike, dataset=None, max_per_class: int = 10) -> Path:
        """A class-per-row PNG of the images, un-whitened and un-normalised (via ``dataset.denormalise``)."""
        from .plots import subplots
        x = self.images.detach().cpu().float()
        if dataset is not None:
            x = dataset.denormalise(x)
        else:
            mean = torch.tensor(self.meta.get("mean", [0.0] * x.shape[1])).view(1, -1, 1, 1)
            std = torch.tensor(self.meta.get("std", [1.0] * x.shape[1])).view(1, -1, 1, 1)
            x = (x * std + mean).clamp(0, 1)
        y = self.hard_labels
        classes = sorted(set(y.tolist()))
        k = min(max_per_class, max(int((y == c).sum()) for c in classes))
        rows = len(classes)
        fig, axes = subplots(rows, k, figsize=(k * 0.6 + 0.4, rows * 0.6 + 0.2), squeeze=False)
        for i, c in enumerate(classes):
            idx = (y == c).nonzero().flatten()[:k]
            for j in range(k):
                ax = axes[i][j]
                ax.axis("off")
                if j < len(idx):
                    img = x[idx[j]].permute(1, 2, 0).numpy()
                    ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                              vmin=0, vmax=1)
        fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0, right=1, top=1, bottom=0)
        path = Path(path)
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
        return path

