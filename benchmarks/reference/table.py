"""The reference-budget cells (issue 14, item 3) as one table: what each finished run measured, beside the cut-budget
number of the same cell (benchmarks/results/matching/results.jsonl) and the published one.

    python benchmarks/reference/table.py      # benchmarks/results/reference/results.{json,md}

A cell lists every finished seed (a run directory with metrics.json under benchmarks/results/reference/runs/) and,
separately, the unfinished runs with the iteration their checkpoint holds (running, or stopped and resumable: the fp32
eager run was set aside for the fast path's and resumes with `bash benchmarks/reference/run.sh`). Nothing is averaged over fewer
seeds than finished; a cell with no finished seed shows no accuracy. Where a run directory also holds eval.json (a
later `easydd eval RUN_DIR ...` of the same set, e.g. with the reference evaluation augmentation after the preset
was corrected), that evaluation is the cell's number and the run's own one is listed beside it.
"""
from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "benchmarks/results/reference/runs"
OUT = ROOT / "benchmarks/results/reference"
CUT = ROOT / "benchmarks/results/matching/results.jsonl"
# published ConvNet accuracy, IPC 1 (DC/DSA repository README and papers; docs/references.md)
PUBLISHED = {("dc", "mnist"): 91.7, ("dsa", "mnist"): 88.7, ("dc", "fashion_mnist"): 70.5,
             ("dsa", "fashion_mnist"): 70.6}
CELLS = [(m, d) for d in ("mnist", "fashion_mnist") for m in ("dc", "dsa")]


def _parse(name: str) -> dict | None:
    """'dsa-mnist-ipc1-s0-fast' -> method, dataset, ipc, seed, path; None for any other run (e.g. the SDC arms,
    '...-fast-sdc1', which benchmarks/reference/sdc_pair.py reports)."""
    parts = name.split("-")
    paths = {(): "fp32 eager", ("fast",): "bf16 + compile"}
    try:
        method, dataset, ipc, seed = parts[0], parts[1], int(parts[2][3:]), int(parts[3][1:])
    except (IndexError, ValueError):
        return None
    if tuple(parts[4:]) not in paths:
        return None
    return dict(method=method, dataset=dataset, ipc=ipc, seed=seed, path=paths[tuple(parts[4:])])


def _last_iteration(run: Path) -> int:
    try:
        with open(run / "curves.csv") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["iteration"]) if rows else 0
    except (OSError, KeyError, ValueError):
        return 0


def _eval_label(ev: dict) -> str:
    aug = ev.get("aug") or ("dsa" if ev.get("dsa") else "crop")  # records before eval_aug: dsa true/false
    return f"{ev['num_models']} x {ev['epochs']} epochs, {aug} augmentation"


def own_last_eval(met: dict) -> dict:
    """The final evaluation a run's metrics.json holds (the test split, its last epoch)."""
    return met["final_eval"]["last"] if "final_eval" in met else met["last"]


def cell_eval(run: Path) -> dict | None:
    """The evaluation that is a finished run's number: a later `easydd eval RUN_DIR` (eval.json) if there is one,
    else the run's own; None while the run is unfinished."""
    if (run / "eval.json").exists():
        return json.loads((run / "eval.json").read_text())
    m = run / "metrics.json"
    return own_last_eval(json.loads(m.read_text())) if m.exists() else None


def collect() -> list[dict]:
    runs = []
    for run in sorted(p for p in RUNS.iterdir() if p.is_dir()) if RUNS.exists() else []:
        r = _parse(run.name)
        if r is None:
            continue
        r["run"] = str(run.relative_to(ROOT))
        m = run / "metrics.json"
        if m.exists():
            met = json.loads(m.read_text())
            if (run / "eval.json").exists():  # a later evaluation of the same set
                own = own_last_eval(met)
                r["own_eval"] = f"{100 * next(iter(own['models'].values()))['mean']:.2f} ({_eval_label(own)})"
            last = cell_eval(run)
            model = next(iter(last["models"].values()))
            r.update(done=True, test_mean=100 * model["mean"], test_accs=[100 * a for a in model["accs"]],
                     eval=_eval_label(last), seconds=met.get("total_seconds"),
                     distill_seconds=met.get("distill_seconds"), iterations=met["config"]["iterations"],
                     batch_real=met["config"].get("method_args", {}).get("batch_real"))
        else:
            r.update(done=False, at_iteration=_last_iteration(run))
        runs.append(r)
    return runs


