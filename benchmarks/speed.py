"""Seconds per iteration against the machine's own measured limits, in one run (issue 14).

    python benchmarks/speed.py                 # peaks, the goal ratio, DC/DSA/DM at IPC 1 and 10, MTT at IPC 1, 10
    python benchmarks/speed.py --ipcs 1        # IPC 1 only (about 10 minutes on 2 cores)
    python benchmarks/speed.py --skip dc:10 dsa:10   # leave out rows (DC/DSA IPC 10 eager: ~4 min an iteration)
    python benchmarks/speed.py --append --methods dc dsa --ipcs 10 --outer-steps 2   # those rows, scaled (below)
    python benchmarks/speed.py --table         # speed.md from speed.json

What it measures, in this order, in one session (every method row in a subprocess of its own, so its peak RSS is
its own):
1. The machine: fp32 and bf16 matmul (4096^2) and a ConvNet-3 forward+backward on 256 MNIST-sized images, eager
   fp32, bf16 autocast, and compiled bf16 autocast; GFLOP/s from torch's FlopCounterMode.
2. The unit-free goal: one DSA MNIST IPC 1 iteration at real batch 64 divided by ten plain fp32 forward+backward
   passes (parameter gradients) of a ConvNet-3 on 64 real images, measured in the same process, interleaved.
   Issue 14 asks for <= 0.5 (it was 1.26).
3. DC, DSA, DM on MNIST at their reference settings (real batch 256, reference loops), each as eager fp32 (the
   reference numerics) and with precision=bf16 compile=true: median seconds per iteration after one warm-up
   iteration (which holds the compilation), FLOPs per iteration (counted on the fp32 variant), achieved GFLOP/s
   and its fraction of the measured fp32 peak, peak RSS.
4. MTT on MNIST (ConvNet-3, IPC 1 and 10, the whole synthetic set per student step) at syn_steps 10/20/30, with
   the full unroll (``unroll=graph``, the reference) and the two-pass one (``unroll=adjoint``, memory flat in
   syn_steps). The expert buffer is a real but short one made first (1 expert, 3 epochs on 1024 images): the cost
   of an iteration does not depend on how long the experts trained, only on the architecture and syn_steps.
The reference code's figures on this machine type are recorded numbers (seconds per iteration, 2 threads,
tuned allocator unless said), not measured here; the ratio column compares with them.

Writes benchmarks/results/speed.json and speed.md (machine, torch, threads, allocator, load in the header), or
<out>.json / .md with `--out` (another CPU model's measurements in files of their own).
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
OUT = HERE / "results"

# the reference code (DC/DSA/DM repositories), seconds per outer iteration, recorded 2026-11 on a 2-core AMD EPYC
# side by side with easydd (2 threads): tuned allocator where measured, else glibc's default
REFERENCE_CODE = {
    ("dsa", 1, 64): (0.93, "tuned allocator"),
    ("dsa", 1, 256): (3.4, "tuned allocator"),
    ("dc", 1, 256): (7.7, "default allocator"),
    ("dsa", 10, 256): (175.0, "tuned allocator"),
    ("dc", 10, 256): (230.0, "default allocator"),
    ("dm", 1, 256): (2.4, "default allocator"),
    ("dm", 10, 256): (3.1, "default allocator"),
}
# mtt-distillation on MNIST, ConvNet-3, seconds per iteration and peak RSS GB by (ipc, syn_steps), default allocator
REFERENCE_MTT = {(1, 10): (0.77, None), (1, 20): (1.56, None), (1, 30): (2.30, None),
                 (10, 10): (11.3, 5.0), (10, 20): (26.0, 8.3), (10, 30): (37.0, 12.0)}
MTT_SYN_STEPS = (10, 20, 30)


def median_time(fn, n: int, warm: int = 1) -> tuple[float, float]:
    """(median seconds over n calls, seconds of the first warm-up call)."""
    t0 = time.perf_counter()
    for _ in range(warm):
        fn()
    first = time.perf_counter() - t0
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), first


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def convnet_pass(batch: int, mode: str):
    """A ConvNet-3 forward+backward (parameter gradients) on ``batch`` MNIST-sized images."""
    import torch
    import torch.nn.functional as F
    from easydd.nets import make_network
    net = make_network("ConvNet", 1, 10, (28, 28), 0)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    fwd = torch.compile(net) if mode == "bf16-compiled" else net
    params = list(net.parameters())

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            out = fwd(x)
        return torch.autograd.grad(F.cross_entropy(out.float(), y), params)
    return step


def machine_peaks() -> dict:
    import torch
    out = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(4096, 4096, dtype=dt), torch.randn(4096, 4096, dtype=dt)
        s, _ = median_time(lambda: a @ b, 5)
        out[f"matmul_{str(dt)[6:]}_gflops"] = 2 * 4096 ** 3 / s / 1e9
    flops = count_flops(convnet_pass(256, "fp32"))
    out["convnet_b256_gflop"] = flops / 1e9
    for mode in ("fp32", "bf16", "bf16-compiled"):
        s, _ = median_time(convnet_pass(256, mode), 5, warm=2)
        out[f"convnet_b256_{mode}_ms"] = 1000 * s
        out[f"convnet_b256_{mode}_gflops"] = flops / s / 1e9
    return out


def mtt_buffer(root: Path) -> Path:
    """A short real expert buffer for the MTT rows: 1 ConvNet expert, 3 epochs on 1024 MNIST images."""
    from easydd.experts import MANIFEST, train_experts
    out = root / "mnist_ConvNet_speed"
    if not (out / MANIFEST).exists():
        train_experts("mnist", out, num_experts=1, epochs=3, subset=1024, progress=False, log=lambda *a: None)
    return out


def method_setup(method: str, ipc: int, batch_real: int, fast: bool, method_args: dict | None = None):
    from easydd.config import build_config
    from easydd.data import load_dataset
    from easydd.methods import get_method, method_params
    over = dict(method=method, dataset="mnist", ipc=ipc, model="ConvNet", iterations=10 ** 6, seed=0)
    if method == "mtt":
        # the reference image and step-size rates (lr_img 100, lr_lr 1e-7): easydd's defaults (1000, 1e-5) are
        # tuned for the 150-iteration CPU presets and diverge within 3 iterations on this short buffer at syn_steps 20
        over["method_args"] = dict(method_args or {}, expert_epochs=2, max_start_epoch=1, batch_syn=0, lr_img=100.0,
                                   lr_lr=1e-7, lr_teacher=0.01)
    else:
        over["batch_real"] = batch_real
        if method_args:
            over["method_args"] = dict(method_args)
    if fast:
        over.update(precision="bf16", compile=True)
    cfg = build_config(None, over, method_params)
    ds = load_dataset("mnist", seed=0)
    m = get_method(method)(cfg, ds)
    m.init_synthetic()
    m.setup()
    return m


def goal_ratio(n: int) -> dict:
    """One DSA IPC 1 step at real batch 64 / ten plain fp32 forward+backward passes on 64 images. The three are
    timed interleaved (ten passes, eager step, fast step, repeated n times), so a change of load hits all alike."""
    ten = convnet_pass(64, "fp32")
    runs = {"ten": lambda: [ten() for _ in range(10)]}
    for fast in (False, True):
        m = method_setup("dsa", 1, 64, fast)
        for it in range(2):  # warm-up (the compilation)
            m.step(it)
        its = iter(range(2, 10 ** 6))
        runs["fast" if fast else "fp32"] = (lambda m=m, its=its: m.step(next(its)))
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(n):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"ten_fp32_passes_b64_s": med["ten"], "dsa_step_b64_fp32_s": med["fp32"],
            "dsa_step_b64_bf16_compiled_s": med["fast"], "ratio_fp32": med["fp32"] / med["ten"],
            "ratio_bf16_compiled": med["fast"] / med["ten"],
            "per_round_ratio_bf16_compiled": [f / t for f, t in zip(times["fast"], times["ten"])]}


def scaled_outer_steps(m, n: int, fast: bool) -> dict:
    """DC/DSA at IPC >= 10: an iteration is ``outer`` identical outer steps (the class-wise match and an image update)
    with the inner loop (training the network on the synthetic set) between consecutive ones, i.e.
    outer * match + (outer - 1) * inner. The method was built with only k of its outer steps; each timed iteration is
    split into its inner loops (timed around ``_train_net``) and the rest, and both are scaled to the reference
    schedule. FLOPs are split and scaled the same way."""
    from easydd.methods.gradient import default_loops
    outer, k = default_loops(m.ipc)[0], m.outer
    if k < 2 or k >= outer:
        raise SystemExit(f"--outer-steps must be between 2 and {outer - 1}")
    train, inner, last = m._train_net, [], []

    def timed(*args):
        t = time.perf_counter()
        train(*args)
        inner.append(time.perf_counter() - t)
        last[:] = args
    m._train_net = timed
    scale = lambda total, inn: (total - inn) / k * outer + inn / (k - 1) * (outer - 1)  # noqa: E731
    est = []
    for it in range(n + 1):  # the first holds the compilation
        inner.clear()
        t = time.perf_counter()
        m.step(it)
        est.append(scale(time.perf_counter() - t, sum(inner)))
    row = {"s_per_it": statistics.median(est[1:]), "first_it_s": est[0], "outer_steps_timed": k, "outer_loop": outer}
    if not fast:
        f_step = count_flops(lambda: m.step(n + 1))
        row["gflop_per_it"] = scale(f_step, (k - 1) * count_flops(lambda: train(*last))) / 1e9
    return row


def one(spec: dict) -> dict:
    """One method row (run in its own process)."""
    import torch
    from easydd.runtime import PeakMemory  # VmHWM: ru_maxrss would start at the parent's peak
    torch.set_num_threads(spec["threads"])
    load = os.getloadavg()
    args = dict(spec.get("method_args") or {})
    if spec.get("outer_steps"):  # build the method with only this many outer steps (scaled_outer_steps)
        args["outer_loop"] = spec["outer_steps"]
    m = method_setup(spec["method"], spec["ipc"], spec.get("batch_real", 256), spec["fast"], args or None)
    if spec.get("outer_steps"):
        return dict(spec, **scaled_outer_steps(m, spec["n"], spec["fast"]), peak_rss_mib=PeakMemory.rss_mib(),
                    date=time.strftime("%Y-%m-%d %H:%M"), load_at_start=load)
    it = iter(range(10 ** 6))
    s, first = median_time(lambda: m.step(next(it)), spec["n"], warm=1)
    row = dict(spec, s_per_it=s, first_it_s=first, peak_rss_mib=PeakMemory.rss_mib(), date=time.strftime("%Y-%m-%d %H:%M"),
               load_at_start=load)
    if not spec["fast"]:
        row["gflop_per_it"] = count_flops(lambda: m.step(next(it))) / 1e9
    return row


def row_specs(a) -> list[dict]:
    """Every row this run measures, in order (``--skip method:ipc`` leaves some out)."""
    skip = set(a.skip)
    specs = []
    for ipc in a.ipcs:
        for method in a.methods:
            if f"{method}:{ipc}" in skip:
                continue
            n = a.n if (ipc == 1 or method == "dm") else 2
            if method == "mtt":
                buf = str(mtt_buffer(HERE.parent / "buffers"))
                specs += [dict(method="mtt", ipc=ipc, fast=False, n=n, threads=a.threads, method_args=dict(
                    syn_steps=k, unroll=u, buffer=buf)) for k in MTT_SYN_STEPS for u in ("graph", "adjoint")]
                continue
            scaled = dict(outer_steps=a.outer_steps) if (a.outer_steps and ipc >= 10 and method in ("dc", "dsa")) else {}
            specs += [dict(method=method, ipc=ipc, batch_real=256, fast=fast, n=a.n if scaled else n,
                           threads=a.threads, **scaled) for fast in (False, True)]
    return specs


def measure_row(spec: dict) -> dict:
    """One row in a process of its own (its peak RSS is its own); a failure becomes the row's error."""
    p = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
    row = (dict(spec, error=p.stderr.strip().splitlines()[-1:]) if p.returncode != 0
           else json.loads(p.stdout.strip().splitlines()[-1]))
    print(json.dumps(row), flush=True)
    return row


