"""Expert training, eager fp32 vs the fast path (precision=bf16, compile=true), same seeds, one process.

Both buffers are trained in this process one after the other with the same recipe and seed (so expert i starts
from the same weights and sees the same batches and augmentation draws); reported per expert: seconds (the first
fast expert includes the compilation), final validation accuracy, and how far the fast trajectory's last epoch is
from the eager one (relative L2 distance of the parameters).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src \
        .venv/bin/python benchmarks/trajectory/bench_experts_fast.py --threads 1

Writes benchmarks/trajectory/experts_fast.json and experts_fast.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="ConvNetW32")
    p.add_argument("--num-experts", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=10000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    import torch
    from easydd.data import load_dataset
    from easydd.experts import ExpertBuffer, train_experts
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-experts-fast-"))
    load0 = os.getloadavg()
    recipe = dict(num_experts=args.num_experts, epochs=args.epochs, model=args.model, subset=args.subset,
                  progress=False, log=print)
    try:
        bufs = {}
        for name, fast in (("eager fp32", {}), ("bf16 + compile", dict(precision="bf16", compile=True))):
            bufs[name] = ExpertBuffer(train_experts(ds, tmp / name.replace(" ", "_"), **recipe, **fast))
        rows = []
        e, f = bufs["eager fp32"], bufs["bf16 + compile"]
        for i in range(args.num_experts):
            re_, rf = e.record(i), f.record(i)
            a, b = e.params(i, -1), f.params(i, -1)
            rows.append({"expert": i, "eager_s": round(re_["seconds"], 1), "fast_s": round(rf["seconds"], 1),
                         "eager_val_acc": re_["val_acc"], "fast_val_acc": rf["val_acc"],
                         "final_param_rel_dist": float((a - b).norm() / a.norm())})
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from bench_memory import machine
    steady = rows[1:] or rows
    ratio = statistics.median(r["fast_s"] / r["eager_s"] for r in steady)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "threads": args.threads, "load_avg_at_start": load0, "load_avg_at_end": os.getloadavg(),
            "settings": vars(args), "median_fast_over_eager_after_the_first": round(ratio, 3),
            "command": "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src .venv/bin/python "
                       "benchmarks/trajectory/bench_experts_fast.py " + " ".join(sys.argv[1:])}
    (HERE / "experts_fast.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    s = args
    md = ["# Expert training: eager fp32 vs bf16 + compile", "",
          f"- date: {meta['date']}; machine: {meta['machine']}; {s.threads} thread(s)",
          f"- load average at start {tuple(round(x, 1) for x in load0)}, at end "
          f"{tuple(round(x, 1) for x in meta['load_avg_at_end'])} (a shared machine: compare within the table)",
          f"- work: {s.num_experts} experts x {s.epochs} epochs, {s.model} on a {s.subset}-image subset of "
          f"{s.dataset}, SGD lr 0.01, batch 256, DSA; same seeds both ways",
          f"- command: `{meta['command']}`", "",
          "| expert | eager fp32 (s) | bf16 + compile (s) | val acc eager | val acc fast | final params, relative distance |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r['expert']} | {r['eager_s']:.1f} | {r['fast_s']:.1f} | {r['eager_val_acc']:.4f} | "
           f"{r['fast_val_acc']:.4f} | {r['final_param_rel_dist']:.4f} |" for r in rows]
    md += ["", f"Median time ratio fast / eager over the experts after the first (the first fast one pays the "
               f"compilation): **{ratio:.2f}**."]
    (HERE / "experts_fast.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
