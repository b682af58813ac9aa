"""The shared distillation driver: one loop for every method.

It initialises the synthetic set, calls ``method.step(it)``, logs the matching loss and the SDC term, tracks the
synthetic set's mean GraDN against a fixed reference panel, checkpoints atomically (a killed run resumes where it
stopped, with identical results), validates on the VALIDATION split and keeps the best set, and finally runs the
full evaluation protocol on the test set. Everything lands in ``runs/<name>/`` (README, "Using it", lists the files).
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from .config import RunConfig
from .distilled import Distilled, atomic_write
from .errors import DivergedError, UserError, divergence_advice
from .evaluate import check_eval_settings, evaluate_distilled, format_result
from .fastpass import check_precision, passes_for
from .io import RunLock
from .methods import get_method
from .methods.selection import check_ipc
from .nets import build_network
from .runtime import PeakMemory, resolve_device


def default_run_name(cfg: RunConfig) -> str:
    if cfg.lambda_sdc > 0 or cfg.sdc_ratio > 0:
        sdc = f"-sdc{cfg.lambda_sdc:g}" if cfg.lambda_sdc > 0 else f"-sdcr{cfg.sdc_ratio:g}"
        sdc += ("s" if cfg.sdc_mode == "sample" else "") + ("f" if cfg.sdc_net == "fresh" else "")
    else:
        sdc = ""
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
        from .io import USER_WRITE_ERRNOS, write_failed
        try:
            with open(self.path, "a") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
        except OSError as e:  # a full disk: one line naming the fix, not a traceback
            if e.errno in USER_WRITE_ERRNOS:
                raise write_failed(self.path, e, self.path.exists()) from None
            raise


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
    from .plots import subplots
    panels = [k for k in ("loss", "sdc", "rho", "gradn", "val_acc", "syn_lr") if any(k in r for r in rows)]
    fig, axes = subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
    for ax, k in zip(axes[0], panels):
        pts = [(r["iteration"], r[k]) for r in rows if k in r and r[k] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
        ax.set_title({"gradn": "synthetic mean GraDN (panel)", "sdc": "SDC term R",
                      "rho": "rho = |d lambda R| / |d L_match|"}.get(k, k), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    fig.tight_layout()
    atomic_write(run_dir / "curves.png", lambda tmp: fig.savefig(tmp, dpi=90, format="png"))


# settings that do not change the distilled set: a resumed run may differ in these
RESUMABLE_CHANGES = {"eval_models", "eval_num_models", "eval_epochs", "eval_aug", "eval_precision", "eval_compile",
                     "device", "name", "out_dir",
                     "eval_dsa",  # eval_aug's older form, in checkpoints made before it
                     "checkpoint_every", "track_every", "panel_models", "panel_epochs", "note", "iterations",
                     "logger", "log_images_every",
                     "eval_every", "val_epochs", "val_num_models"}


# after a divergence, the fixes the message names may change too
AFTER_DIVERGENCE = {"lambda_sdc", "sdc_ratio", "method_args.lr_img", "method_args.lr_lr", "method_args.lr_y",
                    "method_args.lr_teacher", "method_args.lr_net", "method_args.syn_steps"}


def _flat(d: dict) -> dict:
    out = {k: v for k, v in d.items() if k != "method_args"}
    out.update({f"method_args.{k}": v for k, v in (d.get("method_args") or {}).items()})
    return out


def _check_resumable(saved: dict | None, cfg: RunConfig, ckpt: Path, diverged: bool) -> None:
    """A checkpoint is resumed only under the settings that made it (more iterations are allowed; after a
    divergence, lowered learning rates and SDC weights too)."""
    if saved is None:
        return
    saved, now = _flat(saved), _flat(cfg.to_dict())
    allowed = RESUMABLE_CHANGES | (AFTER_DIVERGENCE if diverged else set())
    diff = sorted(k for k in set(saved) | set(now) if k not in allowed and saved.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:4])
        raise UserError(f"{ckpt} was made with other settings ({shown}); give this run another name (name=... or "
                        "--name) or start over with --no-resume")


DIVERGED = ".diverged"   # marks a run stopped by a divergence: its rerun may change the rates


def _save_checkpoint(run_dir: Path, method, it: int, rows: list[dict], best: dict, cfg: RunConfig) -> None:
    state = {"iteration": it, "method": method.state_dict(), "rows": rows, "best": best,
             "config_json": json.dumps(cfg.to_dict(), sort_keys=True, default=str)}
    atomic_write(run_dir / "checkpoint.pt", lambda tmp: torch.save(state, tmp))


def distill(cfg: RunConfig, dataset=None, *, progress: bool = True, resume: bool = True,
            final_eval: bool = True, panel=None) -> RunResult:
    """Run ``cfg`` end to end and return the run directory, the final set and the metrics."""
    from .config import validate
    from .data import load_dataset
    t_start = time.perf_counter()
    validate(cfg)  # a RunConfig built by hand gets the checks make_config gives
    method_cls = get_method(cfg.method)
    device = resolve_device(cfg.device)  # a device this machine lacks fails before any data is read
    if dataset is None:
        dataset = load_dataset(cfg.dataset, cfg.data_root, zca=cfg.zca, seed=0, val_size=cfg.val_size)
    check_ipc(dataset, cfg.ipc)
    for m in dict.fromkeys([cfg.model, *cfg.eval_models]):  # fail now, not after an hour of distillation
        build_network(m, dataset.shape[0], dataset.num_classes, tuple(dataset.shape[1:]))
    if final_eval:
        check_eval_settings(cfg.eval_models, cfg.eval_num_models, cfg.eval_epochs)
    check_precision(cfg.eval_precision, device)  # bf16 without native units: refused now, not at the end
    if cfg.eval_every and dataset.x_val.shape[0] == 0:  # found now, not at the first validation
        raise UserError(f"eval_every={cfg.eval_every} validates on the validation split, but it is empty "
                        f"(val_size={cfg.val_size}); set val_size > 0 or eval_every=0")
    method = method_cls(cfg, dataset, device=device)  # the method's own checks (buffers, ...) before any write
    method.init_synthetic()
    method.setup()
    run_dir = prepare_run_dir(Path(cfg.out_dir) / (cfg.name or default_run_name(cfg)))
    with RunLock(run_dir) as lock, _sigterm_as_interrupt():  # one live process per run directory
        if lock.took_over:
            RunLog(run_dir)(f"took over the lock of process {lock.took_over.get('pid')} on "
                            f"{lock.took_over.get('host')}, which is gone")
        return _distill_in(run_dir, cfg, dataset, method, device, t_start, progress=progress, resume=resume,
                           final_eval=final_eval, panel=panel)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job) ends the run like Ctrl-C: logged, temporary files removed, the last
    checkpoint kept. The previous handler is restored afterwards (only the main thread can install one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def load_checkpoint(ckpt: Path) -> tuple[dict, dict | None, int]:
    """(state, the config it was made with or None, its iteration) of a checkpoint, or a UserError naming the fix.
    ``torch.load(weights_only=True)``: a file that carries code is refused, never run."""
    def bad(why: str) -> UserError:
        return UserError(f"cannot resume from {ckpt} ({why}); delete it to start over, or pass --no-resume")
    try:
        state = torch.load(ckpt, weights_only=True, map_location="cpu")
    except Exception as e:  # truncated, not a checkpoint, or a pickle that wants to run code
        raise bad(f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(state, dict) or not isinstance(state.get("method"), dict):
        raise bad("not an easydd checkpoint")
    it = state.get("iteration")
    if not isinstance(it, int) or isinstance(it, bool) or it < 0:
        raise bad(f"its iteration {it!r} is not a count >= 0")
    saved = None
    if "config_json" in state:
        try:
            saved = json.loads(state["config_json"])
        except (TypeError, ValueError) as e:
            raise bad(f"its stored config is unreadable: {e}") from None
        if not isinstance(saved, dict):
            raise bad("its stored config is not a mapping")
    if not isinstance(state.get("rows", []), list) or not isinstance(state.get("best", {}), dict):
        raise bad("its logs are malformed")
    return state, saved, it


def _final_evaluation(cfg: RunConfig, dataset, run_dir: Path, distilled: Distilled, method, best: dict,
                      progress: bool, device, log) -> dict:
    """The test-split evaluation of the last set, of each extra set a method saves (``last_<name>``) and of the
    set chosen on validation (``best_on_val``), all under the run's one evaluation protocol."""
    def ev(d: Distilled) -> dict:
        return evaluate_distilled(d, dataset, models=cfg.eval_models, num_models=cfg.eval_num_models,
                                  epochs=cfg.eval_epochs, aug=cfg.eval_aug, seed=cfg.seed, progress=progress,
                                  device=device, passes=passes)
    passes = passes_for(cfg.eval_precision, cfg.eval_compile, device)
    out = {"last": ev(distilled)}
    log("final evaluation (last set, test split):\n" + format_result(out["last"]))
    for k in method.extra_tensors():
        out[f"last_{k}"] = ev(Distilled.load(run_dir / f"distilled_{k}.safetensors"))
    if best["iteration"] is not None:
        out["best_on_val"] = ev(Distilled.load(run_dir / "best.safetensors"))
    return out


