"""Distilled sets made by other code, in and out: ``easydd import`` and ``easydd export``.

Layouts read (all written by ``torch.save``, so all pickles):

- ``dc``: DC / DSA / DM reference code, ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``: a dict whose ``data`` is
  a list (one entry per experiment) of ``[images, labels]``; ``--ipc-index K`` picks entry K (default 0).
- ``mtt``: MTT / FTD / TESLA / DATM, a folder (or one of its files) with ``images_best.pt`` (else the latest
  ``images_<it>.pt``), ``labels_best.pt`` / ``labels_<it>.pt`` (hard labels, or DATM's soft logits) and
  ``lr_best.pt`` / ``lr_<it>.pt`` (the learned step size). Missing labels are rebuilt in the reference code's
  class-major order.
- ``ddranking``: what DD-Ranking's evaluators take: a folder with ``images.pt`` and ``labels.pt`` (or
  ``soft_labels.pt`` / ``hard_labels.pt``), optionally ``lr.pt``.

Every file is read with ``torch.load(weights_only=True)``: tensors and plain containers only. A file that needs
anything more (a class, a function: possibly code) is refused with one message; nothing in it is executed.

Normalisation: the reference code stores images normalised with its per-dataset mean/std, which for the built-in
datasets are exactly easydd's (``easydd.data.sources.DATASETS``), so the conversion is the identity there and is
recorded anyway. ``--source-mean/--source-std`` name other statistics, ``--pixels`` says the images are [0, 1]
pixels; the images are converted to easydd's space ((pixels - mean) / std of the dataset) and the source's
statistics are kept in the metadata. ``--zca``: the images are ZCA-whitened (MTT's CIFAR sets); they are taken as
they are and the set is marked zca, so evaluation loads the dataset whitened too.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .io import file_sha256 as sha256
from .errors import UserError

FORMATS = ("dc", "mtt", "ddranking")


# -- reading ----------------------------------------------------------------------------------------------------


def safe_load(path: Path):
    """``torch.load(path, weights_only=True)`` on the CPU; anything else the file would need is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if needs is None:
            raise UserError(f"{path} is not a file torch.save wrote (torch.load(weights_only=True) stopped: "
                            f"{_reason(e)}); easydd import reads the {'/'.join(FORMATS)} layouts") from None
        raise UserError(f"{path} needs {needs.group(1)} to load, more than tensors and plain containers (it may "
                        "carry code); easydd reads saved sets with torch.load(weights_only=True) only and never "
                        "runs code from a file. Re-save just the tensors with torch.save where you trust the "
                        "file") from None
    except Exception as e:  # noqa: BLE001 - any other failure: not a torch.save file
        raise UserError(f"{path} is not a file torch.save wrote ({type(e).__name__}: {str(e)[:160]}); "
                        f"easydd import reads the {'/'.join(FORMATS)} layouts") from None


def _reason(e: Exception) -> str:
    m = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
    return (m.group(1).strip() if m else type(e).__name__)[:120]


def detect_format(path: Path) -> str:
    """The layout ``path`` is in, from file names only (the content is checked when it is read)."""
    if path.is_file():
        if re.fullmatch(r"res_.+\.pt", path.name):
            return "dc"
        if re.fullmatch(r"images_(best|\d+)\.pt", path.name):
            return "mtt"
        if path.name in ("images.pt",):
            return "ddranking"
    elif path.is_dir():
        found = []
        if any(path.glob("res_*.pt")):
            found.append("dc")
        if (path / "images_best.pt").exists() or any(re.fullmatch(r"images_\d+\.pt", p.name)
                                                      for p in path.glob("images_*.pt")):
            found.append("mtt")
        if (path / "images.pt").exists():
            found.append("ddranking")
        if len(found) == 1:
            if found == ["dc"]:
                files = sorted(path.glob("res_*.pt"))
                if len(files) > 1:
                    raise UserError(f"{path} holds {len(files)} res_*.pt files; pass one of them")
            return found[0]
        if found:
            raise UserError(f"{path} holds files of several layouts ({', '.join(found)}); pass --format")
    raise UserError(f"cannot tell the layout of {path} (expected res_*.pt, images_best.pt / images_<it>.pt or "
                    f"images.pt + labels.pt); pass --format {{{','.join(FORMATS)}}}")


