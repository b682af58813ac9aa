"""Peak memory and time per iteration of MTT (full unroll) vs TESLA (constant memory) at syn_steps 10, 20, 40,
and of MTT with ``unroll=adjoint`` (the exact two-pass backward: memory flat in syn_steps).

Each setting runs in a FRESH process (peak RSS = ru_maxrss of that process, so settings cannot inherit each
other's peaks). Reported: peak RSS of the whole process, the RSS just before the first iteration (torch +
dataset + buffer header), and their difference (what the iterations themselves added), and the mean wall time
per iteration after one warm-up iteration.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src \
        .venv/bin/python benchmarks/trajectory/bench_memory.py --buffer buffers/mnist_ConvNetW32_cpu

Writes benchmarks/trajectory/memory.json and memory.md (``--append``: keep the rows of other settings).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(args) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    from easydd.config import build_config
    from easydd.data import load_dataset
    from easydd.methods import get_method, method_params
    ds = load_dataset(args.dataset)
    method = args.method.split("-")[0]
    extra = {"exact": True} if args.method == "tesla-exact" else {}
    if args.method == "mtt-adjoint":
        extra["unroll"] = "adjoint"
    if method == "tesla":
        extra["soft_labels"] = False  # same labels as MTT: only the backward differs
    cfg = build_config(None, dict(method=method, dataset=args.dataset, ipc=args.ipc, model=args.model,
                                  buffer=args.buffer, syn_steps=args.syn_steps, expert_epochs=2,
                                  max_start_epoch=2, batch_syn=args.batch_syn, lr_img=100.0, lr_lr=1e-5,
                                  seed=0, **extra), method_params)
    m = get_method(method)(cfg, ds)
    m.init_synthetic()
    m.setup()
    before = rss_now_mib()
    times = []
    for it in range(args.iters + 1):
        t0 = time.perf_counter()
        m.step(it)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": args.method, "syn_steps": args.syn_steps, "ipc": args.ipc, "images": int(m.images.shape[0]),
            "batch_syn": args.batch_syn, "model": args.model, "dataset": args.dataset, "threads": args.threads,
            "num_params": m.buffer.num_params, "peak_rss_mib": round(peak, 1),
            "rss_before_mib": round(before, 1), "iter_peak_minus_before_mib": round(peak - before, 1),
            "sec_per_iter": round(sum(times[1:]) / args.iters, 3), "iters_timed": args.iters,
            "warmup_sec": round(times[0], 3)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--buffer", default="buffers/mnist_ConvNetW32_cpu")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="ConvNetW32")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--batch-syn", type=int, default=0, help="0: the whole IPC-10 set (100 images) per step")
    p.add_argument("--steps", default="10,20,40")
    p.add_argument("--methods", default="mtt,mtt-adjoint,tesla,tesla-exact")
    p.add_argument("--append", action="store_true", help="merge into memory.json instead of replacing it")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true", help="rewrite memory.md from memory.json")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", default="mtt", help=argparse.SUPPRESS)
    p.add_argument("--syn-steps", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args)), flush=True)
        return
    if args.report_only:
        d = json.loads((HERE / "memory.json").read_text())
        (HERE / "memory.md").write_text(markdown(d["meta"], d["rows"]))
        return
    rows = []
    load0 = os.getloadavg()
    t_start = time.time()
    for method in args.methods.split(","):
        for n in [int(s) for s in args.steps.split(",")]:
            cmd = [sys.executable, __file__, "--one", "--method", method, "--syn-steps", str(n), "--buffer",
                   args.buffer, "--dataset", args.dataset, "--model", args.model, "--ipc", str(args.ipc),
                   "--batch-syn", str(args.batch_syn), "--iters", str(args.iters), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not line:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"setting {method} N={n} failed")
            r = json.loads(line[0][7:])
            r["load_avg_1min_at_end"] = os.getloadavg()[0]
            rows.append(r)
            print(json.dumps(r), flush=True)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "load_avg_at_start": load0, "load_avg_at_end": os.getloadavg(),
            "wall_seconds": round(time.time() - t_start, 1),
            "command": "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src .venv/bin/python "
                       "benchmarks/trajectory/bench_memory.py " + " ".join(sys.argv[1:])}
    if args.append and (HERE / "memory.json").exists():
        old = json.loads((HERE / "memory.json").read_text())
        new_keys = {(r["method"], r["syn_steps"]) for r in rows}
        rows = [r for r in old["rows"] if (r["method"], r["syn_steps"]) not in new_keys] + rows
        meta["appended_to"] = old["meta"]
    (HERE / "memory.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (HERE / "memory.md").write_text(markdown(meta, rows))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}, torch {torch.__version__}"


def markdown(meta, rows) -> str:
    lines = ["# MTT vs TESLA: peak memory and time per iteration", "",
             f"- date: {meta['date']}", f"- machine: {meta['machine']}",
             f"- load average (1, 5, 15 min) at start {tuple(round(x, 1) for x in meta['load_avg_at_start'])}, "
             f"at end {tuple(round(x, 1) for x in meta['load_avg_at_end'])} (the machine is shared: times are "
             "noisy, memory is not)",
             f"- command: `{meta['command']}`"]
    if "appended_to" in meta:
        prev = meta["appended_to"]
        lines.append(f"- the rows of other settings are from {prev['date']} (`{prev['command']}`)")
    lines += ["",
             "Each row is a fresh process. `peak` = ru_maxrss; `before` = RSS after loading torch, the dataset and "
             "the synthetic set, just before iteration 0; `added` = peak - before (what the unroll costs). One thread "
             "per process. TESLA rows use hard labels (soft_labels=false) so that only the backward differs from "
             "MTT; `tesla-exact` is the exact-adjoint variant (keeps theta_k: syn_steps x num_params floats); `mtt-adjoint` "
             "is MTT with unroll=adjoint, the same exact two-pass backward (the full unroll's gradient). "
             "Model ConvNetW32 on MNIST, IPC 10 (100 images, all in every step), expert buffer "
             "`buffers/mnist_ConvNetW32_cpu`; `timed` iterations after one warm-up.", "",
             "| method | syn_steps | images/step | peak RSS (MiB) | before (MiB) | added (MiB) | s / iteration | timed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['syn_steps']} | {r['images'] if not r['batch_syn'] else r['batch_syn']} | "
                     f"{r['peak_rss_mib']:.0f} | {r['rss_before_mib']:.0f} | {r['iter_peak_minus_before_mib']:.0f} "
                     f"| {r['sec_per_iter']:.2f} | {r.get('iters_timed', 3)} |")
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["syn_steps"]] = r
    lines += ["", "Growth from the smallest to the largest syn_steps:", ""]
    for mth, d in by.items():
        ks = sorted(d)
        a, b = d[ks[0]], d[ks[-1]]
        lines.append(f"- {mth}: peak RSS x{b['peak_rss_mib'] / a['peak_rss_mib']:.2f} "
                     f"({(b['peak_rss_mib'] / a['peak_rss_mib'] - 1) * 100:+.1f}%), added memory "
                     f"{a['iter_peak_minus_before_mib']:.0f} -> {b['iter_peak_minus_before_mib']:.0f} MiB, "
                     f"time x{b['sec_per_iter'] / a['sec_per_iter']:.2f} (syn_steps {ks[0]} -> {ks[-1]})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
