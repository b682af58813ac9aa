"""``easydd study difficulty``: the synthetic set's GraDN while distilling, one curve per method."""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import UserError
from ...runtime import RunsETA
from .common import _atomic_text, _load_dataset, _log

GM_METHODS = ("dc", "dsa", "dsac")
TM_METHODS = ("mtt", "ftd", "tesla", "datm")


@dataclass(frozen=True)
class DifficultyStudy:
    """The settings of :func:`difficulty_study` (``easydd study difficulty`` fills them from its flags)."""
    dataset: str = "mnist"
    ipcs: tuple[int, ...] = (1,)
    methods: tuple[str, ...] = ("dc", "dsa", "dsac", "dm", "mtt", "ftd", "tesla", "datm")
    iterations: tuple[int, ...] = (50,)        # for every method: one value, or one per IPC
    track_every: int = 5                       # measure GraDN every k iterations
    seed: int = 0
    model: str | None = None                   # distil with this network for every method (None: each preset's)
    panel_models: int = 4
    panel_epochs: int = 1
    final_eval: bool = False                   # also run each method's final evaluation
    rerun: bool = False                        # run again even where a finished run exists
    runs: str = "runs/study"                   # where the run directories go
    out: str = "runs/study"                    # where the table and the figure go
    command: str | None = None                 # the command line, recorded in the results


def _preset_for(method: str, dataset: str, ipc: int) -> str | None:
    from ...config import all_presets
    presets = all_presets()
    for name in (f"{method}-{dataset}-ipc{ipc}-cpu", f"{method}-{dataset}-ipc{ipc}"):
        if name in presets:
            return name
    return None


def _read_curve(run_dir: Path) -> list[tuple[int, float]]:
    f = run_dir / "curves.csv"
    if not f.is_file():
        return []
    with open(f) as fh:
        return [(int(r["iteration"]), float(r["gradn"])) for r in csv.DictReader(fh) if r.get("gradn")]


# methods whose initialisation is part of the method (DATM: real images the experts classify correctly); every
# other method starts from the same seeded draw of real images (base.Method.init_synthetic keys it by seed only)
OWN_INIT = ("datm",)


def _family(method: str) -> str:
    """The method class's family (gradient, distribution, trajectory), 'other' for a name that is no method."""
    from ...methods import get_method
    try:
        return get_method(method).family
    except UserError:
        return "other"


def difficulty_study(s: DifficultyStudy) -> dict:
    """Distil with each method at each IPC from the same start and budget, tracking the set's GraDN on the
    dataset's reference panel; results go to ``difficulty-<dataset>.json`` as each run ends (a finished run is not
    redone), then the table and the figure are written."""
    from ...difficulty import reference_panel

    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    iters = list(s.iterations)
    if len(iters) not in (1, len(s.ipcs)):
        raise UserError(f"--iterations takes one value, or one per --ipc ({len(s.ipcs)}); got {len(iters)}")
    ds = _load_dataset(s.dataset)
    results = _previous_results(out / f"difficulty-{ds.name}.json")
    panel = reference_panel(ds, model="ConvNet", num_models=s.panel_models, epochs=s.panel_epochs, log=_log)
    def finished(ipc: int, method: str, n_it: int) -> bool:
        r = results.get((ipc, method))
        return r is not None and r.get("status") == "ok" and r["iterations"] == n_it and not s.rerun

    plan = [(ipc, iters[k] if len(iters) > 1 else iters[0]) for k, ipc in enumerate(s.ipcs)]
    eta = RunsETA(sum(not finished(ipc, m, n_it) for ipc, n_it in plan for m in s.methods))
    for ipc, n_it in plan:
        for method in s.methods:
            key = (ipc, method)
            if finished(ipc, method, n_it):
                if results[key].get("diag") != DIAG_VERSION:  # runs finished before these diagnostics existed
                    _add_norms(results[key], ds, panel)
                    _write_difficulty(out, ds.name, results, s)
                continue
            results[key] = _run_method(s, ds, panel, ipc, method, n_it)
            _write_difficulty(out, ds.name, results, s)
            _log(f"{method} ipc {ipc}: done {eta.step()}")
    return write_difficulty_outputs(out, ds.name, s.command)