def row_key(r: dict) -> tuple:
    ma = r.get("method_args") or {}
    return r["method"], r["ipc"], ma.get("syn_steps"), ma.get("unroll")


def mtt_reference(r: dict) -> None:
    ref = REFERENCE_MTT.get((r["ipc"], r["method_args"]["syn_steps"]))
    if ref and "s_per_it" in r:
        r["reference_code_s"], r["reference_code_rss_gb"] = ref
        r["reference_code_allocator"] = "default allocator"
        r["ratio_to_reference_code"] = r["s_per_it"] / ref[0]


def machine_header(threads: int) -> dict:
    import torch
    from easydd.fastpass import native_bf16
    from easydd.runtime import allocator_is_tuned, cpu_name
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "cpu": cpu_name(), "native_bf16": native_bf16(torch.device("cpu")), "torch": torch.__version__,
            "threads": threads, "allocator_tuned": allocator_is_tuned(), "load_at_start": os.getloadavg()}


def run(a) -> None:
    import torch
    torch.set_num_threads(a.threads)
    res = {"header": machine_header(a.threads), "command": "python benchmarks/speed.py " + " ".join(a.argv)}
    print("peaks ...", flush=True)
    res["peaks"] = machine_peaks()
    print(json.dumps(res["peaks"]), flush=True)
    print("goal ratio ...", flush=True)
    res["goal"] = goal_ratio(a.n)
    print(json.dumps(res["goal"]), flush=True)
    rows = [measure_row(spec) for spec in row_specs(a)]
    finish(res, rows, a.out)


