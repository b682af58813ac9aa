"""Expert generation: wall time with 1 process vs 2 processes (torch.distributed, gloo, disjoint experts).

The single process uses all cores (torch threads = cpu count); with P processes each uses cpu_count / P threads,
as `easydd experts --nproc P` / torchrun would. The two buffers are checked to hold the same trajectories.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src \
        .venv/bin/python benchmarks/trajectory/bench_experts.py

Writes benchmarks/trajectory/experts.json and experts.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="ConvNetW32")
    p.add_argument("--num-experts", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=2000)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-experts-"))
    rows = []
    load0 = os.getloadavg()
    try:
        for nproc in (1, 2):
            out = tmp / f"p{nproc}"
            cmd = [sys.executable, "-m", "easydd.cli.experts", "--dataset", args.dataset, "--model", args.model,
                   "--num-experts", str(args.num_experts), "--epochs", str(args.epochs), "--subset",
                   str(args.subset), "--out", str(out), "--nproc", str(nproc), "--no-progress"]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            wall = time.perf_counter() - t0
            if r.returncode:
                print(r.stdout[-2000:], r.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"nproc={nproc} failed")
            rows.append({"nproc": nproc, "wall_seconds": round(wall, 1), "load_avg_1min_at_end": os.getloadavg()[0],
                         "log": r.stdout.strip().splitlines()[-6:]})
            print(rows[-1], flush=True)
        sys.path.insert(0, str(HERE.parents[1] / "src"))
        from easydd.experts import ExpertBuffer
        a, b = ExpertBuffer(tmp / "p1"), ExpertBuffer(tmp / "p2")
        maxdiff = max(float((a.params(i, -1) - b.params(i, -1)).abs().max()) for i in range(len(a)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from bench_memory import machine
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "load_avg_at_start": load0, "load_avg_at_end": os.getloadavg(),
            "settings": vars(args), "max_abs_param_diff_1proc_vs_2proc": maxdiff,
            "ratio_wall_1proc_over_2proc": round(rows[0]["wall_seconds"] / rows[1]["wall_seconds"], 3),
            "command": "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src .venv/bin/python "
                       "benchmarks/trajectory/bench_experts.py " + " ".join(sys.argv[1:])}
    (HERE / "experts.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    s = args
    md = ["# Expert generation: 1 vs 2 processes", "",
          f"- date: {meta['date']}", f"- machine: {meta['machine']} (2 cores: 2 processes x 1 thread vs 1 process x "
                                     "2 threads)",
          f"- load average at start {tuple(round(x, 1) for x in load0)}, at end "
          f"{tuple(round(x, 1) for x in meta['load_avg_at_end'])} (shared machine)",
          f"- work: {s.num_experts} experts x {s.epochs} epochs, {s.model} on a {s.subset}-image subset of {s.dataset}",
          f"- command: `{meta['command']}`", "",
          "| processes | wall time (s) |", "|---|---|"]
    md += [f"| {r['nproc']} | {r['wall_seconds']:.1f} |" for r in rows]
    md += ["", f"Ratio wall(1 process) / wall(2 processes): **{meta['ratio_wall_1proc_over_2proc']:.2f}x**.",
           f"Largest parameter difference between the two buffers: {maxdiff:.2e} (same seeds per expert index; "
           "different thread counts change floating-point summation order)."]
    (HERE / "experts.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
