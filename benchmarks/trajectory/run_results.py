"""MNIST IPC 1 with the cpu presets: MTT, FTD, TESLA, DATM, lambda_sdc = 0 vs the best lambda of a small sweep
chosen on the VALIDATION split; test accuracy over distillation seeds x evaluation models; GraDN curves.

Stages (each run is skipped when its summary JSON already exists, so the script resumes):

  sweep   seed 0, lambda in LAMBDAS, every method: distil (preset), evaluate on val and on test
  seeds   seeds 1.. for lambda = 0 and the best lambda > 0 of the sweep (highest val accuracy, seed 0)
  random  random real subset (IPC 1), same evaluation, same seeds
  report  results.json, results.md, gradn_curves.png

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src OMP_NUM_THREADS=1 \
        .venv/bin/python benchmarks/trajectory/run_results.py sweep --worker 0/2   # and 1/2 in parallel
    ... seeds --worker 0/2, random, report

Fashion-MNIST (the same protocol; results-fashion_mnist.*): make its two expert buffers first, then every stage with
`--dataset fashion_mnist`:

    easydd experts --preset mtt-fashion_mnist-ipc1-cpu && easydd experts --preset ftd-fashion_mnist-ipc1-cpu

Runs land in runs/tm_results/<name>/ (ignored by git); per-run summaries in benchmarks/trajectory/results_runs/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from easydd.sweep import choose_on_validation

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results_runs"
METHODS = ("mtt", "ftd", "tesla", "datm")
LAMBDAS = (0.0, 0.01, 0.1)
SEEDS = (0, 1, 2)
DATASET = "mnist"  # --dataset rebinds it (and OUT) before anything runs


def out_path(stem: str, ext: str) -> Path:
    """results.md etc. for MNIST (the first dataset run), results-<dataset>.md for the others."""
    return HERE / (f"{stem}.{ext}" if DATASET == "mnist" else f"{stem}-{DATASET}.{ext}")
EVAL = dict(models=["ConvNetW32"], num_models=5, epochs=300, aug="dsa")


def run_name(method, lam, seed):
    return f"{method}-{DATASET}-ipc1-l{lam:g}-s{seed}"


ABLATIONS = {"tesla-hard": ("tesla", {"soft_labels": False}), "tesla-exact": ("tesla", {"exact": True}),
             "tesla-hard-exact": ("tesla", {"soft_labels": False, "exact": True})}


def one_run(method, lam, seed, ds, variant=None):
    import torch
    from easydd.config import build_config
    from easydd.distill import distill
    from easydd.evaluate import evaluate_distilled
    from easydd.methods import method_params
    name = run_name(variant or method, lam, seed)
    out = RUNS / f"{name}.json"
    extra = ABLATIONS[variant][1] if variant else {}
    if out.exists():
        return json.loads(out.read_text())
    cfg = build_config(f"{method}-{DATASET}-ipc1-cpu", dict(lambda_sdc=lam, seed=seed, name=name,
                                                             out_dir="runs/tm_results", eval_models=EVAL["models"],
                                                             eval_num_models=EVAL["num_models"],
                                                             eval_epochs=EVAL["epochs"], **extra), method_params)
    t0 = time.time()
    r = distill(cfg, ds, progress=False, final_eval=True, resume=True)
    val = evaluate_distilled(r.distilled, ds, split="val", seed=seed, progress=False, **EVAL)
    import csv
    rows = list(csv.DictReader(open(r.run_dir / "curves.csv")))
    curve = [(int(x["iteration"]), float(x["gradn"])) for x in rows if x.get("gradn")]
    summary = {"method": method, "variant": variant, "settings": extra, "lambda_sdc": lam, "seed": seed, "preset": f"{method}-{DATASET}-ipc1-cpu",
               "test_accs": r.metrics["last"]["models"]["ConvNetW32"]["accs"],
               "test_mean": r.metrics["last"]["models"]["ConvNetW32"]["mean"],
               "val_accs": val["models"]["ConvNetW32"]["accs"], "val_mean": val["models"]["ConvNetW32"]["mean"],
               "method_args": cfg.method_args,
               "device": r.metrics.get("device", "cpu"), "syn_lr": r.distilled.lr, "gradn_curve": curve,
               "seconds": round(time.time() - t0, 1),
               "distill_seconds": round(r.metrics["distill_seconds"], 1),
               "final_loss": float(rows[-1]["loss"]) if rows else None,
               "date": datetime.datetime.now().isoformat(timespec="seconds")}
    if "last_ema" in r.metrics:
        summary["ema_test_accs"] = r.metrics["last_ema"]["models"]["ConvNetW32"]["accs"]
        summary["ema_test_mean"] = r.metrics["last_ema"]["models"]["ConvNetW32"]["mean"]
    RUNS.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"{name}: test {summary['test_mean']:.4f} val {summary['val_mean']:.4f} ({summary['seconds']:.0f} s)",
          flush=True)
    del torch
    return summary


def best_lambda(method):
    cands = [json.loads((RUNS / f"{run_name(method, lam, 0)}.json").read_text()) for lam in LAMBDAS if lam > 0
             and (RUNS / f"{run_name(method, lam, 0)}.json").exists()]
    if not cands:
        return None
    return choose_on_validation({s["lambda_sdc"]: s["val_mean"] for s in cands})


def random_baseline(ds, seed):
    from easydd.evaluate import evaluate_distilled
    from easydd.methods.selection import select
    out = RUNS / f"random-{DATASET}-ipc1-s{seed}.json"
    if out.exists():
        return json.loads(out.read_text())
    d = select(ds, "random", 1, seed)
    r = evaluate_distilled(d, ds, split="test", seed=seed, progress=False, **EVAL)
    s = {"method": "random", "seed": seed, "test_accs": r["models"]["ConvNetW32"]["accs"],
         "test_mean": r["models"]["ConvNetW32"]["mean"], "lr": r["lr"]}
    RUNS.mkdir(exist_ok=True)
    out.write_text(json.dumps(s, indent=1))
    return s


def jobs(stage):
    if stage == "sweep":  # plain-expert methods first (the flat buffer may still be building)
        return [(m, lam, 0) for m in ("mtt", "tesla", "ftd", "datm") for lam in LAMBDAS]
    if stage == "seeds":
        out = []
        for m in METHODS:
            lam = best_lambda(m)
            for seed in SEEDS[1:]:
                out.append((m, 0.0, seed))
                if lam is not None:
                    out.append((m, lam, seed))
        return out
    return []


def main():
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=["sweep", "seeds", "random", "ablation", "report"])
    p.add_argument("--worker", default="0/1")
    p.add_argument("--variants", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS),
                   help="ablation stage: which TESLA variants")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="ablation stage: which seeds (lambda 0)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"],
                   help="the {method}-<dataset>-ipc1-cpu presets and their expert buffers")
    args = p.parse_args()
    global DATASET
    DATASET = args.dataset
    if args.stage == "report":
        return report()
    from easydd.data import load_dataset
    ds = load_dataset(DATASET)
    if args.stage == "random":
        for seed in SEEDS:
            random_baseline(ds, seed)
        return
    if args.stage == "ablation":  # TESLA: which part costs accuracy, the soft labels or the first-order gradient?
        for seed in args.seeds:
            for v in args.variants:
                one_run("tesla", 0.0, seed, ds, variant=v)
        return
    w, n = (int(x) for x in args.worker.split("/"))
    for i, (m, lam, seed) in enumerate(jobs(args.stage)):
        if i % n == w:
            one_run(m, lam, seed, ds)


def _ms(xs):
    m = sum(xs) / len(xs)
    s = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return m, s


def report():
    import glob
    allruns = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(str(RUNS / f"*-{DATASET}-ipc1-*.json")))]
    runs = [r for r in allruns if not r.get("variant")]
    ablation = [r for r in allruns if r.get("variant")]
    table = {}
    for m in METHODS:
        lam = best_lambda(m)
        for key, l in (("base", 0.0), ("sdc", lam)):
            if l is None:
                continue
            rs = [r for r in runs if r["method"] == m and r.get("lambda_sdc") == l]
            accs = [a for r in rs for a in r["test_accs"]]
            if not accs:
                continue
            mean, std = _ms(accs)
            seed_means = [r["test_mean"] for r in rs]
            entry = {"lambda_sdc": l, "seeds": sorted(r["seed"] for r in rs), "n_models": len(accs),
                     "test_mean": mean, "test_std": std, "seed_means": seed_means,
                     "final_gradn": [r["gradn_curve"][-1][1] for r in rs if r["gradn_curve"]],
                     "initial_gradn": [r["gradn_curve"][0][1] for r in rs if r["gradn_curve"]]}
            ema = [a for r in rs for a in r.get("ema_test_accs", [])]
            if ema:
                entry["ema_test_mean"], entry["ema_test_std"] = _ms(ema)
            table.setdefault(m, {})[key] = entry
    sweep = {m: {r["lambda_sdc"]: r["val_mean"] for r in runs if r["method"] == m and r.get("seed") == 0
                 and "val_mean" in r} for m in METHODS}
    rnd = [r for r in runs if r["method"] == "random"]
    rnd_entry = None
    if rnd:
        accs = [a for r in rnd for a in r["test_accs"]]
        rnd_entry = dict(zip(("test_mean", "test_std"), _ms(accs)), seeds=[r["seed"] for r in rnd],
                         n_models=len(accs))
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "dataset": DATASET, "ipc": 1,
              "eval": EVAL, "lambdas_swept": LAMBDAS, "seeds": SEEDS, "table": table, "val_sweep_seed0": sweep,
              "random": rnd_entry, "ablation": ablation, "runs": runs}
    out_path("results", "json").write_text(json.dumps(result, indent=1))
    write_records(runs, ablation)
    plot_curves(runs)
    out_path("results", "md").write_text(results_md(result))


def soft_labelled_tesla(r) -> bool:
    """TESLA runs made before hard labels became the default carry no method_args: they used soft labels (an
    ablation run says its own setting)."""
    if r["method"] != "tesla":
        return False
    if r.get("variant"):
        return r["settings"].get("soft_labels", True)
    return (r.get("method_args") or {"soft_labels": True}).get("soft_labels", False)


def write_records(runs, ablation=()):
    """One JSON line per run in the form `easydd report` reads, so the README table puts these runs beside the
    gradient-matching ones (evaluated with ConvNetW32, which the report marks). The random baseline stays in
    results.md: the selection study already fills the report's random ConvNetW32 cell with another protocol.
    TESLA: the table's TESLA row is the current default (hard labels: the tesla-hard ablation runs); soft-label
    runs are their own row, `tesla_soft`."""
    hard = [r for r in ablation if r.get("variant") == "tesla-hard"]
    with open(out_path("results", "jsonl"), "w") as f:
        for r in [*runs, *hard]:
            if r["method"] not in METHODS:
                continue
            method = "tesla_soft" if soft_labelled_tesla(r) else r["method"]
            rec = {"dataset": DATASET, "ipc": 1, "method": method, "lambda_sdc": r.get("lambda_sdc", 0.0),
                   "seed": r["seed"], "test_accs": r["test_accs"], "model": EVAL["models"][0],
                   "eval_epochs": EVAL["epochs"]}
            if "val_mean" in r:
                rec["val_mean"] = r["val_mean"]
            if r.get("preset"):
                rec["note"] = f"preset {r['preset']}"
            if r["method"] == "tesla":
                rec["note"] = rec.get("note", "") + ("; soft labels (the old default)" if method == "tesla_soft"
                                                     else "; hard labels (the default)")
            f.write(json.dumps(rec) + "\n")


def plot_curves(runs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METHODS), figsize=(3.4 * len(METHODS), 2.8))
    for ax, m in zip(axes, METHODS):
        for r in runs:
            if r["method"] != m or not r.get("gradn_curve"):
                continue
            xs, ys = zip(*r["gradn_curve"])
            lam = r["lambda_sdc"]
            ax.plot(xs, ys, color="C0" if lam == 0 else ("C1" if lam == 0.01 else "C3"), alpha=0.8, lw=1,
                    label=f"lambda={lam:g}" if r["seed"] == 0 else None)
        ax.set_yscale("log")
        ax.set_title(m.upper() + (" (soft labels)" if m in ("tesla", "datm") else ""), fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("synthetic mean GraDN (log)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path("gradn_curves", "png"), dpi=90)
    plt.close(fig)


def code_and_machine_lines(runs) -> list[str]:
    devices = sorted({r.get("device", "cpu") for r in runs})
    out = []
    if DATASET == "mnist":
        out.append("- code: every run started before commit c00095c (2026-11-27 23:21 UTC). That commit changed "
                   "`Method.init_synthetic` so that all methods draw the same initial real images for a seed (before "
                   "it, the method name was part of the init seed). A rerun with the current code follows the same "
                   "protocol, but MTT/FTD/TESLA start from other real images, so the numbers will differ within "
                   "noise. DATM's correct-sample init and the random baseline are unaffected.")
    if any(r.get("method") == "tesla" and "method_args" not in r and not r.get("variant") for r in runs):
        out.append("- TESLA rows: soft labels (the reference's `--teacher_label`), which was easydd's TESLA default "
                   "when these ran. The default is now hard labels, as in the reference code (whose command lines "
                   "use soft labels for ImageNet-1K only); `soft_labels=true` reproduces these rows.")
    for d in devices:
        out.append("- machine: " + ("2 shared CPU cores (Intel Xeon), one thread per run, two runs at a time"
                                    if d == "cpu" else d) + " (same presets and budgets as on the CPU; the GPU "
                   "only buys time)" * (d != "cpu"))
    return out


def collapse_lines(runs) -> list[str]:
    """Runs whose networks learned nothing (at most chance + 0.5 points), with the step size they learned."""
    bad = [r for r in runs if r.get("method") in METHODS and r["test_mean"] <= 1.05 / 10]
    if not bad:
        return []
    return ["", "Collapsed runs (test accuracy at chance): the learned step size `syn_lr` that the evaluation "
            "then uses, against the teacher's 0.01:", "", "| run | test acc (%) | learned syn_lr |", "|---|---|---|"] + [
        f"| {r['method']} lambda={r['lambda_sdc']:g} seed={r['seed']} | {100 * r['test_mean']:.2f} | "
        f"{r['syn_lr']:.4g} |" for r in bad]


def results_md(res) -> str:
    lines = [f"# Trajectory matching with SDC: {DATASET}, IPC 1, the -cpu presets", "",
             f"- generated: {res['date']} (runs dated inside results.json)",
             f"- presets: `{{mtt,ftd,tesla,datm}}-{DATASET}-ipc1-cpu` (their `note` says what the CPU budget cut)",
             f"- evaluation: {res['eval']['num_models']} ConvNetW32 per distilled set, {res['eval']['epochs']} "
             "epochs with DSA at the learned step size, test accuracy of the LAST set (no checkpoint selection "
             "on test)",
             f"- lambda_sdc swept over {[l for l in res['lambdas_swept'] if l > 0]} at seed 0, the best chosen on "
             "the validation split (5000 images carved from the training set); then seeds "
             f"{list(res['seeds'])} for lambda = 0 and the chosen lambda (batch-mode SDC)",
             "- command: `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 PYTHONPATH=src OMP_NUM_THREADS=1 "
             ".venv/bin/python benchmarks/trajectory/run_results.py {sweep,seeds,random,ablation,report}`",
             *code_and_machine_lines(res["runs"]), "",
             "",
             "Test accuracy: mean +- std over all seeds x models (15 networks); `seed means` = the per-seed means. "
             "GraDN: the synthetic set's mean GraDN on the driver's fixed reference panel (4 ConvNets, 1 epoch on "
             f"10000 {DATASET} images) at iteration 0 and at the end, mean over seeds. GraDN of soft-labelled sets "
             "(TESLA, DATM) is measured against softmax(labels) and is not comparable with hard-label sets.", "",
             "| method | lambda_sdc | seeds x models | test acc (%) | seed means (%) | GraDN start -> end |",
             "|---|---|---|---|---|---|"]
    if res["random"]:
        r = res["random"]
        lines.append(f"| random real (IPC 1, lr 0.01) | - | {len(r['seeds'])} x "
                     f"{r['n_models'] // max(len(r['seeds']), 1)} | {100 * r['test_mean']:.2f} +- "
                     f"{100 * r['test_std']:.2f} | | - |")
    for m, d in res["table"].items():
        for key in ("base", "sdc"):
            if key not in d:
                continue
            e = d[key]
            g = sum(e["final_gradn"]) / len(e["final_gradn"]) if e["final_gradn"] else float("nan")
            g0 = sum(e["initial_gradn"]) / len(e["initial_gradn"]) if e["initial_gradn"] else float("nan")
            sm = ", ".join(f"{100 * x:.1f}" for x in e["seed_means"])
            ema = (f" (EMA set: {100 * e['ema_test_mean']:.2f} +- {100 * e['ema_test_std']:.2f})"
                   if "ema_test_mean" in e else "")
            lines.append(f"| {m.upper()} | {e['lambda_sdc']:g} | {len(e['seeds'])} x "
                         f"{e['n_models'] // max(len(e['seeds']), 1)} | {100 * e['test_mean']:.2f} +- "
                         f"{100 * e['test_std']:.2f}{ema} | {sm} | {g0:.2f} -> {g:.3f} |")
    lines += ["", "Validation accuracy of the sweep (seed 0):", "", "| method | " +
              " | ".join(f"lambda={l:g}" for l in res["lambdas_swept"]) + " |",
              "|---|" + "---|" * len(res["lambdas_swept"])]
    for m, d in res["val_sweep_seed0"].items():
        lines.append(f"| {m.upper()} | " + " | ".join(f"{100 * d[l]:.2f}" if l in d else "-"
                                                      for l in res["lambdas_swept"]) + " |")
    lines += collapse_lines(res["runs"])
    if res.get("ablation"):
        lines += ["", "TESLA ablation (lambda 0, 5 models each): soft labels vs hard labels, first-order vs exact "
                  "gradient:", "", "| variant | settings | seed | test acc (%) | val acc (%) |", "|---|---|---|---|---|"]
        soft = sorted((r for r in res["runs"] if soft_labelled_tesla(r) and r.get("lambda_sdc") == 0.0),
                      key=lambda r: r["seed"])
        for t in soft:
            lines.append(f"| tesla (soft-label runs above) | soft labels, first-order | {t['seed']} | "
                         f"{100 * t['test_mean']:.2f} | {100 * t['val_mean']:.2f} |")
        for r in sorted(res["ablation"], key=lambda r: (r["variant"], r["seed"])):
            lines.append(f"| {r['variant']} | {r['settings']} | {r['seed']} | {100 * r['test_mean']:.2f} | "
                         f"{100 * r['val_mean']:.2f} |")
        where = sorted({r.get("device", "cpu") for r in res["ablation"]})
        dates = sorted(r["date"][:16] for r in res["ablation"] if r.get("date"))
        lines += ["", "Ablation runs ran on: " + ", ".join("2 shared CPU cores, one thread per run" if d == "cpu" else d
                                                      for d in where)
                  + (f", {dates[0]} to {dates[-1]}" if dates else "") + ", each with the expert buffer trained on "
                  "that machine (an expert buffer made on another device differs in rounding, so compare these rows "
                  "with the table above within noise, not digit by digit)."]
        hard = [r["test_mean"] for r in res["ablation"] if r["variant"] == "tesla-hard"]
        if len(hard) > 1:
            m, sd = _ms([100 * x for x in hard])
            lines += ["", f"tesla-hard (the current TESLA default) over {len(hard)} seeds: {m:.2f} +- {sd:.2f} "
                      "(std over the seed means)."]
    lines += ["", "GraDN curves (synthetic set's mean GraDN on the driver's reference panel, every 25 "
              "iterations): `gradn_curves.png`.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
