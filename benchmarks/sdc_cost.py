"""Time per distillation iteration with and without the SDC term (the README's "extra cost" column).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src \
        python benchmarks/sdc_cost.py --preset dm-mnist-ipc10-cpu --iterations 5

Both variants are built from the same preset and seed and timed in the same process, alternating, one thread;
the ratio is the median per-iteration time with lambda_sdc > 0 over lambda_sdc = 0. Writes
benchmarks/results/sdc_cost.json (appends one record per run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from easydd.config import build_config
from easydd.data import load_dataset
from easydd.methods import get_method, method_params


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="dm-mnist-ipc10-cpu")
    ap.add_argument("--lambda-sdc", type=float, default=1.0)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "sdc_cost.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = build_config(a.preset, {"seed": 0}, method_params)
    ds = load_dataset(base.dataset)
    methods = {}
    for lam in (0.0, a.lambda_sdc):
        cfg = build_config(a.preset, {"seed": 0, "lambda_sdc": lam}, method_params)
        m = get_method(cfg.method)(cfg, ds, device=torch.device("cpu"))
        m.init_synthetic()
        m.setup()
        methods[lam] = m
    times = {lam: [] for lam in methods}
    for it in range(a.iterations):
        for lam, m in methods.items():  # alternate, so machine noise hits both variants alike
            t = time.perf_counter()
            m.step(it)
            times[lam].append(time.perf_counter() - t)
    med = {lam: statistics.median(v) for lam, v in times.items()}
    rec = {"date": time.strftime("%Y-%m-%d %H:%M"), "preset": a.preset, "lambda_sdc": a.lambda_sdc,
           "iterations": a.iterations, "threads": a.threads,
           "seconds_per_iteration": {str(k): v for k, v in times.items()},
           "median_s": {str(k): v for k, v in med.items()}, "ratio": med[a.lambda_sdc] / med[0.0],
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
           "load_average": os.getloadavg()}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(old + [rec], indent=1) + "\n")
    print(f"{a.preset}: {med[0.0]:.2f} s/it without SDC, {med[a.lambda_sdc]:.2f} s/it with lambda_sdc="
          f"{a.lambda_sdc:g}: x{rec['ratio']:.2f}")


if __name__ == "__main__":
    main()