def _previous_results(jf: Path) -> dict:
    """{(ipc, method): record} of the runs an earlier invocation wrote to ``jf`` (empty when there is none)."""
    prev = json.loads(jf.read_text()) if jf.is_file() else {}
    results = {(r["ipc"], r["method"]): r for r in prev.get("runs", [])}
    for r in results.values():  # files written before track_every was kept per run
        r.setdefault("track_every", prev.get("meta", {}).get("track_every"))
    return results


def _run_method(s: DifficultyStudy, ds, panel, ipc: int, method: str, n_it: int) -> dict:
    """One method's short distillation at one IPC, tracking GraDN: its record (status 'failed' and the reason when
    it cannot run: a missing expert buffer, a divergence)."""
    from ...config import build_config
    from ...distill import distill
    from ...methods import method_params

    preset = _preset_for(method, ds.name, ipc)
    over = {"dataset": ds.name, "ipc": ipc, "method": method, "seed": s.seed, "iterations": n_it,
            "init": "real", "track_every": s.track_every, "panel_models": s.panel_models,
            "panel_epochs": s.panel_epochs, "eval_every": 0, "checkpoint_every": max(n_it, 1),
            "out_dir": s.runs, "name": f"study-{method}-{ds.name}-ipc{ipc}-s{s.seed}", "lambda_sdc": 0.0}
    if s.model:
        over["model"] = s.model
        over["eval_models"] = [s.model]
    t = time.perf_counter()
    rec = {"ipc": ipc, "method": method, "iterations": n_it, "track_every": s.track_every, "preset": preset,
           "model": None, "init": "own" if method in OWN_INIT else "shared", "family": _family(method)}
    try:
        cfg = build_config(preset, over, method_params)
        rec["model"] = cfg.model
        rec["method_args"] = cfg.method_args
        _log(f"{method} ipc {ipc}: {n_it} iterations ({preset or 'defaults'}, {cfg.model})")
        res = distill(cfg, ds, progress=False, resume=not s.rerun, final_eval=s.final_eval, panel=panel)
        rec["status"] = "ok"
        rec["run_dir"] = str(res.run_dir)
        if s.final_eval and res.metrics.get("last"):
            m = res.metrics["last"]["models"]
            rec["test_mean"] = next(iter(m.values()))["mean"]
    except UserError as e:  # a missing buffer, a divergence: the study goes on without this method
        rec["status"] = "failed"
        rec["reason"] = str(e).splitlines()[0][:300]
        _log(f"{method} ipc {ipc}: not run ({rec['reason']})")
    curve = _read_curve(Path(s.runs) / over["name"])
    rec["curve"] = curve
    if curve:
        rec["gradn_start"], rec["gradn_end"] = curve[0][1], curve[-1][1]
        rec["ratio_end"] = curve[-1][1] / curve[0][1] if curve[0][1] else float("nan")
    rec["seconds"] = round(time.perf_counter() - t, 1)
    if rec["status"] == "ok":
        _add_norms(rec, ds, panel)
    if curve:
        _log(f"{method} ipc {ipc}: GraDN {rec['gradn_start']:.4g} -> {rec['gradn_end']:.4g} "
             f"(x{rec['ratio_end']:.3f}) in {rec['seconds']:.0f} s")
    return rec


DIAG_VERSION = 2