def _distill_in(run_dir: Path, cfg: RunConfig, dataset, method, device, t_start: float, *, progress: bool,
                resume: bool, final_eval: bool, panel) -> RunResult:
    """The run itself, in ``run_dir`` (locked by the caller): resume or start, iterate, save, evaluate."""
    log = RunLog(run_dir)
    for tmp in run_dir.glob(".*.tmp"):  # left by a writer killed mid-write (we hold the lock: none is live)
        tmp.unlink(missing_ok=True)
    method.checkpoint_path = run_dir / "checkpoint.pt"
    ckpt = run_dir / "checkpoint.pt"
    saved = None
    if resume and ckpt.exists():  # read and checked before anything in the run directory changes
        saved = _resumable_checkpoint(run_dir, cfg, ckpt)
    method.sdc.prepare(dataset, device, log)  # sdc_net=trained: the pool, built once per dataset and cached
    start, rows, best = _restore(run_dir, cfg, method, saved, ckpt, device, log)
    atomic_write(run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(cfg.to_dict(),
                                                                                            sort_keys=False)))
    loop = _Loop(run_dir, cfg, dataset, method, device, _tracking_panel(cfg, dataset, device, panel), rows, best)
    if start == 0 and cfg.track_every:
        row0 = {"iteration": 0}
        loop.track(0, row0)
        rows.append(row0)
    from .tblog import open_logger
    tb = open_logger(cfg, run_dir, dataset, start)  # logger=tensorboard: events beside curves.csv (csv: None)
    loop.iterate(start, tb, progress, log)
    distilled = _save_final(run_dir, cfg, dataset, method, rows, best, tb)
    metrics = _metrics(cfg, device, t_start, rows, best)
    if final_eval:
        metrics.update(_final_evaluation(cfg, dataset, run_dir, distilled, method, best, progress, device, log))
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["peak_rss_mib"] = PeakMemory.rss_mib()
    atomic_write(run_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2,
                                                                                       default=str)))
    log(f"done in {metrics['total_seconds']:.0f} s")
    return RunResult(run_dir, distilled, metrics)


