"""``easydd difficulty TARGET``: GraDN and EL2N of a distilled set or a dataset split on the reference panel.

The command's arguments and glue; the scores and the panel are the library's (``easydd.difficulty``), the
histograms ``easydd.difficulty_plots``. Prints a summary and writes difficulty.csv / .png / .json.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..difficulty import _slug, reference_panel, summarise
from ..errors import UserError
from ..runtime import derive_seed, generator


def add_arguments(parser) -> None:
    """Arguments of ``easydd difficulty TARGET``."""
    parser.add_argument("target", metavar="TARGET",
                        help="a run directory, a distilled .safetensors file, or a dataset: a name (e.g. mnist), "
                             "an .npz file or an image folder")
    parser.add_argument("--model", default="ConvNet", help="architecture of the reference panel (default ConvNet)")
    parser.add_argument("--num-models", "--panel-models", type=int, default=4, help="networks (seeds) in the panel (default 4)")
    parser.add_argument("--epochs", "--panel-epochs", type=int, default=1,
                        help="training epochs of the panel networks (default 1)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=None, metavar="EPOCH",
                        help="epochs at which panel members are kept (default: the last; e.g. 0 1 adds the "
                             "initialisation)")
    parser.add_argument("--split", choices=("train", "val", "test", "distilled"), default=None,
                        help="what to measure (default: 'distilled' for a distilled set, 'train' for a dataset)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="measure at most N samples (a seeded random choice; default 2000 for real data, all "
                             "of a distilled set)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: the run directory, or runs/difficulty-<dataset>)")
    parser.add_argument("--seed", type=int, default=0, help="panel seed (also picks the measured subsample)")
    parser.add_argument("--dataset", default=None,
                        help="dataset of a distilled set whose metadata does not name it")
    parser.add_argument("--cache-dir", default=None, help="where reference panels are cached "
                                                          "(default $EASYDD_CACHE/panels or ~/.cache/easydd/panels)")
    parser.add_argument("--panel-subset", type=int, default=10000,
                        help="training images used to train the panel (default 10000; 0 = all)")


def _load_dataset(name: str, zca: bool = False):
    """easydd.data.load_dataset with user errors turned into UserError (tests replace this function)."""
    try:
        from ..data import load_dataset
    except ImportError as e:  # pragma: no cover
        raise UserError(f"cannot load datasets: easydd.data is unavailable ({e})") from None
    try:
        return load_dataset(name, zca=zca)
    except UserError:  # DataError and every other user error: its message already names the fix
        raise
    except (KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise UserError(f"cannot load dataset {name!r}: {msg}") from None


def _is_user_dataset(p: Path) -> bool:
    """An .npz file, or a folder with train/ and no distilled set in it (easydd.data.custom's two formats)."""
    if p.is_file():
        return p.suffix.lower() == ".npz"
    return p.is_dir() and (p / "train").is_dir() and not any(
        (p / f).exists() for f in ("distilled.safetensors", "best.safetensors"))


def _resolve_target(target: str):
    """(distilled or None, path or None, dataset name or None)."""
    p = Path(target).expanduser()
    if _is_user_dataset(p):  # your own .npz or image folder: measured as a dataset, like a built-in name
        return None, None, target
    if p.exists():
        from ..distilled import Distilled
        return Distilled.load(p), p, None  # a DistilledFileError is a UserError naming the fix
    if target.endswith(".safetensors") or os.sep in target or target.startswith("."):
        raise UserError(f"no such file or directory: {target}; pass a run directory, a distilled .safetensors "
                        "file, or a dataset name such as mnist")
    return None, None, target


def _subsample(n: int, max_samples: int | None, seed: int) -> torch.Tensor:
    if max_samples is None or max_samples <= 0 or max_samples >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator(derive_seed(seed, "difficulty-sample")))[:max_samples].sort().values


def _write_csv(path: Path, index: torch.Tensor, labels: torch.Tensor, gradn: torch.Tensor, el2n: torch.Tensor):
    from ..io import atomic_write
    labels = labels.argmax(1) if labels.dim() == 2 else labels
    lines = ["index,label,gradn,el2n"]
    for i, c, g, e in zip(index.tolist(), labels.tolist(), gradn.tolist(), el2n.tolist()):
        lines.append(f"{i},{c},{g:.6g},{e:.6g}")
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def _format_summary(label: str, s: dict) -> str:
    lines = [f"{label}: {s['n']} samples"]
    for key, name in (("gradn", "GraDN"), ("el2n", "EL2N")):
        d = s[key]
        if d:
            lines.append(f"  {name:5s} mean {d['mean']:.4g}  median {d['median']:.4g}  quartiles "
                         f"[{d['q1']:.4g}, {d['q3']:.4g}]  range [{d['min']:.4g}, {d['max']:.4g}]")
    lines.append("  per class (n, GraDN, EL2N): " + "; ".join(
        f"{c}: {v['n']}, {v['gradn']:.4g}, {v['el2n']:.4g}" for c, v in s["per_class"].items()))
    return "\n".join(lines)


def run_from_args(args) -> int:
    """``easydd difficulty``: measure GraDN and EL2N of a distilled set or a dataset split on the reference panel,
    print a summary, write difficulty.csv/.png/.json. Returns the exit code (0)."""
    measure_from_args(args)
    return 0