def finish(res: dict, rows: list[dict], name: str = "speed") -> None:
    """Derived columns (achieved GFLOP/s, fraction of peak, ratio to the reference code), then the files."""
    by = {row_key(r): r.get("gflop_per_it") for r in rows if not r["fast"]}
    for r in rows:
        flop = by.get(row_key(r))
        if flop and "s_per_it" in r:
            r["gflops_achieved"] = flop / r["s_per_it"]
            r["fraction_of_fp32_peak"] = r["gflops_achieved"] / res["peaks"]["matmul_float32_gflops"]
        if r["method"] == "mtt":
            mtt_reference(r)
            continue
        ref = REFERENCE_CODE.get((r["method"], r["ipc"], r["batch_real"]))
        if ref and "s_per_it" in r:
            r["reference_code_s"], r["reference_code_allocator"] = ref
            r["ratio_to_reference_code"] = r["s_per_it"] / ref[0]
    res["methods"] = rows
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    table(name)


def append(a) -> None:
    """Measure only the selected method rows and merge them into speed.json (a row with the same method, IPC, path,
    syn_steps and unroll is replaced); the peaks and the goal ratio stay as they were. Every row keeps its own date
    and load, and the command is recorded beside the first one."""
    res = json.loads((OUT / f"{a.out}.json").read_text())
    new = [measure_row(spec) for spec in row_specs(a)]
    keys = {(row_key(r), r["fast"]) for r in new}
    rows = [r for r in res["methods"] if (row_key(r), r["fast"]) not in keys] + new
    res.setdefault("appended", []).append({"command": "python benchmarks/speed.py " + " ".join(a.argv),
                                           "date": time.strftime("%Y-%m-%d %H:%M"), "rows": len(new)})
    finish(res, rows, a.out)


