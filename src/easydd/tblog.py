"""``logger=tensorboard``: the run's curves and synthetic images as TensorBoard events, beside curves.csv.

The same scalars as curves.csv (matching loss, SDC term, rho, lambda, panel GraDN, validation accuracy, learned
lr: whatever the row holds), under ``curves/<name>``, and the synthetic set as an image grid (un-normalised, one
image per sample) every ``log_images_every`` iterations and at the end. The CSV/PNG files are written as always.
TensorBoard is an optional dependency: ``pip install easydd[tensorboard]``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import UserError

LOGGERS = ("csv", "tensorboard")
INSTALL = "pip install easydd[tensorboard]"


def check_available(logger: str) -> None:
    if logger == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise UserError(f"logger=tensorboard needs the tensorboard package, which is not installed; run "
                        f"`{INSTALL}` (or `pip install tensorboard`), or drop logger=tensorboard for the CSV/PNG")


class TensorBoardLog:
    def __init__(self, run_dir: Path, dataset, images_every: int, start: int = 0):
        check_available("tensorboard")
        from torch.utils.tensorboard import SummaryWriter
        # purge_step: a resumed run drops the events a killed run wrote past its checkpoint
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=start if start > 0 else None, flush_secs=10)
        self.dataset, self.every = dataset, images_every

    def log(self, it: int, row: dict, method) -> None:
        for k, v in row.items():
            if k != "iteration" and v is not None:
                self.writer.add_scalar(f"curves/{k}", float(v), it)
        if self.every and it % self.every == 0:
            self.images(it, method)

    def images(self, it: int, method) -> None:
        d = method.distilled()
        x = d.images.detach().cpu().float()
        x = self.dataset.denormalise(x) if self.dataset is not None else x.clamp(0, 1)
        order = d.hard_labels.argsort(stable=True)  # class by class
        self.writer.add_images("synthetic", x[order], it, dataformats="NCHW")

    def close(self, it: int, method) -> None:
        self.images(it, method)
        self.writer.close()


def open_logger(cfg, run_dir: Path, dataset, start: int):
    """The run's extra logger (None for the CSV/PNG default)."""
    if getattr(cfg, "logger", "csv") != "tensorboard":
        return None
    return TensorBoardLog(run_dir, dataset, cfg.log_images_every, start)