def _add_norms(rec: dict, ds, panel) -> None:
    """Diagnostics beside the GraDN curve, from the initial and the final set:
    rec['norm_start'/'norm_end'/'norm_ratio']: mean per-image L2 norm (GraDN grows with the input's scale, so a set
    that merely shrinks looks easier); rec['hard_start'/'hard_end'/'hard_ratio']: GraDN of the images with their
    class as a hard label (methods with soft labels, TESLA and DATM, are tracked against their current soft labels,
    which move too; this separates what the images did)."""
    from ...config import build_config
    from ...distilled import Distilled
    from ...methods import get_method, method_params
    try:
        run_dir = Path(rec["run_dir"])
        raw = _run_config(run_dir)
        margs = raw.pop("method_args", None) or {}
        cfg = build_config(None, {**raw, **margs}, method_params)
        m = get_method(cfg.method)(cfg, ds)
        m.init_synthetic()
        x0 = m.images.detach().flatten(1).norm(dim=1)
        d1 = Distilled.load(run_dir / "distilled.safetensors")
        x1 = d1.images.flatten(1).norm(dim=1)
        rec["norm_start"], rec["norm_end"] = float(x0.mean()), float(x1.mean())
        rec["norm_ratio"] = rec["norm_end"] / rec["norm_start"]
        hard = torch.arange(ds.num_classes).repeat_interleave(cfg.ipc)
        rec["hard_start"] = float(panel.gradn(m.images.detach().cpu(), hard).mean())
        rec["hard_end"] = float(panel.gradn(d1.images.float(), hard).mean())
        rec["hard_ratio"] = rec["hard_end"] / rec["hard_start"]
        rec["diag"] = DIAG_VERSION
    except Exception as e:  # a diagnostic only: never lose the run for it
        rec["norm_ratio"] = None
        _log(f"{rec['method']} ipc {rec['ipc']}: image norms not measured ({type(e).__name__}: {e})")


def _run_config(run_dir: Path) -> dict:
    import yaml
    return yaml.safe_load((run_dir / "config.yaml").read_text()) or {}


def _write_difficulty(out: Path, dataset: str, results: dict, s: DifficultyStudy) -> None:
    # another process may be filling other IPCs into the same file: keep its runs (under a lock)
    from ...difficulty import _file_lock
    jf = out / f"difficulty-{dataset}.json"
    with _file_lock(Path(s.runs) / f".difficulty-{dataset}.lock"):  # beside the runs, not the results
        if jf.is_file():
            try:
                for r in json.loads(jf.read_text()).get("runs", []):
                    if r["ipc"] not in s.ipcs:  # another invocation's IPC: the file has its latest state
                        results[(r["ipc"], r["method"])] = r
                    else:
                        results.setdefault((r["ipc"], r["method"]), r)
            except (json.JSONDecodeError, KeyError):
                pass
        _write_difficulty_locked(out, dataset, results, s)


def _write_difficulty_locked(out: Path, dataset: str, results: dict, s: DifficultyStudy) -> None:
    runs = sorted(results.values(), key=lambda r: (r["ipc"], _method_rank(r["method"])))
    meta = {"dataset": dataset, "seed": s.seed, "panel": {
        "model": "ConvNet", "num_models": s.panel_models, "epochs": s.panel_epochs}, "command": s.command}
    _atomic_text(out / f"difficulty-{dataset}.json", json.dumps({"meta": meta, "runs": runs}, indent=1))


def _method_rank(m: str) -> int:
    order = list(GM_METHODS) + ["dm"] + list(TM_METHODS)
    return order.index(m) if m in order else len(order)


def _trend(rec: dict, tol: float) -> str:
    r = rec.get("ratio_end")
    if r is None or not math.isfinite(r):
        return "-"
    return "harder" if r > 1 + tol else "easier" if r < 1 - tol else "flat"


