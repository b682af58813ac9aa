"""Seeds x SDC weights, the weight chosen on the VALIDATION split, the effect measured with paired seeds.

The protocol every SDC claim in this project rests on, written once:

1. On the first seed, distil with every weight of the grid (0 must be in it) and score each set on the validation
   split that ``load_dataset`` carves from the training set. The best validation score chooses the weight (a tie
   goes to the smaller weight, so SDC has to earn its place).
2. On every seed, distil with weight 0 and with the chosen weight. The seeds are PAIRED: a seed fixes the initial
   images, the sampled networks and the augmentations, so the difference SDC - base on one seed removes most of
   the seed-to-seed noise.
3. Report, per cell, the test accuracy of both, the paired difference with a 95 % t-interval, how many seeds moved
   up, and the synthetic set's GraDN on the tracking panel (seed 0, networks the trained SDC pool never uses).

Each finished run is appended to a JSON-lines file and read back on the next call, so a killed sweep reruns only
what is missing (and the driver's checkpoints resume a half-finished run).
"""
from __future__ import annotations

import csv
import json
import math
import statistics
import time
from pathlib import Path

from .errors import UserError
from .runtime import RunsETA, cpu_name

# two-sided 95 % quantiles of Student's t by degrees of freedom (df > 30: the normal 1.96 is within 3 %)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042}


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % t-interval of the mean of ``diffs`` (low = high = mean for one value)."""
    n = len(diffs)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    m = statistics.fmean(diffs)
    if n == 1:
        return m, float("nan"), float("nan")
    df = n - 1
    t = T975.get(df) or T975[max(k for k in T975 if k <= df)] if df <= 30 else 1.96
    h = t * statistics.stdev(diffs) / math.sqrt(n)
    return m, m - h, m + h


def _missing(points, done: dict, key) -> list:
    """The (weight, seed, val_models) points without a record, or without the validation score they ask for."""
    out = []
    for w, seed, val in points:
        k = key(w, seed)
        if not (k in done and (val == 0 or done[k].get("val_mean") is not None)) and (w, seed, val) not in out:
            out.append((w, seed, val))
    return out


def check_grid(weights, seeds, weight_key: str) -> None:
    if weight_key not in ("lambda_sdc", "sdc_ratio"):
        raise UserError(f"the swept weight is lambda_sdc or sdc_ratio (got {weight_key!r})")
    if not weights or not seeds:
        raise UserError("a sweep needs at least one weight and one seed")
    bad = [w for w in weights if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
    if bad:
        raise UserError(f"sweep weights must be finite numbers >= 0 (got {bad}); 0 is the base method")
    if 0 not in weights:
        raise UserError("the weight grid must contain 0 (the base method) so that validation can choose it")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds repeat in {seeds}")


def choose_on_validation(scores: dict) -> float | None:
    """The project's one rule for choosing a weight: the highest validation score, a tie going to the smaller
    weight; weights without a score (None) are not candidates. None when nothing is scored."""
    cands = {w: v for w, v in scores.items() if v is not None}
    return max(sorted(cands), key=cands.get) if cands else None


def _key(r: dict) -> tuple:
    return (r["preset"], r["weight_key"], float(r["weight"]), int(r["seed"]), r.get("tag", ""))


def load_records(path: Path) -> dict:
    done = {}
    if path.exists():
        text = path.read_text()
        lines = text.splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                done[_key(r)] = r
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if n == len(lines) and not text.endswith("\n"):  # a record cut short by a kill: drop it
                    from .distilled import atomic_write
                    kept = "".join(ln + "\n" for ln in lines[:-1])
                    atomic_write(path, lambda tmp: Path(tmp).write_text(kept))
                    break
                raise UserError(f"{path}:{n} is not a sweep record; move the file away to start the sweep "
                                "afresh") from None
    return done


def _curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every column of a run's curves.csv as (iteration, value) pairs, empty cells left out."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(run_dir / "curves.csv") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k != "iteration" and v not in (None, ""):
                    out.setdefault(k, []).append((int(row["iteration"]), float(v)))
    return out


def _tail_mean(curve: list[tuple[int, float]]) -> float | None:
    """Mean of the last 20 % of a curve's values (None if empty)."""
    tail = [v for _, v in curve[len(curve) * 4 // 5:]]
    return statistics.fmean(tail) if tail else None


def run_one(preset: str, overrides: dict, weight_key: str, weight: float, seed: int, *, dataset, out_dir: str,
            val_models: int, tag: str = "") -> dict:
    """Distil one (weight, seed) and return its record (test and validation accuracy, panel GraDN, rho)."""
    from .config import build_config
    from .distill import distill
    from .evaluate import evaluate_distilled
    from .fastpass import passes_for
    from .methods import method_params
    from .runtime import resolve_device
    over = dict(overrides, seed=seed, out_dir=out_dir)
    over[weight_key] = weight
    cfg = build_config(preset, over, method_params)
    cuts = [f"{k} {overrides[k]}" for k in ("iterations", "eval_epochs", "init") if k in overrides]
    if cuts:
        cfg.note += "; this sweep: " + ", ".join(cuts)
    t0 = time.perf_counter()
    res = distill(cfg, dataset, progress=False, resume=True)
    val = None
    if val_models > 0:
        passes = passes_for(cfg.eval_precision, cfg.eval_compile, resolve_device(cfg.device))
        val = evaluate_distilled(res.distilled, dataset, models=[cfg.model], num_models=val_models,
                                 epochs=cfg.eval_epochs, aug=cfg.eval_aug, split="val", seed=seed,
                                 progress=False, device=cfg.device, passes=passes)["models"][cfg.model]["mean"]
    test = res.metrics["last"]["models"][cfg.model]
    curves = _curves(res.run_dir)
    return {"preset": preset, "tag": tag, "method": cfg.method, "dataset": cfg.dataset, "ipc": cfg.ipc,
            "weight_key": weight_key, "weight": float(weight), "seed": seed, "sdc_net": cfg.sdc_net,
            "sdc_mode": cfg.sdc_mode, "iterations": cfg.iterations, "eval_epochs": res.metrics["last"]["epochs"],
            "eval_num_models": cfg.eval_num_models, "note": cfg.note, "overrides": overrides,
            "test_accs": test["accs"], "test_mean": test["mean"], "val_mean": val,
            "panel_gradn_init": res.metrics.get("initial_gradn"), "panel_gradn": res.metrics.get("final_gradn"),
            "panel_gradn_iteration": res.metrics.get("final_gradn_iteration"),
            "gradn_curve": curves.get("gradn", []),
            "rho_last20pct": _tail_mean(curves.get("rho", [])),
            "lambda_last20pct": _tail_mean(curves.get("lambda", [])),
            "device": res.metrics.get("device"), "cpu": cpu_name(),
            "seconds": time.perf_counter() - t0, "run_dir": str(res.run_dir),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _check_sweep(weights: list[float], seeds, weight_key: str, jobs, dataset, confirm: bool = False,
                 grid_only_if_zero: bool = False) -> None:
    check_grid(weights, list(seeds), weight_key)
    if confirm and len(set(weights)) != 2:
        raise UserError(f"a confirmation runs 0 and the one weight it confirms, e.g. --weights 0 0.3 (got {weights})")
    if confirm and grid_only_if_zero:
        raise UserError("--grid-only-if-zero concerns the validation grid, which --confirm skips: drop one of them")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"jobs must be a positive integer (got {jobs!r})")
    if jobs > 1 and dataset is not None:
        raise UserError("with jobs > 1 every process loads the dataset from the config; pass dataset=None")


def sweep(preset: str, weights, seeds, *, weight_key: str = "sdc_ratio", overrides: dict | None = None,
          records: str | Path, out_dir: str = "runs/sweep", val_models: int = 2, dataset=None, tag: str = "",
          log=print, jobs: int = 1, grid_only_if_zero: bool = False, confirm: bool = False) -> dict:
    """Run the protocol above for one preset (one method, dataset, IPC) and return the cell record.
    ``grid_only_if_zero``: if validation chooses 0 (identical pairs), skip step 2; the cell holds the first seed.
    ``confirm``: ``weights`` is 0 and one weight chosen before; skip step 1 (a replication on new seeds).
    ``jobs`` > 1: the missing points run in that many one-thread processes, in two rounds (the grid, then the
    pairs); each loads the dataset itself, so ``dataset`` must be None. The records equal those of ``jobs=1``."""
    from .config import build_config
    from .data import load_dataset
    from .methods import method_params
    weights = [float(w) for w in weights]
    _check_sweep(weights, seeds, weight_key, jobs, dataset, confirm, grid_only_if_zero)
    overrides = dict(overrides or {})
    cfg0 = build_config(preset, dict(overrides, **{weight_key: max(weights)}), method_params)  # checks settings
    if dataset is None and jobs == 1:
        dataset = load_dataset(cfg0.dataset, cfg0.data_root, zca=cfg0.zca, seed=0, val_size=cfg0.val_size)
    path = Path(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    done, eta = load_records(path), RunsETA(0)

    def key(w: float, seed: int) -> tuple:
        return (preset, weight_key, float(w), int(seed), tag)

    def record(r: dict) -> None:
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
        done[key(r["weight"], r["seed"])] = r
        log(f"  {weight_key}={r['weight']:g} seed {r['seed']}: test {r['test_mean']:.4f} val {r['val_mean']} "
            f"panel GraDN {r['panel_gradn']} rho {r['rho_last20pct']} {eta.step()}")

    def run(points) -> None:
        nonlocal eta
        todo = _missing(points, done, key)
        eta = RunsETA(len(todo))
        if jobs == 1:
            for w, seed, val in todo:
                log(f"{preset} {weight_key}={w:g} seed {seed} ...")
                record(run_one(preset, overrides, weight_key, w, seed, dataset=dataset, out_dir=out_dir,
                               val_models=val, tag=tag))
        elif todo:
            _run_parallel(todo, jobs, record, log, preset=preset, overrides=overrides, weight_key=weight_key,
                          out_dir=out_dir, tag=tag)

    seeds = list(seeds)
    if confirm:  # the weight was chosen before (on other seeds): the pairs alone, no validation grid
        chosen = max(weights)
    else:
        run([(w, seeds[0], val_models) for w in sorted(weights)])
        chosen = choose_on_validation({w: done[key(w, seeds[0])]["val_mean"] for w in weights})
        seeds = seeds[:1] if chosen == 0 and grid_only_if_zero else seeds
    run([(0.0, s, 0) for s in seeds] + ([(chosen, s, 0) for s in seeds] if chosen > 0 else []))
    scored = {w: done[key(w, seeds[0])] for w in sorted(weights)}
    base = [done[key(0.0, s)] for s in seeds]
    sdc = [done[key(chosen, s)] for s in seeds] if chosen > 0 else base
    cell = cell_record(base, sdc, chosen, weight_key, scored)
    return dict(cell, confirm=True) if confirm else cell


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def _job(preset: str, overrides: dict, weight_key: str, weight: float, seed: int, out_dir: str, val_models: int,
         tag: str) -> dict:
    """One grid point in a worker process: the dataset is loaded here (from the cache: about a second)."""
    from .config import build_config
    from .data import load_dataset
    from .methods import method_params
    cfg = build_config(preset, dict(overrides, **{weight_key: weight}), method_params)
    dataset = load_dataset(cfg.dataset, cfg.data_root, zca=cfg.zca, seed=0, val_size=cfg.val_size)
    return run_one(preset, overrides, weight_key, weight, seed, dataset=dataset, out_dir=out_dir,
                   val_models=val_models, tag=tag)


def _run_parallel(todo: list, jobs: int, record, log, **common) -> None:
    """Run ``todo`` [(weight, seed, val_models)] in ``jobs`` processes; records are written by this process only,
    as each point finishes. A failure lets the running points finish (and be recorded), then is raised."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = multiprocessing.get_context("spawn")  # no forked copy of a threaded torch
    error = None
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_one_thread) as ex:
        pending = {}
        for w, seed, val in todo:
            log(f"{common['preset']} {common['weight_key']}={w:g} seed {seed} ... (queued)")
            pending[ex.submit(_job, common["preset"], common["overrides"], common["weight_key"], w, seed,
                              common["out_dir"], val, common["tag"])] = (w, seed)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                pending.pop(fut)
                try:
                    record(fut.result())
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the others are recorded
                    if error is None:
                        error = e
                        for f in pending:
                            f.cancel()
    if error is not None:
        raise error


TIE_POINTS = 1e-4   # accuracy points; one test image of 10000 on one of 5 networks moves the mean by 0.002


def cell_record(base: list[dict], sdc: list[dict], chosen: float, weight_key: str, scored: dict) -> dict:
    """The per-cell summary (accuracies in %, paired by seed)."""
    diffs = [100 * (s["test_mean"] - b["test_mean"]) for b, s in zip(base, sdc)]
    m, lo, hi = t_interval(diffs)
    gb = [b["panel_gradn"] for b in base if b["panel_gradn"] is not None]
    gs = [s["panel_gradn"] for s in sdc if s["panel_gradn"] is not None]
    g_base = statistics.fmean(gb) if gb else None
    g_sdc = statistics.fmean(gs) if gs else None
    strongest = scored[max(scored)]
    b0 = base[0]
    return {"method": b0["method"], "dataset": b0["dataset"], "ipc": b0["ipc"], "sdc_net": sdc[0]["sdc_net"],
            "weight_key": weight_key, "weight": chosen, "seeds": [b["seed"] for b in base],
            "panel_gradn_base": g_base, "panel_gradn_sdc": g_sdc,
            "panel_gradn_change_pct": None if not (g_base and g_sdc) else 100 * (g_sdc / g_base - 1),
            "panel_gradn_paired_change_pct": [None if not (b["panel_gradn"] and s["panel_gradn"]) else
                                              round(100 * (s["panel_gradn"] / b["panel_gradn"] - 1), 1)
                                              for b, s in zip(base, sdc)],
            "acc_base": 100 * statistics.fmean(b["test_mean"] for b in base),
            "acc_sdc": 100 * statistics.fmean(s["test_mean"] for s in sdc),
            "paired_diffs": [round(d, 2) for d in diffs], "paired_diff_mean": m,
            "paired_diff_ci95": [None if math.isnan(v) else v for v in (lo, hi)],  # one pair: no interval (JSON null)
            # a pair whose accuracies differ by float rounding only (the same test images right) is a tie
            "seeds_up": sum(d > TIE_POINTS for d in diffs), "seeds_down": sum(d < -TIE_POINTS for d in diffs),
            "val_by_weight": {f"{w:g}": r["val_mean"] for w, r in sorted(scored.items())},
            "panel_gradn_by_weight": {f"{w:g}": r["panel_gradn"] for w, r in sorted(scored.items())},
            "rho_by_weight": {f"{w:g}": r["rho_last20pct"] for w, r in sorted(scored.items())},
            "strongest_weight_gradn_change_pct": None if not (scored[0.0]["panel_gradn"] and
                                                              strongest["panel_gradn"]) else
            100 * (strongest["panel_gradn"] / scored[0.0]["panel_gradn"] - 1),
            "panel_gradn_at_iteration": b0.get("panel_gradn_iteration") or b0["iterations"],
            "iterations": b0["iterations"], "eval_epochs": b0["eval_epochs"],
            "eval_num_models": b0["eval_num_models"], "budget_note": b0["note"], "device": b0["device"],
            # pairs whose two runs ran on different CPU models (float results differ there before any SDC)
            "pairs_across_cpus": [b["seed"] for b, s in zip(base, sdc) if b.get("cpu") != s.get("cpu")
                                  and b.get("cpu") and s.get("cpu")]}


def verdict(cell: dict) -> str:
    """'helps' (interval above 0), 'hurts' (below 0) or 'no effect' (the interval holds 0, or one seed)."""
    lo, hi = cell["paired_diff_ci95"]
    if cell["weight"] == 0:
        return "validation chose 0"
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return "one seed: no interval"
    return "helps" if lo > 0 else "hurts" if hi < 0 else "no effect"


# -- command line: easydd sweep ---------------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.description = ("Distil a preset over seeds x SDC weights, choose the weight on the validation split (first "
                     "seed), test base and chosen weight with paired seeds. Resumable: a rerun of the same command "
                     "runs only what its records file lacks.")
    p.add_argument("--preset", required=True, help="a preset from `easydd info` (one method, dataset, IPC)")
    p.add_argument("--weights", nargs="*", default=None, help="SDC weights, 0 included (e.g. 0 0.1 1)")
    p.add_argument("--seeds", nargs="*", default=["0", "1", "2"], help="seeds (default 0 1 2); the first chooses")
    p.add_argument("--weight-key", default="sdc_ratio", help="sdc_ratio (default) or lambda_sdc")
    p.add_argument("--jobs", default="1", help="grid points run at once, each a process with one thread")
    p.add_argument("--val-models", default=None,
                   help="networks scoring each weight on the validation split (default 2; not with --confirm)")
    p.add_argument("--grid-only-if-zero", action="store_true",
                   help="when validation chooses 0, stop after the grid (no base runs on the other seeds)")
    p.add_argument("--confirm", action="store_true",
                   help="--weights 0 W with W chosen before: run the pairs on these seeds, no validation grid")
    p.add_argument("--out", default=None, help="folder for the runs, records and cell (default runs/sweep/<preset>"
                                               "[-<hash of the overrides>])")
    p.add_argument("--records", default=None, help="the JSON-lines records file (default OUT/records.jsonl)")
    p.add_argument("overrides", nargs="*", help="key=value settings applied to every run, e.g. iterations=60")


def _numbers(values, kind, name: str) -> list:
    out = []
    for v in values:
        try:
            out.append(kind(v))
        except (TypeError, ValueError):
            raise UserError(f"{name} takes numbers ({kind.__name__}); got {v!r}") from None
    return out


def _positive_int(v, name: str) -> int:
    n = _numbers([v], int, name)[0]
    if n < 1:
        raise UserError(f"{name} must be >= 1 (got {n})")
    return n


def run_from_args(a) -> int:
    import hashlib
    from .config import parse_overrides
    # `--seeds 0 1 iterations=60`: key=value words after a list belong to the overrides, not to the list
    extra = [v for v in [*(a.weights or []), *a.seeds] if "=" in v]
    a.weights = [v for v in a.weights or [] if "=" not in v]
    a.seeds = [v for v in a.seeds if "=" not in v]
    a.overrides = extra + list(a.overrides)
    if not a.weights:
        raise UserError("give the weight grid, e.g. --weights 0 0.1 1 (0 is the base method)")
    weights = _numbers(a.weights, float, "--weights")
    seeds = _numbers(a.seeds, int, "--seeds")
    jobs = _positive_int(a.jobs, "--jobs")
    if a.confirm and a.val_models is not None:
        raise UserError("--confirm runs no validation grid, so --val-models has no use there: drop it")
    val_models = _positive_int(a.val_models if a.val_models is not None else 2, "--val-models")
    check_grid(weights, seeds, a.weight_key)
    over = parse_overrides(a.overrides)
    for k in ("seed", a.weight_key):
        if k in over:
            raise UserError(f"{k} is swept here; give it with --seeds / --weights, not as {k}=...")
    for k in ("name", "out_dir"):
        if k in over:
            raise UserError(f"the sweep names its runs and puts them under --out; drop {k}=...")
    import os
    if jobs > (os.cpu_count() or 1):
        print(f"note: --jobs {jobs} on {os.cpu_count()} cores: the runs will share them", flush=True)
    tag = ",".join(f"{k}={over[k]}" for k in sorted(over))
    out = Path(a.out) if a.out else Path("runs") / "sweep" / (
        a.preset + (f"-{hashlib.sha1(tag.encode()).hexdigest()[:8]}" if tag else ""))
    records = Path(a.records) if a.records else out / "records.jsonl"
    cell = sweep(a.preset, weights, seeds, weight_key=a.weight_key, overrides=over, records=records,
                 out_dir=str(out / "runs"), val_models=val_models, tag=tag, jobs=jobs,
                 grid_only_if_zero=a.grid_only_if_zero, confirm=a.confirm, log=lambda m: print(m, flush=True))
    cell.update(preset=a.preset, tag=tag, records=str(records))
    from .distilled import atomic_write
    atomic_write(out / "cell.json", lambda tmp: Path(tmp).write_text(json.dumps(cell, indent=1) + "\n"))
    lo, hi = cell["paired_diff_ci95"]
    if a.confirm:
        print(f"confirming {a.weight_key}={cell['weight']:g} on seeds {', '.join(map(str, cell['seeds']))}")
    else:
        print(f"validation chose {a.weight_key}={cell['weight']:g} "
              f"({', '.join(f'{w}: {100 * v:.2f}' for w, v in cell['val_by_weight'].items())} % on val)")
    if cell["weight"] == 0:  # the pairs are identical runs: no difference to report
        print(f"test: base {cell['acc_base']:.2f} % over {len(cell['seeds'])} seed(s); SDC not chosen")
    else:
        ci = "(no interval)" if lo is None else f"[{lo:.2f}, {hi:.2f}]"
        print(f"test: base {cell['acc_base']:.2f} %, chosen {cell['acc_sdc']:.2f} %, paired diff "
              f"{cell['paired_diff_mean']:+.2f} {ci} over {len(cell['seeds'])} seed(s): {verdict(cell)}")
    print(f"wrote {out / 'cell.json'} (records: {records})")
    return 0


__all__ = ["choose_on_validation", "sweep", "run_one", "cell_record", "t_interval", "check_grid", "load_records", "verdict"]