def _check_args(args, distilled, split: str) -> None:
    if distilled is None and split == "distilled":
        raise UserError(f"{args.target!r} is a dataset name: --split distilled needs a run directory or a "
                        "distilled .safetensors file; use --split train, val or test")
    if int(args.num_models) < 1 or int(args.epochs) < 0:
        raise UserError("--num-models must be >= 1 and --epochs >= 0")
    if args.max_samples is not None and int(args.max_samples) < 1:
        raise UserError(f"--max-samples must be >= 1 (got {args.max_samples}); leave it out for the default")


def _dataset_for(args, distilled, path, ds_name):
    """The dataset to measure against: the one named, or the one a distilled set was made from (checked to fit)."""
    if distilled is not None:
        ds_name = getattr(args, "dataset", None) or distilled.meta.get("dataset")
        if not ds_name:
            raise UserError(f"{path} does not say which dataset it was distilled from; pass --dataset NAME")
    ds = _load_dataset(ds_name, zca=bool(distilled.meta.get("zca", False)) if distilled is not None else False)
    if distilled is not None:
        if tuple(distilled.images.shape[1:]) != tuple(ds.shape):
            raise UserError(f"distilled images have shape {tuple(distilled.images.shape[1:])} but {ds.name} "
                            f"images are {tuple(ds.shape)}; pass the right --dataset")
        if distilled.soft and distilled.labels.shape[1] != ds.num_classes:
            raise UserError(f"the distilled set has {distilled.labels.shape[1]} classes, {ds.name} "
                            f"{ds.num_classes}; pass the right --dataset")
    return ds


def _real_split(ds, name: str, cap: int | None, seed: int):
    """(indices, images, labels) of a seeded subsample of at most ``cap`` samples of one of the dataset's splits."""
    x, y = {"train": (ds.x_train, ds.y_train), "val": (ds.x_val, ds.y_val), "test": (ds.x_test, ds.y_test)}[name]
    if x.shape[0] == 0:
        raise UserError(f"{ds.name} has no {name} split; choose another --split")
    idx = _subsample(x.shape[0], cap, seed)
    return idx, x[idx], y[idx]


def _out_dir(args, path, ds, split: str) -> Path:
    if args.out:
        return Path(args.out)
    if path is not None:
        return path if path.is_dir() else path.parent
    return Path("runs") / (f"difficulty-{_slug(ds.name)}" + ("" if split == "train" else f"-{split}"))


def measure_from_args(args) -> dict:
    """The work of :func:`run_from_args`; returns the summary (also written to difficulty.json)."""
    distilled, path, ds_name = _resolve_target(args.target)
    split = args.split or ("distilled" if distilled is not None else "train")
    seed = int(getattr(args, "seed", 0) or 0)
    _check_args(args, distilled, split)
    ds = _dataset_for(args, distilled, path, ds_name)

    log = print
    panel_subset = getattr(args, "panel_subset", 10000)
    panel = reference_panel(ds, model=args.model, num_models=args.num_models, epochs=args.epochs, seed=seed,
                            cache_dir=getattr(args, "cache_dir", None), checkpoints=getattr(args, "checkpoints", None),
                            subset=None if not panel_subset else panel_subset, log=log)
    log(f"panel: {panel}")

    max_samples = args.max_samples
    if split == "distilled":
        idx = _subsample(len(distilled), max_samples, seed)
        x, y = distilled.images[idx].float(), distilled.labels[idx]
        what = f"distilled set {path}"
    else:
        idx, x, y = _real_split(ds, split, max_samples if max_samples is not None else 2000, seed)
        what = f"{ds.name} {split} split"

    gradn, el2n = panel.gradn(x, y), panel.el2n(x, y)
    summary = {"target": str(args.target), "dataset": ds.name, "split": split, "panel": panel.manifest()["meta"],
               "panel_members": len(panel), "scores": summarise(gradn, el2n, y)}
    log(_format_summary(what, summary["scores"]))
    series = {split: (gradn, el2n)}
    if split == "distilled":  # the real data for comparison
        ridx, rx, ry = _real_split(ds, "train", max_samples if max_samples is not None else 1000, seed)
        rg, re_ = panel.gradn(rx, ry), panel.el2n(rx, ry)
        summary["real_train"] = summarise(rg, re_, ry)
        log(_format_summary(f"{ds.name} train split (for comparison)", summary["real_train"]))
        series["real train"] = (rg, re_)

    out = _out_dir(args, path, ds, split)
    # a real split measured beside a distilled set must not overwrite the distilled set's files
    stem = "difficulty" if (split == "distilled" or distilled is None) else f"difficulty-{split}"
    _write_outputs(out, stem, idx, y, gradn, el2n, summary, series,
                   f"difficulty of the {what} on {len(panel)} {panel.model} panel networks")
    log(f"wrote {out / (stem + '.csv')}, {out / (stem + '.png')}, {out / (stem + '.json')}")
    summary["out"] = str(out)
    return summary


def _write_outputs(out: Path, stem: str, idx, y, gradn, el2n, summary: dict, series: dict, title: str) -> None:
    from ..difficulty_plots import plot_score_histograms
    from ..io import atomic_write
    _write_csv(out / f"{stem}.csv", idx, y, gradn, el2n)
    plot_score_histograms(out / f"{stem}.png", title, series)
    atomic_write(out / f"{stem}.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str)))