def _tensor(obj, what: str, path: Path) -> torch.Tensor:
    if not isinstance(obj, torch.Tensor):
        raise UserError(f"{path}: {what} is a {type(obj).__name__}, not a tensor; is this the right --format?")
    return obj.detach().cpu()


def read_dc(path: Path, index: int | None) -> dict:
    if path.is_dir():
        files = sorted(path.glob("res_*.pt"))
        if len(files) != 1:
            raise UserError(f"{path} holds {len(files)} res_*.pt files; pass the one to import")
        path = files[0]
    obj = safe_load(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("data"), (list, tuple))):
        raise UserError(f"{path} is not a DC/DSA/DM result file (expected a dict whose 'data' is a list of "
                        "[images, labels], one per experiment); pass the right --format")
    data = obj["data"]
    if not data:
        raise UserError(f"{path}: 'data' is empty (the run saved no experiment)")
    k = 0 if index is None else index
    if not 0 <= k < len(data):
        raise UserError(f"--ipc-index {k} is out of range: {path} holds {len(data)} experiment(s), "
                        f"indices 0..{len(data) - 1}")
    entry = data[k]
    if not (isinstance(entry, (list, tuple)) and len(entry) >= 2):
        raise UserError(f"{path}: data[{k}] is not [images, labels]")
    return {"images": _tensor(entry[0], f"data[{k}][0] (images)", path),
            "labels": _tensor(entry[1], f"data[{k}][1] (labels)", path), "lr": None,
            "files": [path], "index": k, "experiments": len(data)}


def _mtt_files(path: Path) -> tuple[Path, str]:
    if path.is_file():
        m = re.fullmatch(r"images_(best|\d+)\.pt", path.name)
        if not m:
            raise UserError(f"{path}: an MTT-style set is images_best.pt or images_<iteration>.pt (or their folder)")
        return path.parent, m.group(1)
    if (path / "images_best.pt").exists():
        return path, "best"
    its = sorted(int(m.group(1)) for p in path.glob("images_*.pt")
                 if (m := re.fullmatch(r"images_(\d+)\.pt", p.name)))
    if not its:
        raise UserError(f"{path} holds neither images_best.pt nor images_<iteration>.pt")
    return path, str(its[-1])


def read_mtt(path: Path, index: int | None) -> dict:
    if index is not None:
        raise UserError("--ipc-index picks an experiment of a DC/DSA/DM result file; an MTT-style folder holds "
                        "one set (pass images_<iteration>.pt to choose another)")
    folder, tag = _mtt_files(path)
    files = [folder / f"images_{tag}.pt"]
    images = _tensor(safe_load(files[0]), "the images", files[0])
    labels = None
    if (folder / f"labels_{tag}.pt").exists():
        files.append(folder / f"labels_{tag}.pt")
        labels = _tensor(safe_load(files[-1]), "the labels", files[-1])
    lr = None
    if (folder / f"lr_{tag}.pt").exists():
        files.append(folder / f"lr_{tag}.pt")
        lr = _lr(safe_load(files[-1]), files[-1])
    return {"images": images, "labels": labels, "lr": lr, "files": files, "iteration": tag}


def _lr(obj, path: Path) -> float:
    try:
        v = float(obj.reshape(-1)[0]) if isinstance(obj, torch.Tensor) else float(obj)
    except (TypeError, ValueError, IndexError):
        raise UserError(f"{path}: the learning rate is not a number") from None
    if not (v > 0 and v < float("inf")):
        raise UserError(f"{path}: the learning rate {v} is not a positive number")
    return v


def read_ddranking(path: Path, index: int | None) -> dict:
    if index is not None:
        raise UserError("--ipc-index applies to DC/DSA/DM result files only")
    folder = path if path.is_dir() else path.parent
    img = folder / "images.pt" if path.is_dir() else path
    if not img.exists():
        raise UserError(f"{folder} has no images.pt (DD-Ranking layout: images.pt + labels.pt [+ lr.pt])")
    files = [img]
    images = _tensor(safe_load(img), "the images", img)
    labels = None
    for name in ("labels.pt", "soft_labels.pt", "hard_labels.pt"):
        if (folder / name).exists():
            files.append(folder / name)
            labels = _tensor(safe_load(files[-1]), "the labels", files[-1])
            break
    lr = None
    if (folder / "lr.pt").exists():
        files.append(folder / "lr.pt")
        lr = _lr(safe_load(files[-1]), files[-1])
    return {"images": images, "labels": labels, "lr": lr, "files": files}


