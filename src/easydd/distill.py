"""The shared distillation driver: one loop for every method.

It initialises the synthetic set, calls ``method.step(it)``, logs the matching loss and the SDC term, tracks the
synthetic set's mean GraDN against a fixed reference panel, checkpoints atomically (a killed run resumes where it
stopped, with identical results), validates on the VALIDATION split and keeps the best set, and finally runs the
full evaluation protocol on the test set. Everything lands in ``runs/<name>/`` (DESIGN section 5).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from .config import RunConfig
from .distilled import Distilled, atomic_write
from .errors import UserError
from .evaluate import evaluate_distilled, format_result
from .methods import get_method
from .methods.selection import check_ipc
from .nets import build_network
from .runtime import PeakMemory, resolve_device


class DivergedError(UserError):
    """The matching loss or the learned step size became NaN/inf or exploded."""


def default_run_name(cfg: RunConfig) -> str:
    sdc = f"-sdc{cfg.lambda_sdc:g}" + ("s" if cfg.sdc_mode == "sample" else "") if cfg.lambda_sdc > 0 else ""
    from .data.custom import custom_name, is_custom
    ds = custom_name(cfg.dataset) if is_custom(cfg.dataset) else cfg.dataset  # a path -> its safe stem
    return f"{cfg.method}-{ds}-ipc{cfg.ipc}{sdc}-s{cfg.seed}"


def prepare_run_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to the output directory {path} ({e.strerror}); choose another with "
                        "--out DIR or out_dir=DIR") from None
    return path


class RunLog:
    def __init__(self, run_dir: Path):
        self.path = run_dir / "log.txt"

    def __call__(self, msg: str) -> None:
        with open(self.path, "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")


@dataclass
class RunResult:
    run_dir: Path
    distilled: Distilled
    metrics: dict = field(default_factory=dict)


def _write_curves(run_dir: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "iteration", k))

    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    atomic_write(run_dir / "curves.csv", write_csv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [k for k in ("loss", "sdc", "gradn", "val_acc", "syn_lr") if any(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
    for ax, k in zip(axes[0], panels):
        pts = [(r["iteration"], r[k]) for r in rows if k in r and r[k] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
        ax.set_title({"gradn": "synthetic mean GraDN", "sdc": "SDC term R"}.get(k, k), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    fig.tight_layout()
    atomic_write(run_dir / "curves.png", lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def _save_checkpoint(run_dir: Path, method, it: int, rows: list[dict], best: dict) -> None:
    state = {"iteration": it, "method": method.state_dict(), "rows": rows, "best": best}
    atomic_write(run_dir / "checkpoint.pt", lambda tmp: torch.save(state, tmp))


def distill(cfg: RunConfig, dataset=None, *, progress: bool = True, resume: bool = True,
            final_eval: bool = True, panel=None) -> RunResult:
    """Run ``cfg`` end to end and return the run directory, the final set and the metrics."""
    from .data import load_dataset
    t_start = time.perf_counter()
    method_cls = get_method(cfg.method)
    device = resolve_device(cfg.device)  # a device this machine lacks fails before any data is read
    if dataset is None:
        dataset = load_dataset(cfg.dataset, cfg.data_root, zca=cfg.zca, seed=0, val_size=cfg.val_size)
    check_ipc(dataset, cfg.ipc)
    for m in dict.fromkeys([cfg.model, *cfg.eval_models]):  # fail now, not after an hour of distillation
        build_network(m, dataset.shape[0], dataset.num_classes, tuple(dataset.shape[1:]))
    run_dir = prepare_run_dir(Path(cfg.out_dir) / (cfg.name or default_run_name(cfg)))
    log = RunLog(run_dir)
    atomic_write(run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(cfg.to_dict(),
                                                                                            sort_keys=False)))
    method = method_cls(cfg, dataset, device=device)
    method.init_synthetic()
    method.setup()
    rows: list[dict] = []
    best = {"val_acc": -1.0, "iteration": None}
    start = 0
    ckpt = run_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        try:
            state = torch.load(ckpt, weights_only=True, map_location="cpu")
            method.load_state_dict(state["method"])
            start, rows, best = state["iteration"], state["rows"], state["best"]
            log(f"resumed from iteration {start}")
        except Exception as e:  # a corrupt checkpoint must not be silently used
            raise UserError(f"cannot resume from {ckpt} ({type(e).__name__}: {e}); delete it to start over, or "
                            "pass --no-resume") from None
    else:
        log(f"start {cfg.method} on {cfg.dataset} ipc={cfg.ipc} seed={cfg.seed} lambda_sdc={cfg.lambda_sdc} "
            f"device={device}")
    if cfg.track_every and panel is None:
        from .difficulty import reference_panel
        panel = reference_panel(dataset, model="ConvNet", num_models=cfg.panel_models, epochs=cfg.panel_epochs,
                                device=device)
    elif panel is not None and panel.device != device:
        panel = panel.to(device)

    def track(it: int, row: dict) -> None:
        d = method.distilled()
        row["gradn"] = float(panel.gradn(d.images, d.labels).mean())

    def validate(it: int, row: dict) -> None:
        d = method.distilled()
        r = evaluate_distilled(d, dataset, models=[cfg.model], num_models=cfg.val_num_models,
                               epochs=cfg.val_epochs, dsa=cfg.eval_dsa, split="val", seed=cfg.seed, progress=False,
                               device=device)
        acc = r["models"][cfg.model]["mean"]
        row["val_acc"] = acc
        if acc > best["val_acc"]:
            best.update(val_acc=acc, iteration=it)
            d.save(run_dir / "best.safetensors")

    if start == 0 and cfg.track_every:
        row0 = {"iteration": 0}
        track(0, row0)
        rows.append(row0)
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not progress,
               desc=f"{cfg.method} ipc{cfg.ipc}", dynamic_ncols=True)
    it = start
    try:
        for it in bar:
            logs = method.step(it)
            bad = [k for k, v in logs.items() if v is not None and not math.isfinite(v)]
            if bad or logs.get("syn_lr", 0.0) > 1e3:
                raise DivergedError(
                    f"{cfg.method} diverged at iteration {it} ({', '.join(f'{k}={logs[k]}' for k in logs)}); the "
                    f"last good checkpoint is kept in {ckpt}. Lower the image/label/step-size learning rates "
                    "(e.g. lr_img, lr_lr) or lambda_sdc and rerun with --no-resume.")
            row = {"iteration": it + 1, **logs}
            if cfg.track_every and (it + 1) % cfg.track_every == 0:
                track(it + 1, row)
            if cfg.eval_every and (it + 1) % cfg.eval_every == 0:
                validate(it + 1, row)
            rows.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "iteration" and v is not None})
            if cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0:
                _save_checkpoint(run_dir, method, it + 1, rows, best)
                _write_curves(run_dir, rows)
    except KeyboardInterrupt:
        log(f"interrupted at iteration {it}; checkpoint kept")
        raise
    except DivergedError as e:
        log(str(e))
        _write_curves(run_dir, rows)
        raise
    bar.close()
    distilled = method.distilled()
    distilled.meta["iterations"] = cfg.iterations
    distilled.save(run_dir / "distilled.safetensors")
    for k, v in method.extra_tensors().items():  # e.g. FTD's EMA set, saved as a set of its own
        Distilled(v.detach().cpu(), distilled.labels, distilled.lr, dict(distilled.meta, variant=k)).save(
            run_dir / f"distilled_{k}.safetensors")
    distilled.save_grid(run_dir / "grid.png", dataset)
    _write_curves(run_dir, rows)
    _save_checkpoint(run_dir, method, cfg.iterations, rows, best)
    distill_seconds = time.perf_counter() - t_start
    metrics = {"config": cfg.to_dict(), "device": str(device), "distill_seconds": distill_seconds,
               "peak_rss_mib": PeakMemory.rss_mib(), "best_val": best, "last": {}}
    if rows and "gradn" in rows[-1]:
        metrics["final_gradn"] = rows[-1]["gradn"]
        metrics["initial_gradn"] = rows[0].get("gradn")
    if final_eval:
        res = evaluate_distilled(distilled, dataset, models=cfg.eval_models, num_models=cfg.eval_num_models,
                                 epochs=cfg.eval_epochs, dsa=cfg.eval_dsa, seed=cfg.seed, progress=progress,
                                 device=device)
        metrics["last"] = res
        log("final evaluation (last set, test split):\n" + format_result(res))
        for k in method.extra_tensors():
            d = Distilled.load(run_dir / f"distilled_{k}.safetensors")
            metrics[f"last_{k}"] = evaluate_distilled(d, dataset, models=cfg.eval_models,
                                                      num_models=cfg.eval_num_models, epochs=cfg.eval_epochs,
                                                      dsa=cfg.eval_dsa, seed=cfg.seed, progress=progress,
                                                      device=device)
        if best["iteration"] is not None:
            metrics["best_on_val"] = evaluate_distilled(Distilled.load(run_dir / "best.safetensors"), dataset,
                                                        models=cfg.eval_models, num_models=cfg.eval_num_models,
                                                        epochs=cfg.eval_epochs, dsa=cfg.eval_dsa, seed=cfg.seed,
                                                        progress=progress, device=device)
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["peak_rss_mib"] = PeakMemory.rss_mib()
    atomic_write(run_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2,
                                                                                       default=str)))
    log(f"done in {metrics['total_seconds']:.0f} s")
    return RunResult(run_dir, distilled, metrics)
