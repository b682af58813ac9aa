"""Evaluation throughput: five ConvNet evaluation models on an IPC-10 MNIST set (herding-free: a random real
subset, seed 0), trained one after another vs together (torch.func.stack_module_state + vmap).

Each mode runs in a fresh process so that peak memory (ru_maxrss) is its own. Modes alternate over --repeats
rounds and the median is reported, because timings on a shared 2-core machine are noisy.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 python benchmarks/eval_throughput.py --epochs 30
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(mode: str, epochs: int, ipc: int) -> None:
    import torch
    from easydd.augment import DSA
    from easydd.data import load_dataset
    from easydd.methods.selection import select
    from easydd.runtime import PeakMemory
    from easydd.train import Ensemble, TrainSpec
    torch.set_num_threads(int(os.environ.get("EASYDD_THREADS", os.cpu_count() or 1)))
    ds = load_dataset("mnist")
    d = select(ds, "random", ipc, seed=0)
    base = PeakMemory.rss_mib()
    t = time.perf_counter()
    ens = Ensemble("ConvNet", 1, 10, (28, 28), seeds=list(range(5)), stacked=(mode == "stacked"))
    ens.train(d.images, d.labels, TrainSpec(epochs=epochs), aug=DSA("color_crop_cutout_scale_rotate"), seed=0)
    train_s = time.perf_counter() - t
    acc = ens.accuracy(ds.x_test[:2000], ds.y_test[:2000]).tolist()
    print(json.dumps({"mode": mode, "train_seconds": train_s, "peak_rss_mib": PeakMemory.rss_mib(),
                      "rss_before_mib": base, "acc_first2000": acc}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "eval_throughput.json"))
    a = ap.parse_args()
    if a.child:
        child(a.child, a.epochs, a.ipc)
        return
    runs = {"sequential": [], "stacked": []}
    for r in range(a.repeats):
        for mode in ("sequential", "stacked"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--epochs", str(a.epochs),
                                  "--ipc", str(a.ipc)], capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(mode, runs[mode][-1]["train_seconds"], flush=True)
    med = {m: statistics.median(x["train_seconds"] for x in v) for m, v in runs.items()}
    mem = {m: statistics.median(x["peak_rss_mib"] for x in v) for m, v in runs.items()}
    res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "torch_threads": int(os.environ.get("EASYDD_THREADS", os.cpu_count() or 1)),
           "command": f"python benchmarks/eval_throughput.py --epochs {a.epochs} --ipc {a.ipc} --repeats {a.repeats}",
           "setting": f"5 ConvNet models, MNIST IPC {a.ipc} (random real subset), DSA, {a.epochs} epochs",
           "median_train_seconds": med, "median_peak_rss_mib": mem,
           "speedup_stacked_over_sequential": med["sequential"] / med["stacked"], "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
