"""The simulation's files: theory.csv (seed means), theory.md (tables), theory.json (everything), theory.png."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from .figure import _plot
from .sweeps import crossovers, sdc_effects, summarize


def _fmt(r):
    return f"{r['mean']:.3f} ± {r['sem']:.3f}" if r else ""


def _markdown_pruning(prune_sum, xover) -> list[str]:
    lines = ["## Pruning", "", "| alpha_total | f | alpha_prune | keep easy | keep hard | random | better |",
             "|---:|---:|---:|---:|---:|---:|:---|"]
    idx = {(r["alpha_total"], r["f"], r["method"]): r for r in prune_sum}
    for a in sorted({r["alpha_total"] for r in prune_sum}):
        for f in sorted({r["f"] for r in prune_sum if r["alpha_total"] == a}):
            e, h, rd = idx.get((a, f, "easy")), idx.get((a, f, "hard")), idx.get((a, f, "random"))
            better = "" if not (e and h) or f == 1.0 else ("easy" if e["mean"] < h["mean"] else "hard")
            ap = (e or h or rd)["alpha_prune"]
            lines.append(f"| {a:g} | {f:g} | {ap:.3g} | {_fmt(e)} | {_fmt(h)} | {_fmt(rd)} | {better} |")
    lines += ["", "Cross-over (keep-hard starts beating keep-easy; log-interpolated between fractions, seed means):", "",
              "| alpha_total | f at cross-over | alpha_prune at cross-over |", "|---:|---:|---:|"]
    for c in xover:
        if c["f_cross"] is None:
            txt = "easy better at all f < 1" if c["easy_better_everywhere"] else (
                "hard better at all f < 1" if c["hard_better_everywhere"] else "no clean crossing")
            lines.append(f"| {c['alpha_total']:g} | {txt} | |")
        else:
            lines.append(f"| {c['alpha_total']:g} | {c['f_cross']:.3g} | {c['alpha_prune_cross']:.3g} |")
    return lines


def _markdown(prune_sum, distill_sum, xover, effects, meta) -> str:
    lines = ["# Theory simulation (teacher-student perceptron)", "",
             f"N={meta['N']}, {meta['seeds']} seeds, theta_p={meta['theta_p_deg']:g} deg, student={meta['kind']}, "
             f"run time {meta['seconds']:.1f} s. Test error = arccos(cos(J, T))/pi, mean ± s.e.m. over seeds.", "",
             ]
    if prune_sum:
        lines += _markdown_pruning(prune_sum, xover)
    if distill_sum:
        modes = list(dict.fromkeys(r["mode"] for r in distill_sum if r["mode"]))
        lams = sorted({r["lambda_sdc"] for r in distill_sum if r["mode"]})
        cols = ["real-easy", "real-hard", "real-random"] + [f"{m} λ={l:g}" for m in modes for l in lams]

        def cell(b, c):
            if c.startswith("real-"):
                return next((r for r in distill_sum if r["alpha_syn"] == b and r["method"] == c), None)
            m, l = c.split(" λ=")
            return next((r for r in distill_sum if r["alpha_syn"] == b and r["mode"] == m
                         and abs(r["lambda_sdc"] - float(l)) < 1e-12), None)

        a = distill_sum[0]["alpha_total"]
        fe = np.mean([r["full_error"] for r in distill_sum])
        budgets = sorted({r["alpha_syn"] for r in distill_sum})
        lines += ["", f"## Distillation (alpha_total={a:g}, P={int(round(a * meta['N']))}; full-data error {fe:.3f})",
                  "", "Test error. `real-*`: real subsets of the same size M chosen by probe margin; "
                  "`<mode> λ=<lambda>`: distilled sets (λ = SDC weight; 0 = no penalty; < 0 pushes points harder).",
                  "", "| alpha_syn | M | " + " | ".join(cols) + " |", "|---:|---:|" + "---:|" * len(cols)]
        for b in budgets:
            M = next(r["M"] for r in distill_sum if r["alpha_syn"] == b)
            lines.append(f"| {b:g} | {M} | " + " | ".join(_fmt(cell(b, c)) for c in cols) + " |")
        if effects:
            elams = sorted({e["lambda_sdc"] for e in effects})
            ecols = [f"{m} λ={l:g}" for m in modes for l in elams]
            lines += ["", "Paired effect of the penalty, error(λ) − error(λ=0), mean ± s.e.m. over seeds "
                      "(negative = the penalty helps):", "",
                      "| alpha_syn | " + " | ".join(ecols) + " |", "|---:|" + "---:|" * len(ecols)]
            eidx = {(e["mode"], e["alpha_syn"], e["lambda_sdc"]): e for e in effects}
            for b in budgets:
                cells = []
                for m in modes:
                    for l in elams:
                        e = eidx.get((m, b, l))
                        cells.append(f"{e['diff']:+.3f} ± {e['sem']:.3f}" if e else "")
                lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
        lines += ["", "GraDN of the sets (mean per-sample logistic-loss gradient norm over the expert-trajectory "
                  "panel; lower = easier):", "", "| alpha_syn | " + " | ".join(cols) + " |",
                  "|---:|" + "---:|" * len(cols)]
        for b in budgets:
            cells = []
            for c in cols:
                r = cell(b, c)
                cells.append(f"{r['gradn']:.2f}" if r and "gradn" in r else "")
            lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: str, prune_rows: list[dict], distill_rows: list[dict], meta: dict) -> dict:
    """Write theory.png (figure), theory.csv (seed-averaged rows), theory.md (tables), theory.json (all, raw too)."""
    os.makedirs(out_dir, exist_ok=True)
    ps = summarize(prune_rows, ["section", "alpha_total", "f", "method"])
    for r in ps:
        r["alpha_prune"] = float(np.mean([x["alpha_prune"] for x in prune_rows
                                          if x["alpha_total"] == r["alpha_total"] and x["f"] == r["f"]]))
    ds = summarize(distill_rows, ["section", "alpha_total", "alpha_syn", "M", "method", "mode", "lambda_sdc"])
    xo = crossovers(ps)
    eff = sdc_effects(distill_rows)
    cols = ["section", "alpha_total", "f", "alpha_prune", "alpha_syn", "M", "method", "mode", "lambda_sdc",
            "mean", "std", "sem", "n", "gradn", "teacher_margin", "label_agreement"]
    from pathlib import Path

    from ...io import atomic_write  # every output appears whole or not at all

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in ps + ds:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write(os.path.join(out_dir, "theory.csv"), write_csv)
    md = _markdown(ps, ds, xo, eff, meta)
    atomic_write(os.path.join(out_dir, "theory.md"), lambda tmp: Path(tmp).write_text(md))
    rnd = lambda rows: [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    payload = json.dumps(dict(meta=meta, crossovers=xo, sdc_effects=rnd(eff), pruning=rnd(ps), distillation=rnd(ds),
                              raw=dict(pruning=rnd(prune_rows), distillation=rnd(distill_rows))),
                         separators=(",", ":"))
    atomic_write(os.path.join(out_dir, "theory.json"), lambda tmp: Path(tmp).write_text(payload))
    _plot(ps, ds, xo, os.path.join(out_dir, "theory.png"),
          title=f"Teacher-student perceptron, N={meta['N']}, {meta['seeds']} seeds, theta_p={meta['theta_p_deg']:g} deg, "
                f"student={meta['kind']}; error bars = s.e.m. over seeds")
    return dict(pruning=ps, distillation=ds, crossovers=xo, sdc_effects=eff, markdown=md)