def write_difficulty_outputs(out: Path, dataset: str, command: str | None = None, tol: float = 0.02) -> dict:
    jf = Path(out) / f"difficulty-{dataset}.json"
    if not jf.is_file():
        raise UserError(f"no difficulty results at {jf}")
    data = json.loads(jf.read_text())
    runs, meta = data["runs"], data["meta"]
    command = command or meta.get("command")
    lines = [f"# Synthetic-set difficulty while distilling ({dataset})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    p = meta["panel"]
    lines += [f"GraDN: mean over the synthetic set of the per-sample gradient norm, averaged over the fixed reference "
              f"panel ({p['num_models']} x {p['model']}, {p['epochs']} epoch(s)), measured every "
              f"{_every(runs, meta)} iterations; init=real, seed {meta['seed']}, lambda_sdc=0. Trend: end/start "
              f"above {1 + tol:g} = harder, below {1 - tol:g} = easier.", "",
              "Image norm end/start: the mean per-image L2 norm of the set at the end over that at iteration 0 "
              "(GraDN scales with the input, so a set that only shrinks would look easier). Hard-label GraDN "
              "end/start: the same ratio with each image's class as a hard label (TESLA and DATM are tracked "
              "against their own soft labels, which change during the run).", "",
              "| IPC | method | family | network | init | iterations | GraDN start | GraDN end | end/start | "
              "min/max of ratio | image norm end/start | hard-label GraDN end/start | trend |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r.get("status") != "ok":
            lines.append(f"| {r['ipc']} | {r['method'].upper()} | {r['family']} | {r.get('model') or '-'} | "
                         f"{r.get('init', '-')} | {r['iterations']} | - | - | - | - | - | - | not run: "
                         f"{r.get('reason', '?').replace('|', '/')} |")
            continue
        c = r["curve"]
        ratios = [g / c[0][1] for _, g in c] if c and c[0][1] else []
        nr = r.get("norm_ratio")
        lines.append(f"| {r['ipc']} | {r['method'].upper()} | {r['family']} | {r['model']} | {r.get('init', '-')} | "
                     f"{r['iterations']} | {r['gradn_start']:.4g} | {r['gradn_end']:.4g} | {r['ratio_end']:.3f} | "
                     f"{min(ratios):.3f} / {max(ratios):.3f} | {f'{nr:.3f}' if nr else '-'} | "
                     f"{_fmt_ratio(r.get('hard_ratio'))} | {_trend(r, tol)} |")
    lines.append("")
    for ipc in sorted({r["ipc"] for r in runs}):
        fam: dict = {}
        for r in runs:
            if r["ipc"] == ipc and r.get("status") == "ok":
                t, th = _trend(r, tol), _trend({"ratio_end": r.get("hard_ratio")}, tol)
                fam.setdefault(r["family"], []).append(
                    f"{r['method'].upper()} {t}" + (f" (images with hard labels: {th})" if th not in ("-", t) else ""))
        lines.append(f"- IPC {ipc}: " + "; ".join(f"{f}: {', '.join(v)}" for f, v in fam.items()))
    md = "\n".join(lines) + "\n"
    _atomic_text(Path(out) / f"difficulty-{dataset}.md", md)
    fig = Path(out) / f"difficulty-{dataset}.png"
    _plot_difficulty(fig, runs, dataset)
    _log(f"wrote {Path(out) / f'difficulty-{dataset}.md'}, {fig}")
    return data


def _fmt_ratio(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _every(runs: list[dict], meta: dict) -> str:
    by_ipc: dict = {}
    for r in runs:
        by_ipc.setdefault(r["ipc"], set()).add(r.get("track_every", meta.get("track_every")))
    return "; ".join(f"{'/'.join(str(v) for v in sorted(vs, key=str))} (IPC {i})" for i, vs in sorted(by_ipc.items()))


def _plot_difficulty(path: Path, runs: list[dict], dataset: str) -> None:
    from ...plots import subplots
    from ...distilled import atomic_write
    ipcs = sorted({r["ipc"] for r in runs if r.get("curve")})
    if not ipcs:
        return
    fig, axes = subplots(1, len(ipcs), figsize=(5 * len(ipcs), 3.8), squeeze=False)
    styles = {"gradient": "-", "distribution": ":", "trajectory": "--", "other": "-."}
    for ax, ipc in zip(axes[0], ipcs):
        for j, r in enumerate(sorted((r for r in runs if r["ipc"] == ipc and r.get("curve")),
                                     key=lambda r: _method_rank(r["method"]))):
            c = r["curve"]
            if not c[0][1]:
                continue
            ax.plot([p[0] for p in c], [p[1] / c[0][1] for p in c], ls=styles.get(r["family"], "-"),
                    color=f"C{_method_rank(r['method'])}", marker="." if len(c) < 40 else None,
                    label=f"{r['method'].upper()} ({r['family'][:4]}.)")
        ax.axhline(1.0, color="k", lw=0.7)
        ax.set_title(f"{dataset} IPC {ipc}", fontsize=10)
        ax.set_xlabel("distillation iteration")
        ax.set_ylabel("synthetic mean GraDN / initial")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
