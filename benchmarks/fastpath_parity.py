"""Does the fast path (precision=bf16 compile=true) distil sets as good as eager fp32? Paired seeds.

    python benchmarks/fastpath_parity.py --preset dsa-mnist-ipc1-cpu --seeds 0 1 2 --num-models 3
    python benchmarks/fastpath_parity.py --table

Each seed distils the preset twice from the same initial images, once eager fp32 and once with the real-data
passes in bf16 and compiled, and evaluates both the same way on the test split (the evaluation itself is eager
fp32 in both). Reports seconds of distillation, test accuracy, and the paired difference with a 95 % t-interval.
Resumable: records go to benchmarks/results/speed_parity.jsonl and a finished (preset, path, seed) is skipped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"
RECORDS = OUT / "speed_parity.jsonl"
PATHS = {"fp32": {}, "bf16-compile": {"precision": "bf16", "compile": True}}


def run(a) -> None:
    from easydd.config import build_config
    from easydd.data import load_dataset
    from easydd.methods import method_params
    from easydd.sweep import run_one
    done = set()
    if RECORDS.exists():
        done = {(r["preset"], r["path"], r["seed"]) for r in map(json.loads, RECORDS.read_text().splitlines())}
    cfg = build_config(a.preset, {}, method_params)
    ds = load_dataset(cfg.dataset, cfg.data_root, zca=cfg.zca, seed=0, val_size=cfg.val_size)
    for seed in a.seeds:
        for path, over in PATHS.items():
            if (a.preset, path, seed) in done:
                continue
            print(f"{a.preset} {path} seed {seed} ...", flush=True)
            o = dict(over, eval_num_models=a.num_models, checkpoint_every=0, track_every=0)
            r = run_one(a.preset, o, "sdc_ratio", 0.0, seed, dataset=ds, out_dir=f"runs/parity/{path}",
                        val_models=0, tag=path)
            rec = {"preset": a.preset, "path": path, "seed": seed, "test_mean": r["test_mean"],
                   "test_accs": r["test_accs"], "seconds": r["seconds"], "iterations": r["iterations"],
                   "eval_num_models": r["eval_num_models"], "eval_epochs": r["eval_epochs"],
                   "date": time.strftime("%Y-%m-%d %H:%M")}
            with open(RECORDS, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


def table() -> str:
    from easydd.sweep import t_interval
    recs = [json.loads(x) for x in RECORDS.read_text().splitlines()]
    lines = ["| preset | seeds | fp32 % | bf16 + compile % | paired diff [95 % CI] | seeds up/down | "
             "distil s fp32 -> fast (incl. evaluation) |", "|---|---|---|---|---|---|---|"]
    for preset in sorted({r["preset"] for r in recs}):
        by = {(r["path"], r["seed"]): r for r in recs if r["preset"] == preset}
        seeds = sorted(s for p, s in by if p == "fp32" and ("bf16-compile", s) in by)
        if not seeds:
            continue
        a = [100 * by["fp32", s]["test_mean"] for s in seeds]
        b = [100 * by["bf16-compile", s]["test_mean"] for s in seeds]
        d = [y - x for x, y in zip(a, b)]
        m, lo, hi = t_interval(d)
        ta = statistics.median(by["fp32", s]["seconds"] for s in seeds)
        tb = statistics.median(by["bf16-compile", s]["seconds"] for s in seeds)
        lines.append(f"| {preset} | {len(seeds)} | {statistics.fmean(a):.2f} | {statistics.fmean(b):.2f} | "
                     f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}] | {sum(x > 0 for x in d)}/{sum(x < 0 for x in d)} | "
                     f"{ta:.0f} -> {tb:.0f} |")
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="dsa-mnist-ipc1-cpu")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--num-models", type=int, default=3)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        table()
    else:
        run(a)


if __name__ == "__main__":
    main()
