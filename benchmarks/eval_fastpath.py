"""The evaluation protocol on the fast path (eval_precision=bf16, eval_compile=true) against eager fp32: the same
distilled sets, the same evaluation seeds (each network's initial weights, batches and augmentation draws are the
same both ways), accuracy per network and seconds per set.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src .venv/bin/python \
        benchmarks/eval_fastpath.py --sets RUN_OR_FILE ... --epochs 300 --num-models 3 --threads 1

Writes benchmarks/results/eval_fastpath.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sets", nargs="+", required=True, help="run directories or .safetensors distilled files")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--num-models", type=int, default=3)
    p.add_argument("--aug", default="dsa")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    import torch
    from easydd.data import load_dataset
    from easydd.distilled import Distilled
    from easydd.evaluate import evaluate_distilled
    from easydd.fastpass import passes_for
    from easydd.runtime import cpu_name
    torch.set_num_threads(a.threads)
    fast = passes_for("bf16", True, torch.device("cpu"))  # one template per architecture for every set
    rows = []
    for target in a.sets:
        d = Distilled.load(target)
        ds = load_dataset(d.meta["dataset"], zca=bool(d.meta.get("zca", False)))
        row = {"set": str(target), "dataset": ds.name, "images": len(d)}
        for name, passes in (("eager", None), ("fast", fast)):
            t0 = time.perf_counter()
            r = evaluate_distilled(d, ds, models=["ConvNet"], num_models=a.num_models, epochs=a.epochs, aug=a.aug,
                                   progress=False, device="cpu", passes=passes)
            row[f"{name}_accs"] = r["models"]["ConvNet"]["accs"]
            row[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        diffs = [f - e for f, e in zip(row["fast_accs"], row["eager_accs"])]
        row["mean_diff_points"] = 100 * statistics.mean(diffs)
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(), "torch": torch.__version__,
            "threads": a.threads, "load_avg_at_end": os.getloadavg(), "settings": vars(a),
            "command": "python benchmarks/eval_fastpath.py " + " ".join(sys.argv[1:])}
    out = HERE / "results"
    (out / "eval_fastpath.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = ["# Evaluation on the fast path (bf16 + compile) vs eager fp32", "",
          f"{meta['date']}, {meta['cpu']}, torch {meta['torch']}, {a.threads} thread(s), load average at the end "
          f"{tuple(round(x, 1) for x in meta['load_avg_at_end'])} (a shared machine: compare within a row). "
          f"ConvNet x {a.num_models}, {a.epochs} epochs, aug {a.aug}, the same evaluation seeds both ways. "
          f"Command: `{meta['command']}`.", "",
          "| set | images | eager accs (%) | fast accs (%) | mean diff (points) | eager s | fast s | ratio |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['set']} | {r['images']} | {', '.join(f'{100 * v:.2f}' for v in r['eager_accs'])} | "
                  f"{', '.join(f'{100 * v:.2f}' for v in r['fast_accs'])} | {r['mean_diff_points']:+.2f} | "
                  f"{r['eager_s']:.0f} | {r['fast_s']:.0f} | {r['fast_s'] / r['eager_s']:.2f} |")
    (out / "eval_fastpath.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