def table(name: str = "speed") -> None:
    res = json.loads((OUT / f"{name}.json").read_text())
    h, p, g = res["header"], res["peaks"], res["goal"]
    f = lambda v, nd=2: "-" if v is None else f"{v:.{nd}f}"  # noqa: E731
    lines = ["# Speed against the machine's own limits", "",
             f"Generated by `{res['command']}` on {h['date']}: {h['machine']} ({h['cpu']}), native bf16 "
             f"{h['native_bf16']}, torch {h['torch']}, {h['threads']} threads, tuned allocator "
             f"{h['allocator_tuned']}, load average at start {', '.join(f'{x:.1f}' for x in h['load_at_start'])} "
             "(a load above the thread count means other work shared the cores: then compare rows as ratios)."
             + (f" {res['note']}" if res.get("note") else "")
             + "".join(f" Appended by `{x['command']}` on {x['date']} ({x['rows']} rows; each row's date and load "
                       "are in speed.json)." for x in res.get("appended", [])), "",
             "## The machine", "",
             f"- matmul 4096^2: fp32 {p['matmul_float32_gflops']:.0f} GFLOP/s, bf16 {p['matmul_bfloat16_gflops']:.0f} "
             "GFLOP/s",
             f"- ConvNet-3 forward+backward, 256 MNIST images ({p['convnet_b256_gflop']:.1f} GFLOP): fp32 "
             f"{p['convnet_b256_fp32_ms']:.0f} ms ({p['convnet_b256_fp32_gflops']:.0f} GFLOP/s), bf16 autocast "
             f"{p['convnet_b256_bf16_ms']:.0f} ms, compiled bf16 autocast {p['convnet_b256_bf16-compiled_ms']:.0f} ms "
             f"({p['convnet_b256_bf16-compiled_gflops']:.0f} GFLOP/s)", "",
             "## The unit-free goal (issue 14: <= 0.5)", "",
             f"One DSA MNIST IPC 1 iteration at real batch 64 / ten plain fp32 forward+backward passes of ConvNet-3 "
             f"on 64 images ({g['ten_fp32_passes_b64_s']:.3f} s): eager fp32 **{g['ratio_fp32']:.2f}** "
             f"({g['dsa_step_b64_fp32_s']:.3f} s), precision=bf16 compile=true **{g['ratio_bf16_compiled']:.2f}** "
             f"({g['dsa_step_b64_bf16_compiled_s']:.3f} s)"
             + (f"; measured {g['date']} by `{g['command']}`, interleaved, load {g['load_at_start'][0]:.1f}."
                if "date" in g else "."), "",
             "## Methods at reference settings (MNIST, ConvNet-3, real batch 256)", "",
             "| method | IPC | path | s / iteration | x faster than eager | first iteration s | GFLOP / it | GFLOP/s | "
             "of fp32 peak | peak RSS MiB | reference code s (allocator) | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    eager = {(r["method"], r["ipc"]): r.get("s_per_it") for r in res["methods"] if not r["fast"]}
    for r in (r for r in res["methods"] if r["method"] != "mtt"):
        path = "bf16 + compile" if r["fast"] else "fp32 eager"
        if "error" in r:
            lines.append(f"| {r['method'].upper()} | {r['ipc']} | {path} | failed: {r['error']} ||||||||")
            continue
        ref = (f"{r['reference_code_s']:g} ({r['reference_code_allocator']})" if "reference_code_s" in r else "-")
        e = eager.get((r["method"], r["ipc"]))
        gain = f"{e / r['s_per_it']:.2f}" if (r["fast"] and e) else "-"
        if r.get("outer_steps_timed"):
            path += f" ({r['outer_loop']} outer steps scaled from {r['outer_steps_timed']})"
        lines.append(f"| {r['method'].upper()} | {r['ipc']} | {path} | {r['s_per_it']:.3f} | {gain} | "
                     f"{r['first_it_s']:.1f} | "
                     f"{f(r.get('gflop_per_it'), 1)} | {f(r.get('gflops_achieved'), 0)} | "
                     f"{f(r.get('fraction_of_fp32_peak'))} | {r['peak_rss_mib']:.0f} | {ref} | "
                     f"{f(r.get('ratio_to_reference_code'))} |")
    lines += ["", "GFLOP / it counts the fp32 work of one iteration (FlopCounterMode); the bf16 + compile row does "
              "the same work, so its GFLOP/s is that work over its time. The first iteration of a compiled row holds "
              "the compilation. " + reference_note(h["cpu"]) + " A row measured with fewer threads or under load is "
              "slower than the machine allows."]
    lines += mtt_table([r for r in res["methods"] if r["method"] == "mtt"])
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def reference_note(cpu: str) -> str:
    """What the ratio column compares: the reference code's seconds were recorded on a 2-core AMD EPYC."""
    head = ("The reference code's seconds are recorded figures from a 2-core AMD EPYC (2 threads, recorded by this "
            "project in 2026-11)")
    if "EPYC" in cpu:
        return head + ", the CPU model of this run: the ratio column compares like with like."
    return (head + ", another CPU model than this run's, so the ratio column mixes two CPUs; easydd's eager fp32 ran "
            "at the reference code's speed when both were measured on one machine, so fast / eager is the same-machine "
            "ratio.")


def mtt_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    f = lambda v, nd=2: "-" if v is None else f"{v:.{nd}f}"  # noqa: E731
    graph = {(r["ipc"], r["method_args"]["syn_steps"]): r.get("s_per_it") for r in rows
             if r["method_args"]["unroll"] == "graph"}
    lines = ["", "## MTT (MNIST, ConvNet-3, whole synthetic set per student step, eager fp32)", "",
             "| IPC | syn_steps | unroll | s / iteration | time vs graph | GFLOP / it | GFLOP/s | of fp32 peak | "
             "peak RSS MiB | reference code s | ratio | reference code peak RSS GB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ma = r["method_args"]
        if "error" in r:
            lines.append(f"| {r['ipc']} | {ma['syn_steps']} | {ma['unroll']} | failed: {r['error']} |||||||||")
            continue
        g = graph.get((r["ipc"], ma["syn_steps"]))
        lines.append(f"| {r['ipc']} | {ma['syn_steps']} | {ma['unroll']} | {r['s_per_it']:.3f} | "
                     f"{f(r['s_per_it'] / g if g else None)} | {f(r.get('gflop_per_it'), 1)} | "
                     f"{f(r.get('gflops_achieved'), 0)} | {f(r.get('fraction_of_fp32_peak'))} | "
                     f"{r['peak_rss_mib']:.0f} | {f(r.get('reference_code_s'))} | "
                     f"{f(r.get('ratio_to_reference_code'))} | {f(r.get('reference_code_rss_gb'), 1)} |")
    lines += ["", "The buffer is one expert trained 3 epochs on 1024 images (made by the benchmark): an iteration's cost "
              "depends on the architecture, IPC and syn_steps, not on the experts' training. The reference code's "
              "seconds and peak RSS are recorded figures (mtt-distillation, the same AMD EPYC, default allocator)."]
    return lines


def _out_name(v: str) -> str:
    if not v or "/" in v or v.startswith(".") or v.endswith((".json", ".md")):
        raise argparse.ArgumentTypeError(f"--out {v!r}: a bare name such as speed-epyc (the files get .json / .md)")
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipcs", nargs="+", type=int, default=[1, 10])
    ap.add_argument("--methods", nargs="+", default=["dc", "dsa", "dm", "mtt"])
    ap.add_argument("--skip", nargs="*", default=[], help="rows to leave out, as method:ipc (e.g. dc:10 dsa:10)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n", type=int, default=5, help="timed iterations per row (IPC 10 DC/DSA/MTT: 2)")
    ap.add_argument("--outer-steps", type=int, default=0,
                    help="DC/DSA IPC >= 10: time iterations of this many outer steps (>= 2) and scale to the reference "
                         "schedule (0: whole iterations)")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--goal-only", action="store_true", help="re-measure only the goal ratio into <out>.json")
    ap.add_argument("--append", action="store_true", help="measure only the selected rows into <out>.json")
    ap.add_argument("--out", default="speed", type=_out_name,
                    help="results name: benchmarks/results/<out>.json and .md (default speed); another CPU model's "
                         "measurements go to a file of their own, e.g. --out speed-epyc")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.argv = sys.argv[1:]
    if a.one:
        print(json.dumps(one(json.loads(a.one))))
    elif a.table:
        table(a.out)
    elif a.append:
        append(a)
    elif a.goal_only:
        import torch
        torch.set_num_threads(a.threads)
        res = json.loads((OUT / f"{a.out}.json").read_text())
        res["goal"] = goal_ratio(a.n)
        res["goal"].update(date=time.strftime("%Y-%m-%d %H:%M"), load_at_start=os.getloadavg(),
                           command="python benchmarks/speed.py " + " ".join(a.argv))
        (OUT / f"{a.out}.json").write_text(json.dumps(res, indent=1) + "\n")
        table(a.out)
    else:
        run(a)


if __name__ == "__main__":
    main()
