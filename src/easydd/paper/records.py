"""The runs ``easydd report`` reads, as ``Record``s: one finished run's setting and accuracies.

Inputs (any mix):
- a run directory (``metrics.json``, with ``config.yaml`` beside it as a fallback for the settings) as written by
  ``easydd distill``, ``easydd select`` or ``easydd eval`` (``eval.json``);
- a folder that holds run directories (searched recursively for ``metrics.json``);
- a results file: JSON Lines (one record per line, as ``benchmarks/matching_results.py`` writes) or a JSON list /
  object with a ``records`` list (as ``easydd study selection`` writes). A record needs ``dataset``, ``ipc``,
  ``method`` and either ``test_accs`` / ``test_mean`` (fractions) or ``accs`` / ``mean``; ``lambda_sdc``, ``seed``,
  ``val_mean``, ``iterations``, ``eval_epochs``, ``note``, ``model`` are used when present.

A run met twice (a results file and the run directory it points to) is counted once.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

__all__ = ["Record", "load_records", "record_from_run_dir", "record_from_dict"]


@dataclass
class Record:
    """One finished run: its setting and test accuracies (fractions in [0, 1])."""
    dataset: str
    ipc: int
    method: str
    accs: list[float]
    lambda_sdc: float = 0.0
    seed: int | None = None
    model: str = "ConvNet"
    val_mean: float | None = None
    iterations: int | None = None
    eval_epochs: int | None = None
    note: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        v = [a for a in self.accs if a is not None and math.isfinite(a)]
        return statistics.fmean(v) if v else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------

def _num(v, default=None):
    try:
        return default if v is None else float(v)
    except (TypeError, ValueError):
        return default


def _int(v, default=None):
    try:
        return default if v is None else int(v)
    except (TypeError, ValueError):
        return default


def _from_eval(ev: dict, prefer_model: str | None = None) -> tuple[str, list[float], int | None] | None:
    """(model, accs, epochs) of an evaluation dict ({'models': {name: {'accs', 'mean'}}, 'epochs'})."""
    models = (ev or {}).get("models") or {}
    if not models:
        return None
    name = prefer_model if prefer_model in models else next(iter(models))
    r = models[name]
    accs = r.get("accs")
    if not accs:
        accs = [r["mean"]] if r.get("mean") is not None else []
    return name, [float(a) for a in accs], _int(ev.get("epochs"))


def record_from_run_dir(path: Path) -> Record:
    """A :class:`Record` from a run directory (metrics.json, config.yaml, eval.json)."""
    metrics, cfg = {}, {}
    mfile = path / "metrics.json"
    if mfile.is_file():
        try:
            metrics = json.loads(mfile.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{mfile} is not readable JSON ({e}); rerun the evaluation (easydd eval {path})") \
                from None
        except UnicodeDecodeError:
            raise UserError(f"{mfile} is not a text file; rerun the evaluation (easydd eval {path})") from None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("config") or {}, dict):
            raise UserError(f"{mfile} is not a metrics object (a JSON object with 'config' and 'last'); rerun the "
                            f"evaluation (easydd eval {path})")
    cfg = dict(metrics.get("config") or {})
    yfile = path / "config.yaml"
    if yfile.is_file():
        import yaml
        try:
            ycfg = yaml.safe_load(yfile.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{yfile} is not valid YAML ({e})") from None
        for k, v in (ycfg if isinstance(ycfg, dict) else {}).items():
            cfg.setdefault(k, v)
    ev = metrics.get("last") or {}
    efile = path / "eval.json"
    if not (ev and ev.get("models")) and efile.is_file():
        try:
            ev = json.loads(efile.read_text())
        except (OSError, json.JSONDecodeError):
            ev = {}
    missing = [k for k in ("dataset", "ipc", "method") if cfg.get(k) is None]
    if missing:
        raise UserError(f"{path}: cannot tell the run's {', '.join(missing)} (no metrics.json 'config' or "
                        "config.yaml); is it a run directory?")
    try:
        got = _from_eval(ev, (cfg.get("eval_models") or [cfg.get("model")])[0] if cfg else None)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
        raise UserError(f"{path}: the evaluation in metrics.json/eval.json is malformed ({e}); rerun it with "
                        f"`easydd eval {path}`") from None
    if got is None:
        raise UserError(f"{path}: the run has no test accuracy yet (metrics.json has no evaluation); evaluate it "
                        f"with `easydd eval {path}`")
    model, accs, epochs = got
    best = metrics.get("best_val") or {}
    if not isinstance(best, dict) or not isinstance(cfg.get("ipc"), int) or isinstance(cfg.get("ipc"), bool):
        raise UserError(f"{path}: metrics.json/config.yaml hold a malformed ipc or best_val; rerun the run or fix "
                        "the file")
    return Record(dataset=str(cfg["dataset"]).lower(), ipc=int(cfg["ipc"]), method=str(cfg["method"]).lower(),
                  accs=accs, lambda_sdc=_num(cfg.get("lambda_sdc"), 0.0), seed=_int(cfg.get("seed")), model=model,
                  val_mean=_num(metrics.get("val_mean"), _num(best.get("val_acc")) if best.get("val_acc", -1) >= 0
                                else None),
                  iterations=_int(cfg.get("iterations")), eval_epochs=epochs, note=str(cfg.get("note") or ""),
                  source=str(path), extra={"sdc_mode": cfg.get("sdc_mode")})


def record_from_dict(r: dict, source: str = "") -> Record:
    """A :class:`Record` from one results record (matching_results.py's JSONL or a study JSON)."""
    missing = [k for k in ("dataset", "ipc", "method") if r.get(k) is None]
    if missing:
        raise UserError(f"{source}: a record lacks {', '.join(missing)} (keys: {', '.join(sorted(r))})")
    accs = r.get("test_accs") or r.get("accs")
    if not accs:
        m = r.get("test_mean", r.get("mean"))
        if m is None:
            raise UserError(f"{source}: a record has no test accuracy (test_accs / test_mean / accs / mean)")
        accs = [m]
    what = f"{source}: record {r.get('method')!r} on {r.get('dataset')!r}"
    if not isinstance(accs, list):
        accs = [accs]
    try:
        ipc = int(r["ipc"])
        accs = [None if a is None else float(a) for a in accs]
    except (TypeError, ValueError) as e:
        raise UserError(f"{what}: ipc must be an integer and accuracies numbers ({e}); fix the record") from None
    bad = [a for a in accs if a is not None and math.isfinite(a) and not 0 <= a <= 1]
    if bad or isinstance(r["ipc"], bool) or ipc < 1:
        raise UserError(f"{what}: " + (f"accuracies must be fractions in [0, 1] (got {bad[:3]})" if bad else
                                        f"ipc must be >= 1 (got {r['ipc']!r})") + "; fix the record")
    return Record(dataset=str(r["dataset"]).lower(), ipc=ipc, method=str(r["method"]).lower(),
                  accs=accs, lambda_sdc=_num(r.get("lambda_sdc"), 0.0) or 0.0,
                  seed=_int(r.get("seed")), model=str(r.get("model") or "ConvNet"), val_mean=_num(r.get("val_mean")),
                  iterations=_int(r.get("iterations")), eval_epochs=_int(r.get("eval_epochs")),
                  note=str(r.get("note") or ""), source=str(r.get("run_dir") or source))


def _records_from_file(path: Path) -> tuple[list[Record], list[str]]:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file; pass a run directory, a JSON or a JSONL results file") from None
    figures: list[str] = []
    rows: list[dict] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        lines = text.splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if i == len(lines) and not text.endswith("\n"):  # a writer killed mid-append: that record is lost
                    print(f"easydd report: {path}:{i} is cut off (its writer was interrupted); skipping it",
                          file=sys.stderr)
                    continue
                raise UserError(f"{path}:{i} is not JSON ({e.msg}); pass a run directory, a JSON or a JSONL "
                                "results file") from None
    if data is not None:
        if isinstance(data, list):
            rows = data
        elif isinstance(data, dict) and isinstance(data.get("records"), list):
            rows = data["records"]
            for f in data.get("figures") or ([data["figure"]] if data.get("figure") else []):
                fp = Path(f)
                figures.append(str(fp if fp.is_absolute() else path.parent / fp))
        elif isinstance(data, dict) and "dataset" in data:
            rows = [data]
        else:
            raise UserError(f"{path}: expected a list of records or an object with a 'records' list")
    # a figure written beside a JSONL file by the same script (matching_results.py's gradn_curves.png)
    if path.suffix == ".jsonl":
        figures += [str(p) for p in sorted(path.parent.glob("*.png"))]
    not_dicts = [i for i, r in enumerate(rows, 1) if not isinstance(r, dict)]
    if not_dicts:
        raise UserError(f"{path}: record {not_dicts[0]} is a JSON {type(rows[not_dicts[0] - 1]).__name__}, not an "
                        "object with dataset, ipc, method and accuracies; fix or remove it")
    return [record_from_dict(r, str(path)) for r in rows], figures


def load_records(paths) -> tuple[list[Record], list[str]]:
    """Records and figure paths from run directories, folders of runs and results files."""
    records: list[Record] = []
    figures: list[str] = []
    for p in map(Path, paths):
        if p.is_file():
            recs, figs = _records_from_file(p)
            records += recs
            figures += figs
        elif p.is_dir():
            if (p / "metrics.json").is_file() or (p / "eval.json").is_file():
                records.append(record_from_run_dir(p))
                continue
            found = sorted({m.parent for m in p.rglob("metrics.json")})
            if not found:
                raise UserError(f"{p}: no metrics.json in it or below it; pass run directories (made by easydd "
                                "distill / select) or a results .json/.jsonl file")
            for d in found:
                try:
                    records.append(record_from_run_dir(d))
                except UserError as e:  # an unfinished run inside a folder: skip it, say so
                    print(f"easydd report: skipping {d}: {e}", file=sys.stderr)
        else:
            raise UserError(f"no such file or directory: {p}")
    return _dedupe(records), figures


def _dedupe(records: list[Record]) -> list[Record]:
    """Drop a run met twice (e.g. a results file and the run directory it points to): same setting and seed."""
    seen: dict[tuple, Record] = {}
    out = []
    for r in records:
        if r.seed is None:
            out.append(r)
            continue
        k = (r.method, r.dataset, r.ipc, r.model, r.lambda_sdc, r.seed, r.iterations, r.eval_epochs)
        if k in seen:
            print(f"easydd report: {r.source or '?'} repeats {seen[k].source or '?'} (same setting and seed); "
                  "counted once", file=sys.stderr)
            continue
        seen[k] = r
        out.append(r)
    return out
