"""Results for gradient and distribution matching, with and without SDC (issue: DC/DSA/DSAC/DM + SDC).

For each (dataset, ipc, method): lambda_sdc = 0 on every seed; a lambda sweep on the first seed, chosen on the
VALIDATION split (never the test split); the chosen lambda on the remaining seeds. Every set is evaluated with
`--num-models` ConvNets on the test split (final epoch) and `--val-models` on the validation split. The synthetic
set's mean GraDN is tracked against the fixed reference panel. Resumable: finished runs are read back from
results.jsonl. Then `--table` writes results.md and gradn_curves.png.

    python benchmarks/matching_results.py --datasets mnist --ipcs 1 --methods dc dsa dsac dm \
        --lambdas 0.1 1 10 --seeds 0 1 2
    python benchmarks/matching_results.py --datasets mnist --ipcs 1 --random --seeds 0 1 2   # the baseline
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path

from easydd.sweep import choose_on_validation

HERE = Path(__file__).resolve().parent


def key(r):
    return (r["dataset"], r["ipc"], r["method"], r["lambda_sdc"], r["seed"])


def load_done(path: Path) -> dict:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[key(r)] = r
    return done


def run_one(ds, dataset, ipc, method, lam, seed, a) -> dict:
    from easydd.config import build_config
    from easydd.distill import distill
    from easydd.evaluate import evaluate_distilled
    from easydd.methods import method_params
    over = dict(seed=seed, lambda_sdc=lam, eval_num_models=a.num_models, eval_epochs=a.eval_epochs,
                track_every=a.track_every, out_dir=a.runs, checkpoint_every=25)
    if a.iterations:
        over["iterations"] = a.iterations
    cfg = build_config(f"{method}-{dataset}-ipc{ipc}-cpu", over, method_params)
    if a.iterations:
        cfg.note += f"; this benchmark: {a.iterations} iterations"
    t = time.perf_counter()
    res = distill(cfg, ds, progress=False, resume=True)
    val = None  # the validation split only chooses lambda (first seed): --val-models 0 skips it on other seeds
    if a.val_models > 0:
        val = evaluate_distilled(res.distilled, ds, models=["ConvNet"], num_models=a.val_models,
                                 epochs=a.eval_epochs, split="val", seed=seed, progress=False)
    test = res.metrics["last"]["models"]["ConvNet"]
    curve = []
    with open(res.run_dir / "curves.csv") as f:
        for row in csv.DictReader(f):
            if row.get("gradn"):
                curve.append((int(row["iteration"]), float(row["gradn"])))
    return {"dataset": dataset, "ipc": ipc, "method": method, "lambda_sdc": lam, "seed": seed,
            "device": device_description(res.metrics.get("device", "cpu")),
            "test_accs": test["accs"], "test_mean": test["mean"],
            "val_mean": val["models"]["ConvNet"]["mean"] if val else None,
            "gradn_curve": curve, "iterations": cfg.iterations, "eval_epochs": res.metrics["last"]["epochs"],
            "note": cfg.note, "seconds": time.perf_counter() - t, "run_dir": str(res.run_dir),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def device_description(dev: str) -> str:
    import torch
    if str(dev).startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(dev))} (torch {torch.__version__})"
    return f"cpu: {os.cpu_count()}-core {platform.machine()} (torch {torch.__version__}, {torch.get_num_threads()} thread(s))"


def run_random(ds, dataset, ipc, seed, a) -> dict:
    """Random real images per class, evaluated like the DSA/DM sets (ConvNet, DSA, same epochs and models)."""
    from easydd.evaluate import evaluate_distilled
    from easydd.methods.selection import select
    t = time.perf_counter()
    d = select(ds, "random", ipc, seed=seed)
    test = evaluate_distilled(d, ds, models=["ConvNet"], num_models=a.num_models, epochs=a.eval_epochs, aug="dsa",
                              seed=seed, progress=False)["models"]["ConvNet"]
    return {"dataset": dataset, "ipc": ipc, "method": "random", "lambda_sdc": 0.0, "seed": seed,
            "test_accs": test["accs"], "test_mean": test["mean"], "gradn_curve": [], "iterations": 0,
            "eval_epochs": a.eval_epochs, "note": "random real images, evaluated with DSA",
            "seconds": time.perf_counter() - t, "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["mnist"])
    ap.add_argument("--ipcs", nargs="+", type=int, default=[1])
    ap.add_argument("--methods", nargs="+", default=["dc", "dsa", "dsac", "dm"])
    ap.add_argument("--lambdas", nargs="+", type=float, default=[0.1, 1.0, 10.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=None, help="override the -cpu preset's iterations")
    ap.add_argument("--num-models", type=int, default=5)
    ap.add_argument("--val-models", type=int, default=2,
                    help="networks for the validation score that picks lambda; 0 skips it (fine once the first "
                         "seed's sweep is done, it is only read there)")
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--track-every", type=int, default=10)
    ap.add_argument("--runs", default="runs/matching")
    ap.add_argument("--out", default=str(HERE / "results" / "matching"))
    ap.add_argument("--random", action="store_true", help="only the random-selection baseline, every seed")
    ap.add_argument("--table", action="store_true", help="only write the table and figure from results.jsonl")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(int(os.environ.get("EASYDD_THREADS", os.cpu_count() or 1)))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jl = out / "results.jsonl"
    if not a.table:
        from easydd.data import load_dataset
        done = load_done(jl)
        for dataset in a.datasets:
            ds = load_dataset(dataset)
            for ipc in a.ipcs:
                if a.random:
                    for s in a.seeds:
                        if (dataset, ipc, "random", 0.0, s) not in done:
                            r = run_random(ds, dataset, ipc, s, a)
                            with open(jl, "a") as f:
                                f.write(json.dumps(r) + "\n")
                            print(f"{dataset} ipc{ipc} random seed={s}: test {100 * r['test_mean']:.2f}", flush=True)
                    continue
                for method in a.methods:
                    def get(lam, seed):
                        k = (dataset, ipc, method, lam, seed)
                        if k not in done:
                            r = run_one(ds, dataset, ipc, method, lam, seed, a)
                            done[k] = r
                            with open(jl, "a") as f:
                                f.write(json.dumps(r) + "\n")
                            val = "-" if r["val_mean"] is None else f"{100 * r['val_mean']:.2f}"
                            print(f"{dataset} ipc{ipc} {method} lambda={lam:g} seed={seed}: test "
                                  f"{100 * r['test_mean']:.2f} val {val} ({r['seconds']:.0f} s)", flush=True)
                        return done[k]
                    get(0.0, a.seeds[0])
                    sweep = {lam: get(lam, a.seeds[0])["val_mean"] for lam in a.lambdas}
                    best = choose_on_validation(sweep)
                    for s in a.seeds[1:]:
                        get(0.0, s)
                        get(best, s)
    write_table(jl, out)


def short_device(r) -> str:
    d = r.get("device", "cpu")
    return "GPU (H100)" if d.startswith("cuda") and "H100" in d else ("GPU" if d.startswith("cuda") else "CPU")


def write_table(jl: Path, out: Path) -> None:
    from easydd.paper.report import PUBLISHED  # the one copy: src/easydd/published.yaml
    rows = list(load_done(jl).values())
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["ipc"], r["method"]), []).append(r)
    lines = [f"Generated {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, by "
             "`python benchmarks/matching_results.py` (see its docstring for the exact command). Accuracy: % on the "
             "test split, final epoch, mean +- std over distillation seeds (each the mean of its evaluation "
             "models). lambda chosen on the validation split with the first seed.", "",
             "| dataset | IPC | method | lambda_sdc=0 | best lambda | with SDC | SDC - base, same seed | published | "
             "iterations (cut) | GraDN end (0 / SDC) | ran on |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    fig_data = []
    for (dataset, ipc, method), rs in sorted(groups.items()):
        base = [r for r in rs if r["lambda_sdc"] == 0.0]
        s0 = min(r["seed"] for r in rs)
        sweep = {r["lambda_sdc"]: r["val_mean"] for r in rs if r["seed"] == s0 and r["lambda_sdc"] > 0}
        best = choose_on_validation(sweep)
        sdc = [r for r in rs if best is not None and r["lambda_sdc"] == best]

        def ms(lst):
            v = [100 * r["test_mean"] for r in lst]
            if not v:
                return "-"
            return f"{statistics.mean(v):.2f} +- {statistics.stdev(v) if len(v) > 1 else 0:.2f} (n={len(v)})"

        def g_end(lst):
            v = [r["gradn_curve"][-1][1] for r in lst if r["gradn_curve"]]
            return f"{statistics.mean(v):.3f}" if v else "-"
        b_by_seed = {r["seed"]: 100 * r["test_mean"] for r in base}
        d = [100 * r["test_mean"] - b_by_seed[r["seed"]] for r in sdc if r["seed"] in b_by_seed]
        paired = (f"{statistics.mean(d):+.2f} +- {statistics.stdev(d) if len(d) > 1 else 0:.2f} "
                  f"({sum(x > 0 for x in d)}/{len(d)} seeds up)" if d else "-")
        pub = PUBLISHED.get((method, dataset, ipc))
        it = rs[0]["iterations"]
        note = rs[0]["note"]
        if it and f"-> {it} iterations" not in note and "this benchmark:" not in note:
            note += f"; this benchmark: {it} iterations"
        lines.append(f"| {dataset} | {ipc} | {method.upper()} | {ms(base)} | {best if best is not None else '-'} | "
                     f"{ms(sdc)} | {paired} | {pub if pub else '-'} | {it} ({note}) | {g_end(base)} / {g_end(sdc)} | "
                     f"{', '.join(sorted({short_device(r) for r in rs}))} |")
        if method != "random":
            fig_data.append(((dataset, ipc, method), base, sdc, best))
    lines += ["", "Validation accuracy of the lambda sweep (first seed):", "",
              "| dataset | IPC | method | " + "lambda: val % |", "|---|---|---|---|"]
    for (dataset, ipc, method), rs in sorted(groups.items()):
        if method == "random":
            continue
        s0 = min(r["seed"] for r in rs)
        sw = sorted((r["lambda_sdc"], r["val_mean"]) for r in rs if r["seed"] == s0)
        lines.append(f"| {dataset} | {ipc} | {method.upper()} | " +
                     ", ".join(f"{l:g}: {100 * v:.2f}" for l, v in sw) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        n = len(fig_data)
        if not n:
            return
        fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 2.8), squeeze=False)
        for ax, ((dataset, ipc, method), base, sdc, best) in zip(axes[0], fig_data):
            for lst, lab, col in ((base, "lambda=0", "C0"), (sdc, f"lambda={best:g}" if best else "", "C3")):
                for j, r in enumerate(lst):
                    c = r["gradn_curve"]
                    if c:
                        ax.plot([p[0] for p in c], [p[1] for p in c], color=col, alpha=0.7,
                                label=lab if j == 0 else None)
            ax.set_title(f"{method.upper()} {dataset} IPC{ipc}", fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("synthetic mean GraDN (ref. panel)", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "gradn_curves.png", dpi=90)
    except Exception as e:  # the table matters more than the figure
        print("figure failed:", e)


if __name__ == "__main__":
    main()