def _resumable_checkpoint(run_dir: Path, cfg: RunConfig, ckpt: Path) -> tuple[dict, int]:
    """(state, iteration) of the run's checkpoint, after checking that this run may resume from it."""
    state, saved, it_saved = load_checkpoint(ckpt)
    _check_resumable(saved, cfg, ckpt, diverged=(run_dir / DIVERGED).exists())
    if it_saved > cfg.iterations:
        raise UserError(f"{ckpt} is at iteration {it_saved}, past this run's iterations={cfg.iterations}; "
                        "raise iterations, give the run another name, or pass --no-resume")
    return state, it_saved


def _restore(run_dir: Path, cfg: RunConfig, method, saved, ckpt: Path, device, log) -> tuple[int, list, dict]:
    """(first iteration, logged rows, best set on validation): the checkpoint's, loaded into the method, or a fresh
    start's."""
    rows: list[dict] = []
    best = {"val_acc": -1.0, "iteration": None}
    start = 0
    if saved is not None:
        state, it_saved = saved
        try:
            method.load_state_dict(state["method"])
            start, rows, best = it_saved, state["rows"], state["best"]
        except Exception as e:
            raise UserError(f"cannot resume from {ckpt} ({type(e).__name__}: {e}); delete it to start over, or "
                            "pass --no-resume") from None
        log(f"resumed from iteration {start}")
        (run_dir / DIVERGED).unlink(missing_ok=True)
    else:
        log(f"start {cfg.method} on {cfg.dataset} ipc={cfg.ipc} seed={cfg.seed} lambda_sdc={cfg.lambda_sdc} "
            f"sdc_ratio={cfg.sdc_ratio} sdc_net={cfg.sdc_net} device={device}")
    return start, rows, best


def _tracking_panel(cfg: RunConfig, dataset, device, panel):
    """The reference panel the set's GraDN is tracked on: the one given (moved to the run's device), else the
    dataset's cached panel when tracking is on."""
    if cfg.track_every and panel is None:
        from .difficulty import reference_panel
        panel = reference_panel(dataset, model="ConvNet", num_models=cfg.panel_models, epochs=cfg.panel_epochs,
                                device=device)
    elif panel is not None and panel.device != device:
        panel = panel.to(device)
    return panel