READERS = {"dc": read_dc, "mtt": read_mtt, "ddranking": read_ddranking}


# -- checking and converting ------------------------------------------------------------------------------------

def _labels(labels, n: int, num_classes: int, src: str) -> tuple[torch.Tensor, str]:
    """(labels as easydd keeps them: int64 (N,) or float logits (N, K), how they were given)."""
    if labels is None:
        if n % num_classes:
            raise UserError(f"{src}: no labels saved and {n} images are not a whole number per class "
                            f"({num_classes} classes); save the labels beside the images")
        return torch.arange(num_classes).repeat_interleave(n // num_classes), "rebuilt in class-major order"
    if labels.shape[0] != n:
        raise UserError(f"{src}: {n} images but {labels.shape[0]} labels")
    if labels.dim() == 1:
        if labels.is_floating_point():
            if not torch.equal(labels, labels.round()):
                raise UserError(f"{src}: 1-D labels must be class indices (got non-integer values)")
            labels = labels.round()
        labels = labels.long()
        if n and (labels.min() < 0 or labels.max() >= num_classes):
            raise UserError(f"{src}: labels run {int(labels.min())}..{int(labels.max())} but the dataset has "
                            f"{num_classes} classes (0..{num_classes - 1}); is --dataset right?")
        return labels, "hard"
    if labels.dim() == 2:
        if labels.shape[1] != num_classes:
            raise UserError(f"{src}: soft labels have {labels.shape[1]} columns but the dataset has {num_classes} "
                            "classes; is --dataset right?")
        labels = labels.float()
        if not torch.isfinite(labels).all():
            raise UserError(f"{src}: the soft labels hold NaN or inf")
        probs = bool((labels >= 0).all()) and torch.allclose(labels.sum(1), torch.ones(n), atol=1e-4)
        if probs:  # probabilities -> logits with the same softmax
            return labels.clamp_min(1e-12).log(), "soft probabilities (stored as their log)"
        return labels, "soft logits"
    raise UserError(f"{src}: labels of shape {tuple(labels.shape)}: expected (N,) class indices or (N, K) soft labels")


def convert(images: torch.Tensor, dataset, *, source_mean=None, source_std=None, pixels: bool = False,
            zca: bool = False) -> tuple[torch.Tensor, dict]:
    """Images in the source's space -> easydd's space for ``dataset``; returns them and what was done."""
    c = dataset.channels
    ds_mean, ds_std = list(dataset.mean), list(dataset.std)
    if zca:
        if pixels or source_mean or source_std:
            raise UserError("--zca takes the whitened images as they are; drop --pixels / --source-mean / "
                            "--source-std")
        return images, {"space": "zca-whitened, taken as is", "source_mean": ds_mean, "source_std": ds_std}
    if pixels:
        if source_mean or source_std:
            raise UserError("--pixels says the images are [0, 1] pixels; drop --source-mean / --source-std")
        src_mean, src_std, space = [0.0] * c, [1.0] * c, "[0, 1] pixels"
    elif source_mean or source_std:
        if not (source_mean and source_std):
            raise UserError("give both --source-mean and --source-std (one value per channel)")
        src_mean, src_std, space = list(source_mean), list(source_std), "normalised with the given mean/std"
    else:
        src_mean, src_std = ds_mean, ds_std
        space = "normalised with the dataset's mean/std (the reference code's and easydd's)"
    for name, v in (("--source-mean", src_mean), ("--source-std", src_std)):
        if len(v) != c:
            raise UserError(f"{name} has {len(v)} value(s) but {dataset.name} has {c} channel(s)")
    if any(s <= 0 for s in src_std):
        raise UserError("--source-std values must be > 0")
    shape = (1, c, 1, 1)
    sm, ss = torch.tensor(src_mean).view(shape), torch.tensor(src_std).view(shape)
    dm, dsd = torch.tensor(ds_mean).view(shape), torch.tensor(ds_std).view(shape)
    same = torch.allclose(sm, dm) and torch.allclose(ss, dsd)
    out = images if same else ((images * ss + sm) - dm) / dsd
    return out.contiguous(), {"space": space, "source_mean": src_mean, "source_std": src_std,
                              "converted": not same}


def read_set(path, fmt: str | None, dataset, *, ipc_index: int | None = None, source_mean=None, source_std=None,
             pixels: bool = False, zca: bool = False):
    """Read a set saved by other code as an easydd :class:`Distilled` for ``dataset`` (checked and converted)."""
    from .distilled import Distilled
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise UserError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    raw = READERS[fmt](path, ipc_index)
    images, src = raw["images"], str(raw["files"][0])
    if images.dim() != 4 or not images.is_floating_point():
        raise UserError(f"{src}: images of shape {tuple(images.shape)} ({images.dtype}); expected float "
                        "(N, C, H, W)")
    if tuple(images.shape[1:]) != tuple(dataset.shape):
        raise UserError(f"{src}: images are {tuple(images.shape[1:])} (C, H, W) but {dataset.name} images are "
                        f"{tuple(dataset.shape)}; is --dataset right?")
    images = images.float()
    if not torch.isfinite(images).all():
        raise UserError(f"{src}: the images hold NaN or inf")
    labels, label_kind = _labels(raw["labels"], images.shape[0], dataset.num_classes, src)
    if zca and dataset.zca is None:
        raise UserError("--zca needs the dataset loaded whitened (internal: pass a zca dataset)")
    images, norm = convert(images, dataset, source_mean=source_mean, source_std=source_std, pixels=pixels, zca=zca)
    hard = labels.argmax(1) if labels.dim() == 2 else labels
    source = {"format": fmt, "path": str(path.resolve()), "label_kind": label_kind, **norm,
              "files": [{"path": str(Path(f).resolve()), "sha256": sha256(Path(f))} for f in raw["files"]]}
    for k in ("index", "experiments", "iteration"):
        if k in raw:
            source[k] = raw[k]
    ipc = (images.shape[0] // dataset.num_classes if labels.dim() == 2 else
           int(torch.bincount(hard, minlength=dataset.num_classes).max()))
    meta = {"dataset": dataset.name, "ipc": max(1, ipc),
            "method": f"imported-{fmt}", "mean": list(dataset.mean), "std": list(dataset.std),
            "zca": dataset.zca is not None, "imported": source}
    if getattr(dataset, "path", None):
        meta["data_path"] = dataset.path
    return Distilled(images, labels, raw["lr"], meta)


def write_run(distilled, out: Path, dataset=None) -> Path:
    """Write ``out/`` (distilled.safetensors + .json, grid.png, import.json) all at once: the folder appears
    complete or not at all."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out or remove it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise UserError(f"cannot write to {out.parent} ({e.strerror}); choose another --out") from None
    try:
        distilled.save(tmp / "distilled.safetensors")
        distilled.save_grid(tmp / "grid.png", dataset)
        (tmp / "import.json").write_text(json.dumps(distilled.meta.get("imported", {}), indent=2) + "\n")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def import_set(path, fmt: str | None, dataset_name: str, *, out=None, ipc_index: int | None = None,
               data_root=None, source_mean=None, source_std=None, pixels: bool = False, zca: bool = False):
    """Read ``path`` and write an easydd run directory for it; returns (run_dir, distilled)."""
    from .data import load_dataset
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    fmt = fmt or detect_format(path)
    dataset = load_dataset(dataset_name, data_root, zca=zca)
    d = read_set(path, fmt, dataset, ipc_index=ipc_index, source_mean=source_mean, source_std=source_std,
                 pixels=pixels, zca=zca)
    if out is None:
        stem = path.stem if path.is_file() else path.name
        suffix = f"-k{d.meta['imported']['index']}" if "index" in d.meta["imported"] else ""
        out = Path("runs") / "imported" / f"{fmt}-{dataset.name}-{stem}{suffix}"
    return write_run(d, Path(out), dataset), d


# -- export -----------------------------------------------------------------------------------------------------

def export_ddranking(run, out) -> Path:
    """Write ``out/`` with images.pt, labels.pt (hard indices or soft logits), lr.pt (if learned) and
    ddranking.json saying the space the images are in; all at once, never over an existing folder."""
    from .distilled import Distilled
    d = Distilled.load(run)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        torch.save(d.images.detach().float().contiguous().clone(), tmp / "images.pt")
        torch.save(d.labels.detach().contiguous().clone(), tmp / "labels.pt")
        if d.lr is not None:
            torch.save(torch.tensor(float(d.lr)), tmp / "lr.pt")
        info = {"dataset": d.meta.get("dataset"), "ipc": d.ipc, "num_images": len(d),
                "labels": "soft logits (N, K)" if d.soft else "hard class indices (N,)",
                "images": "normalised: (pixels - mean) / std per channel" + (", then ZCA-whitened" if
                                                                              d.meta.get("zca") else ""),
                "mean": d.meta.get("mean"), "std": d.meta.get("std"), "zca": bool(d.meta.get("zca", False)),
                "lr": d.lr, "from": str(Path(run).resolve()),
                "use": "images=torch.load('images.pt'); labels=torch.load('labels.pt'); evaluator.compute_metrics("
                       "image_tensor=images, hard_labels=labels or soft_labels=labels, syn_lr=lr)"}
        (tmp / "ddranking.json").write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# -- command line: easydd import ---------------------------------------------------------------------------------

def _floats(values, name):
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise UserError(f"{name} takes numbers, one per channel") from None


def add_arguments(p) -> None:
    p.description = ("Turn a set saved by the reference code (DC/DSA/DM res_*.pt, MTT/FTD/DATM images_best.pt, "
                     "DD-Ranking images.pt + labels.pt) into an easydd run directory that eval, difficulty and "
                     "report take. Files are read with torch.load(weights_only=True) only.")
    p.add_argument("path", help="the saved file or its folder")
    p.add_argument("--format", default=None, help=f"{' | '.join(FORMATS)} (default: from the file names)")
    p.add_argument("--dataset", required=True, help="the dataset the set was distilled from (name or path)")
    p.add_argument("--ipc-index", default=None, help="DC/DSA/DM: which experiment of the file's 'data' list "
                                                     "(default 0)")
    p.add_argument("--out", default=None, help="the run directory to create (default runs/imported/<name>)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--pixels", action="store_true", help="the images are [0, 1] pixels, not normalised")
    p.add_argument("--source-mean", nargs="+", default=None, help="the per-channel mean the images were "
                                                                  "normalised with (default: the dataset's)")
    p.add_argument("--source-std", nargs="+", default=None, help="the per-channel std (default: the dataset's)")
    p.add_argument("--zca", action="store_true", help="the images are ZCA-whitened (MTT on CIFAR)")


def run_from_args(a) -> int:
    if a.format is not None and a.format not in FORMATS:
        raise UserError(f"unknown --format {a.format!r}; one of {', '.join(FORMATS)}")
    index = None
    if a.ipc_index is not None:
        try:
            index = int(a.ipc_index)
        except ValueError:
            raise UserError(f"--ipc-index takes a whole number (got {a.ipc_index!r})") from None
    run_dir, d = import_set(a.path, a.format, a.dataset, out=a.out, ipc_index=index, data_root=a.data_root,
                            source_mean=_floats(a.source_mean, "--source-mean"),
                            source_std=_floats(a.source_std, "--source-std"), pixels=a.pixels, zca=a.zca)
    src = d.meta["imported"]
    print(f"imported {len(d)} images ({src['format']}, {src['label_kind']} labels, ipc {d.ipc}"
          + (f", lr {d.lr:g}" if d.lr is not None else "") + f"; {src['space']}) -> {run_dir}")
    print(f"next: easydd eval {run_dir}   |   easydd difficulty {run_dir}")
    return 0


__all__ = ["FORMATS", "detect_format", "safe_load", "read_set", "import_set", "write_run", "export_ddranking",
           "convert"]