def cut_budget() -> dict:
    """(method, dataset) -> (mean, std, n) of the cut-budget runs at IPC 1, lambda 0."""
    acc: dict = {}
    if CUT.exists():
        for line in CUT.read_text().splitlines():
            r = json.loads(line)
            if r["ipc"] == 1 and not r.get("lambda_sdc"):
                acc.setdefault((r["method"], r["dataset"]), []).append(100 * r["test_mean"])
    return {k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) for k, v in acc.items()}


def table(runs: list[dict]) -> str:
    cut = cut_budget()
    lines = ["# Reference budgets on this CPU", "",
             f"Generated by `python benchmarks/reference/table.py` on {time.strftime('%Y-%m-%d %H:%M')} from the runs "
             "of `benchmarks/reference/run.sh` (1000 iterations, real batch 256, 5 evaluation ConvNets x the "
             "reference epochs, lambda 0; each run's config.yaml and log.txt beside its checkpoint). Test split, "
             "final epoch, %. x86_64, 2 cores, torch 2.13.0+cpu.", "",
             "| method | dataset | IPC | path | reference budget (finished seeds) | cut budget (3 seeds, 100 it, "
             "batch 64, evaluation 300 epochs) | published | unfinished (resumes from its checkpoint) |", "|---|---|---|---|---|---|---|---|"]
    for method, dataset in CELLS:
        mine = [r for r in runs if (r["method"], r["dataset"]) == (method, dataset)]
        c = cut.get((method, dataset))
        cut_s = f"{c[0]:.2f} ± {c[1]:.2f}" if c else "-"
        for path in sorted({r["path"] for r in mine}) or ["-"]:
            done = [r for r in mine if r["path"] == path and r["done"]]
            todo = [f"s{r['seed']} at {r['at_iteration']}/1000" for r in mine if r["path"] == path and not r["done"]]
            if done:
                accs = [r["test_mean"] for r in done]
                sd = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
                ref = (f"{statistics.mean(accs):.2f}{sd} (seeds {', '.join(str(r['seed']) for r in done)}: "
                       f"{'; '.join(f'{a:.2f}' for a in accs)}; evaluation {'; '.join(sorted({r['eval'] for r in done}))}"
                       + "".join(f"; s{r['seed']} re-evaluated, its run's own: {r['own_eval']}" for r in done
                                 if "own_eval" in r) + ")")
            else:
                ref = "-"
            lines.append(f"| {method.upper()} | {dataset} | 1 | {path} | {ref} | {cut_s} | "
                         f"{PUBLISHED[(method, dataset)]} | {', '.join(todo) or '-'} |")
    lines += ["", "bf16 + compile: the real-data passes in bf16 autocast and compiled (precision=bf16 compile=true; "
              "docs/speed.md); fp32 eager: the reference numerics (its one run was set aside when the fast "
              "path took over; `bash benchmarks/reference/run.sh` resumes it). Published: the DC/DSA papers' ConvNet numbers "
              "(mean over 5 x 20 evaluation networks on a GPU). Evaluation augmentation: dsa for DSA; for DC the DC code's "
              "own, `dc` (crop/scale/rotate, 1000 epochs) on MNIST and `none` (300 epochs) on Fashion-MNIST; runs "
              "made before the DC presets said so evaluated with `crop` (a shift of up to 4 px) for 300 epochs and "
              "were re-evaluated with `easydd eval RUN_DIR --aug dc --num-models 5` (eval.json in the run)."]
    return "\n".join(lines) + "\n"


def write(stem: str, records: list[dict], md: str) -> None:
    """benchmarks/results/reference/<stem>.json and .md, and the table on stdout."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{stem}.json").write_text(json.dumps(records, indent=1) + "\n")
    (OUT / f"{stem}.md").write_text(md)
    sys.stdout.write(md)


def main() -> None:
    runs = collect()
    write("results", runs, table(runs))


if __name__ == "__main__":
    main()