class _Loop:
    """The iterations of one run: ``method.step``, the divergence check, GraDN tracking, validation (keeping the
    best set), the logs and the periodic checkpoints."""

    def __init__(self, run_dir: Path, cfg: RunConfig, dataset, method, device, panel, rows: list[dict],
                 best: dict):
        self.run_dir, self.cfg, self.dataset, self.method, self.device = run_dir, cfg, dataset, method, device
        self.panel, self.rows, self.best = panel, rows, best
        self.eval_passes = passes_for(cfg.eval_precision, cfg.eval_compile, device)  # one template per run

    def track(self, it: int, row: dict) -> None:
        d = self.method.distilled()
        row["gradn"] = float(self.panel.gradn(d.images, d.labels).mean())

    def validate(self, it: int, row: dict) -> None:
        cfg = self.cfg
        d = self.method.distilled()
        r = evaluate_distilled(d, self.dataset, models=[cfg.model], num_models=cfg.val_num_models,
                               epochs=cfg.val_epochs, aug=cfg.eval_aug, split="val", seed=cfg.seed, progress=False,
                               device=self.device, passes=self.eval_passes)
        acc = r["models"][cfg.model]["mean"]
        row["val_acc"] = acc
        if acc > self.best["val_acc"]:
            self.best.update(val_acc=acc, iteration=it)
            d.save(self.run_dir / "best.safetensors")

    def iterate(self, start: int, tb, progress: bool, log) -> None:
        """Iterations ``start .. cfg.iterations - 1``; an interruption or a divergence is logged (the last
        checkpoint is kept) and raised."""
        cfg, run_dir, rows = self.cfg, self.run_dir, self.rows
        bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not progress,
                   desc=f"{cfg.method} ipc{cfg.ipc}", dynamic_ncols=True)
        it = start
        try:
            for it in bar:
                row = self.one_iteration(it)
                rows.append(row)
                if tb is not None:
                    tb.log(it + 1, row, self.method)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "iteration" and v is not None})
                if cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0:
                    _save_checkpoint(run_dir, self.method, it + 1, rows, self.best, cfg)
                    _write_curves(run_dir, rows)
        except KeyboardInterrupt as e:
            log(f"interrupted{' by SIGTERM' if str(e) == 'SIGTERM' else ''} at iteration {it}; the last checkpoint "
                "is kept and the same command resumes from it")
            raise
        except DivergedError as e:
            log(str(e))
            (run_dir / DIVERGED).write_text(f"{it}\n")
            _write_curves(run_dir, rows)
            raise
        bar.close()

    def one_iteration(self, it: int) -> dict:
        """``method.step(it)`` and its row of logs (with GraDN and validation accuracy when due)."""
        cfg = self.cfg
        logs = self.method.step(it)
        bad = [k for k, v in logs.items() if v is not None and not math.isfinite(v)]
        if bad or logs.get("syn_lr", 0.0) > 1e3:
            raise DivergedError(
                f"{cfg.method} diverged at iteration {it} ({', '.join(f'{k}={logs[k]}' for k in logs)}). "
                + divergence_advice("the image/label/step-size learning rates (e.g. lr_img, lr_lr) or lambda_sdc / "
                                    "sdc_ratio", self.run_dir / "checkpoint.pt", cfg.checkpoint_every))
        row = {"iteration": it + 1, **logs}
        if cfg.track_every and ((it + 1) % cfg.track_every == 0 or it + 1 == cfg.iterations):
            self.track(it + 1, row)  # and always at the last iteration, so final_gradn is the final set's
        if cfg.eval_every and (it + 1) % cfg.eval_every == 0:
            self.validate(it + 1, row)
        return row


def _save_final(run_dir: Path, cfg: RunConfig, dataset, method, rows: list[dict], best: dict, tb) -> Distilled:
    """The final set (and each extra set a method keeps), its grid, the curves and the last checkpoint."""
    distilled = method.distilled()
    distilled.meta["iterations"] = cfg.iterations
    distilled.save(run_dir / "distilled.safetensors")
    for k, v in method.extra_tensors().items():  # e.g. FTD's EMA set, saved as a set of its own
        Distilled(v.detach().cpu(), distilled.labels, distilled.lr, dict(distilled.meta, variant=k)).save(
            run_dir / f"distilled_{k}.safetensors")
    distilled.save_grid(run_dir / "grid.png", dataset)
    _write_curves(run_dir, rows)
    if tb is not None:
        tb.close(cfg.iterations, method)
    _save_checkpoint(run_dir, method, cfg.iterations, rows, best, cfg)
    return distilled


def _metrics(cfg: RunConfig, device, t_start: float, rows: list[dict], best: dict) -> dict:
    """metrics.json before the final evaluation: settings, time, memory, best on validation, tracked GraDN."""
    distill_seconds = time.perf_counter() - t_start
    metrics = {"config": cfg.to_dict(), "device": str(device), "distill_seconds": distill_seconds,
               "peak_rss_mib": PeakMemory.rss_mib(), "best_val": best, "last": {}}
    tracked = [r for r in rows if "gradn" in r]
    if tracked:
        metrics["final_gradn"] = tracked[-1]["gradn"]
        metrics["final_gradn_iteration"] = tracked[-1]["iteration"]
        metrics["initial_gradn"] = tracked[0]["gradn"]
    return metrics
