"""Reading a buffer of expert trajectories (written by ``easydd.experts``): the on-disk format, the manifest
check, and ``ExpertBuffer``, which opens one expert file at a time and reads only the epochs asked for."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .errors import UserError
from .io import file_sha256 as _sha256

FORMAT = "easydd-experts-1"
MANIFEST = "manifest.json"


def expert_file(i: int) -> str:
    return f"expert_{i:04d}.safetensors"


def _read_header(path: Path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta["easydd_expert"])


class ExpertBuffer:
    """A directory of expert trajectories, read one file (and only the epochs asked for) at a time."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = Path(path)
        man = self.path / MANIFEST
        if not man.exists():
            partial = sorted(self.path.glob("expert_*.safetensors")) if self.path.is_dir() else []
            what = (f"{len(partial)} expert files but no {MANIFEST}: the run that made them did not finish"
                    if partial else "no expert buffer")
            raise UserError(f"{self.path}: {what}. Create or complete it with `easydd experts --dataset D "
                            f"--num-experts N --epochs E --out {self.path}` (the same command resumes)")
        try:
            self.manifest = json.loads(man.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{man} is corrupt; rerun `easydd experts ... --out {self.path}` to rewrite it") from None
        if self.manifest.get("format") != FORMAT:
            raise UserError(f"{man} is not an easydd expert manifest (format {self.manifest.get('format')!r})")
        self.settings = self.manifest["settings"]
        self.files = [self.path / e["file"] for e in self.manifest["experts"]]
        self._sha = [e["sha256"] for e in self.manifest["experts"]]
        self.verify = verify
        self._verified: set[int] = set()
        self.names = list(self.settings["param_names"])
        self.shapes = [tuple(s) for s in self.settings["param_shapes"]]
        self.numels = [int(torch.Size(s).numel()) for s in self.shapes]

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"ExpertBuffer({str(self.path)!r}, experts={len(self)}, epochs={self.epochs}, "
                f"dataset={self.settings['dataset']!r}, model={self.settings['model']!r}, zca={self.zca}, "
                f"sam_rho={self.settings['sam_rho']})")

    @property
    def epochs(self) -> int:
        return int(self.settings["epochs"])

    @property
    def zca(self) -> bool:
        return bool(self.settings["zca"])

    @property
    def model(self) -> str:
        return self.settings["model"]

    @property
    def num_params(self) -> int:
        return int(self.settings["num_params"])

    def check(self, dataset, model: str | None = None) -> None:
        """Refuse (with the fix in the message) a buffer made for another dataset, model or whitening."""
        s = self.settings
        if s["dataset"] != dataset.name:
            raise UserError(f"the experts in {self.path} were trained on {s['dataset']!r}, not {dataset.name!r}; "
                            "point buffer= at experts of this dataset")
        uses_zca = getattr(dataset, "zca", None) is not None
        if bool(s["zca"]) != uses_zca:
            raise UserError(f"the experts in {self.path} were trained {'with' if s['zca'] else 'without'} ZCA "
                            f"whitening but the dataset is loaded {'with' if uses_zca else 'without'} it; set "
                            f"zca={str(bool(s['zca'])).lower()} (or make new experts)")
        if list(s["im_size"]) != list(dataset.shape[1:]) or int(s["channel"]) != dataset.shape[0] or \
                int(s["num_classes"]) != dataset.num_classes:
            raise UserError(f"the experts in {self.path} expect {s['channel']}x{s['im_size']} images and "
                            f"{s['num_classes']} classes, the dataset has {tuple(dataset.shape)} and "
                            f"{dataset.num_classes}")
        if model is not None and model != s["model"]:
            raise UserError(f"the experts in {self.path} are {s['model']} networks, the run uses model={model}; "
                            f"set model={s['model']} (the student must have the experts' architecture)")

    def _file(self, i: int) -> Path:
        if not 0 <= i < len(self):
            raise IndexError(f"expert {i} out of range 0..{len(self) - 1}")
        f = self.files[i]
        if self.verify and i not in self._verified:
            if not f.exists():
                raise UserError(f"{f} is missing; rerun `easydd experts ... --out {self.path}` to recreate it")
            if _sha256(f) != self._sha[i]:
                raise UserError(f"{f} does not match its checksum in {MANIFEST} (corrupt or replaced); delete it "
                                f"and rerun `easydd experts ... --out {self.path}` to train it again")
            self._verified.add(i)
        return f

    def params(self, i: int, epochs, device="cpu") -> torch.Tensor:
        """Flat parameters of expert ``i`` at one epoch (int: (P,)) or several (list: (len, P)); -1 = last."""
        from safetensors import safe_open
        single = isinstance(epochs, int)
        eps = [epochs] if single else list(epochs)
        eps = [self.epochs + 1 + e if e < 0 else e for e in eps]
        bad = [e for e in eps if not 0 <= e <= self.epochs]
        if bad:
            raise UserError(f"expert epoch {bad[0]} out of range: the experts in {self.path} have epochs "
                            f"0..{self.epochs}")
        with safe_open(str(self._file(i)), framework="pt") as f:
            sl = f.get_slice("trajectory")
            rows = [sl[e:e + 1] for e in eps]
        out = torch.cat(rows).to(device)
        return out[0] if single else out

    def get(self, i: int, start_epoch: int, expert_epochs: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(start, target) flat parameters: expert ``i`` at ``start_epoch`` and ``start_epoch + expert_epochs``."""
        both = self.params(i, [start_epoch, start_epoch + expert_epochs], device)
        return both[0].clone(), both[1].clone()

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.numels), self.shapes)}

    def record(self, i: int) -> dict:
        """The header record of expert ``i`` (settings, train losses, validation accuracy, seconds)."""
        return _read_header(self._file(i))
