"""``easydd study``: the paper's two empirical analyses on real data.

    easydd study selection  --dataset mnist fashion_mnist --ipcs 1 10 50 100 500 --seeds 0 1
    easydd study difficulty --dataset mnist --ipc 1 10 --methods dc dsa dsac dm mtt ftd tesla datm --iterations 60 20

**selection**: the scaling law's prediction on real images. Every training image of a pool (``--pool`` images per
class drawn once at random, or the whole class) gets its GraDN on a panel of briefly trained networks
(``easydd.difficulty``); per class the ``ipc`` easiest (smallest GraDN), the ``ipc`` hardest, or ``ipc`` random
images of the same pool are kept, and networks are trained on them from scratch and tested (the evaluation protocol
of ``easydd.evaluate``: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half, final epoch).
Because a large IPC makes that protocol very expensive on a CPU, training gets at most ``--max-steps`` SGD steps:
``epochs = min(--epochs, max(1, max_steps // batches_per_epoch))``; each record says the epochs it got. Outputs
in ``--out``: ``selection-<dataset>.jsonl`` (one line per run, resumable), then ``selection.json`` / ``.md`` / ``.png``
over every dataset found there (accuracy against IPC, one curve per rule).

**difficulty**: a short distillation per method with the same budget (``--iterations``), the same seed and the
same real-image initialisation, tracking the synthetic set's mean GraDN on the dataset's fixed reference panel
(the driver's ``track_every``). Outputs ``difficulty-<dataset>.json`` / ``.md`` / ``.png`` (GraDN relative to its
initial value, one curve per method, one panel per IPC). Trajectory methods need expert buffers
(``easydd experts --preset <method>-<dataset>-ipc<k>-cpu``); a method that cannot run is listed with the reason.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..runtime import derive_seed, generator

__all__ = ["add_arguments", "run_from_args", "selection_study", "difficulty_study", "eval_epochs_for",
           "pick_by_rule", "write_selection_outputs", "write_difficulty_outputs", "RULES", "GM_METHODS",
           "TM_METHODS"]

RULES = ("easiest", "hardest", "random")
GM_METHODS = ("dc", "dsa", "dsac")
TM_METHODS = ("mtt", "ftd", "tesla", "datm")
_RULE_STYLE = {"easiest": ("C2", "o"), "hardest": ("C3", "s"), "random": ("C0", "^")}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _atomic_text(path: Path, text: str) -> None:
    from ..distilled import atomic_write
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _load_dataset(name: str):
    from ..data import load_dataset
    try:
        return load_dataset(name)
    except UserError:  # DataError and every other user error: its message already names the fix
        raise
    except (KeyError, ValueError) as e:
        raise UserError(f"cannot load dataset {name!r}: {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# selection by difficulty
# ---------------------------------------------------------------------------------------------------------------

def eval_epochs_for(n_images: int, epochs: int, max_steps: int | None, batch_size: int = 256) -> int:
    """Epochs under a budget of ``max_steps`` SGD steps (None / 0: no budget): min(epochs, max_steps // batches)."""
    if not max_steps:
        return int(epochs)
    batches = max(1, math.ceil(n_images / batch_size))
    return int(min(epochs, max(1, max_steps // batches)))


def pool_indices(dataset, pool: int | None, seed: int) -> list[torch.Tensor]:
    """Per class, the training indices the rules choose from: ``pool`` of them drawn at random, or all."""
    g = generator(derive_seed(seed, "study-pool"))
    out = []
    for c in range(dataset.num_classes):
        idx = dataset.class_indices(c)
        if pool and pool < len(idx):
            idx = idx[torch.randperm(len(idx), generator=g)[:pool]].sort().values
        out.append(idx)
    return out


def pick_by_rule(pools: list[torch.Tensor], scores: dict[int, torch.Tensor], rule: str, ipc: int,
                 seed: int) -> torch.Tensor:
    """Indices of ``ipc`` images per class: the smallest (easiest) / largest (hardest) score, or random."""
    if rule not in RULES:
        raise UserError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    g = generator(derive_seed(seed, "study-random", ipc))
    picked = []
    for c, idx in enumerate(pools):
        if ipc > len(idx):
            raise UserError(f"ipc {ipc} is larger than the pool of class {c} ({len(idx)} images); lower --ipcs or "
                            "raise --pool")
        if rule == "random":
            picked.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
        else:
            order = torch.argsort(scores[c], descending=(rule == "hardest"), stable=True)
            picked.append(idx[order[:ipc]])
    return torch.cat(picked)


def _score_pools(dataset, pools, panel, chunk: int = 64) -> dict[int, torch.Tensor]:
    """GraDN of every pool image, per class; cached beside the panel (keyed by the panel and the pool's indices)."""
    import hashlib
    from safetensors.torch import load_file, save_file
    from ..difficulty import default_panel_dir
    from ..distilled import atomic_write
    h = hashlib.sha256(repr([p.tolist() for p in pools]).encode()).hexdigest()[:12]
    key = panel.meta.get("cache_key")
    file = default_panel_dir() / f"{key}-scores-{h}.safetensors" if key else None
    if file is not None and file.is_file():
        try:
            t = load_file(str(file))
            return {c: t[f"c{c}"] for c in range(len(pools))}
        except Exception:  # unreadable: recompute
            pass
    scores = {}
    for c, idx in enumerate(pools):
        scores[c] = panel.gradn(dataset.x_train[idx], dataset.y_train[idx], chunk=chunk)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, lambda tmp: save_file({f"c{c}": v.contiguous() for c, v in scores.items()}, tmp))
    return scores


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by a kill: the run is redone
    return rows


def selection_study(a) -> dict:
    from ..distilled import Distilled
    from ..evaluate import evaluate_distilled
    from ..difficulty import reference_panel

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for ds_name in a.dataset:
        ds = _load_dataset(ds_name)
        jl = out / f"selection-{ds.name}.jsonl"
        done = {(r["ipc"], r["method"], r["seed"]) for r in _read_jsonl(jl)}
        todo = [(seed, ipc, rule) for seed in a.seeds for ipc in a.ipcs for rule in a.rules
                if (ipc, rule, seed) not in done]
        if not todo:
            _log(f"{ds.name}: every run is already in {jl}")
            continue
        t0 = time.perf_counter()
        pools = pool_indices(ds, a.pool, a.panel_seed)
        smallest = min(len(p) for p in pools)
        if max(a.ipcs) > smallest:
            raise UserError(f"--ipcs {max(a.ipcs)} is larger than the smallest class pool of {ds.name} ({smallest}); "
                            "lower --ipcs or raise --pool")
        panel = reference_panel(ds, model=a.panel_model, num_models=a.panel_models, epochs=a.panel_epochs,
                                seed=a.panel_seed, subset=a.panel_subset or None, log=_log)
        _log(f"{ds.name}: GraDN of {sum(len(p) for p in pools)} pool images on {panel}")
        scores = _score_pools(ds, pools, panel)
        score_seconds = time.perf_counter() - t0
        all_scores = torch.cat([scores[c] for c in range(ds.num_classes)])
        pos = {int(i): (c, j) for c, idx in enumerate(pools) for j, i in enumerate(idx.tolist())}
        _log(f"{ds.name}: scores ready in {score_seconds:.0f} s (GraDN mean {float(all_scores.mean()):.4g}, "
             f"min {float(all_scores.min()):.4g}, max {float(all_scores.max()):.4g})")
        for seed, ipc, rule in todo:
            t = time.perf_counter()
            sel = pick_by_rule(pools, scores, rule, ipc, seed)
            n = int(sel.numel())
            ep = eval_epochs_for(n, a.epochs, a.max_steps)
            d = Distilled(ds.x_train[sel].clone(), ds.y_train[sel].clone(), None,
                          {"dataset": ds.name, "ipc": ipc, "method": rule, "kind": "selection", "seed": seed})
            r = evaluate_distilled(d, ds, models=[a.eval_model], num_models=a.num_models, epochs=ep, dsa=a.dsa,
                                   seed=seed, progress=False, stacked=False)
            m = r["models"][a.eval_model]
            sel_g = [float(scores[pos[int(i)][0]][pos[int(i)][1]]) for i in sel.tolist()]
            rec = {"dataset": ds.name, "ipc": ipc, "method": rule, "seed": seed, "accs": m["accs"],
                   "mean": m["mean"], "model": a.eval_model, "num_models": a.num_models, "eval_epochs": ep,
                   "steps": ep * max(1, math.ceil(n / 256)), "dsa": a.dsa, "pool": a.pool or None,
                   "sel_gradn_mean": statistics.fmean(sel_g), "pool_gradn_mean": float(all_scores.mean()),
                   "panel": {"model": a.panel_model, "num_models": a.panel_models, "epochs": a.panel_epochs,
                             "seed": a.panel_seed, "subset": a.panel_subset},
                   "seconds": round(time.perf_counter() - t, 1), "date": time.strftime("%Y-%m-%d %H:%M"),
                   "note": (f"{ep} epochs (budget {a.max_steps} steps)" if ep < a.epochs else f"{ep} epochs"),
                   "command": getattr(a, "_command", None)}
            with open(jl, "a") as f:
                f.write(json.dumps(rec) + "\n")
            _log(f"{ds.name} ipc {ipc:4d} {rule:8s} seed {seed}: {100 * m['mean']:.2f} % "
                 f"({ep} epochs, selected GraDN {rec['sel_gradn_mean']:.3g}, {rec['seconds']:.0f} s)")
    return write_selection_outputs(out)


def _summarise_selection(rows: list[dict]) -> dict:
    """{dataset: {rule: {ipc: (mean %, std %, n runs, epochs)}}}; std over seeds (over networks for one seed)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["dataset"], {}).setdefault(r["method"], {}).setdefault(r["ipc"], []).append(r)
    out: dict = {}
    for d, by_rule in groups.items():
        for rule, by_ipc in by_rule.items():
            for ipc, rs in by_ipc.items():
                means = [100 * x["mean"] for x in rs]
                if len(means) > 1:
                    sd = statistics.stdev(means)
                else:
                    accs = [100 * a for a in rs[0]["accs"]]
                    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
                out.setdefault(d, {}).setdefault(rule, {})[ipc] = {
                    "mean": statistics.fmean(means), "std": sd, "n": len(rs), "nets": len(rs[0]["accs"]),
                    "epochs": sorted({x["eval_epochs"] for x in rs}),
                    "sel_gradn": statistics.fmean(x["sel_gradn_mean"] for x in rs)}
    return out


def crossover(summary_ds: dict) -> str:
    """A sentence on where 'hardest' overtakes 'easiest' (compared at each IPC run with both)."""
    e, h = summary_ds.get("easiest", {}), summary_ds.get("hardest", {})
    ipcs = sorted(set(e) & set(h))
    if not ipcs:
        return "easiest and hardest were not both run"
    diffs = [(i, h[i]["mean"] - e[i]["mean"]) for i in ipcs]
    txt = ", ".join(f"IPC {i}: {dv:+.2f}" for i, dv in diffs)
    first_hard = next((i for i, dv in diffs if dv > 0), None)
    if first_hard is None:
        verdict = "no cross-over: easiest beats hardest at every IPC"
    elif all(dv > 0 for _, dv in diffs):
        verdict = "no cross-over: hardest beats easiest at every IPC"
    else:
        later_easy = [i for i, dv in diffs if i > first_hard and dv <= 0]
        verdict = (f"cross-over between IPC {max(i for i, dv in diffs if i < first_hard and dv <= 0)} and IPC "
                   f"{first_hard}" if any(i < first_hard for i, _ in diffs) else f"hardest ahead from IPC {first_hard}")
        if later_easy:
            verdict += f" (not monotone: easiest ahead again at IPC {', '.join(map(str, later_easy))})"
    return f"{verdict} (hardest - easiest, points: {txt})"


def write_selection_outputs(out: Path) -> dict:
    """selection.json / .md / .png from every selection-<dataset>.jsonl in ``out``."""
    out = Path(out)
    rows = []
    for f in sorted(out.glob("selection-*.jsonl")):
        rows += _read_jsonl(f)
    if not rows:
        raise UserError(f"no selection results in {out} (selection-<dataset>.jsonl)")
    summ = _summarise_selection(rows)
    order = ["mnist", "fashion_mnist"]
    datasets = sorted(summ, key=lambda d: (order.index(d) if d in order else 9, d))
    first = rows[0]
    protocol = (f"{first['model']}, {first['num_models']} network(s) per run, "
                f"{'DSA' if first['dsa'] else 'no'} augmentation, SGD lr 0.01 momentum 0.9 wd 5e-4 batch 256, "
                "lr x0.1 at half, final epoch, test split")
    lines = ["# Selection by difficulty (GraDN): easiest vs hardest vs random", ""]
    commands = list(dict.fromkeys(r["command"] for r in rows if r.get("command")))
    if commands:
        lines += ["Made by:", ""] + [f"    {c}" for c in commands] + [""]
    lines += [f"Evaluation: {protocol}. Panel: {first['panel']['num_models']} x {first['panel']['model']} trained "
              f"{first['panel']['epochs']} epoch(s) on {first['panel']['subset'] or 'all'} training images. Pool: "
              f"{first['pool'] or 'all'} images per class. Accuracy %, mean ± std over seeds "
              "(one seed: ± over its networks; n=1 without ±: one network, no spread measured).", ""]
    for d in datasets:
        ipcs = sorted({i for rule in summ[d].values() for i in rule})
        lines += [f"## {d}", "", "| rule | " + " | ".join(f"IPC {i}" for i in ipcs) + " |",
                  "|---|" + "---|" * len(ipcs)]
        for rule in [r for r in RULES if r in summ[d]] + sorted(set(summ[d]) - set(RULES)):
            cells = []
            for i in ipcs:
                c = summ[d][rule].get(i)
                if c is None:
                    cells.append("-")
                elif c["n"] == 1 and c["nets"] == 1:
                    cells.append(f"{c['mean']:.2f} (n=1)")
                else:
                    cells.append(f"{c['mean']:.2f} ± {c['std']:.2f} (n={c['n']})")
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
        ep = [f"IPC {i}: {'/'.join(map(str, sorted({e for rule in summ[d].values() if i in rule for e in rule[i]['epochs']})))}"
              for i in ipcs]
        g = [f"IPC {i}: " + ", ".join(f"{rule} {summ[d][rule][i]['sel_gradn']:.3g}" for rule in summ[d]
                                      if i in summ[d][rule]) for i in ipcs]
        lines += ["", f"Training epochs: {'; '.join(ep)}.", "", f"Mean GraDN of the selected images: {'; '.join(g)}.",
                  "", f"**{d}: {crossover(summ[d])}.**", ""]
    md = "\n".join(lines) + "\n"
    _atomic_text(out / "selection.md", md)
    fig = out / "selection.png"
    _plot_selection(fig, summ, datasets)
    res = {"records": rows, "summary": {d: {r: {str(i): v for i, v in s.items()} for r, s in summ[d].items()}
                                        for d in datasets},
           "crossover": {d: crossover(summ[d]) for d in datasets}, "figure": fig.name, "commands": commands}
    _atomic_text(out / "selection.json", json.dumps(res, indent=1))
    _log(f"wrote {out / 'selection.md'}, {fig}, {out / 'selection.json'}")
    return res


def _plot_selection(path: Path, summ: dict, datasets: list[str]) -> None:
    from ..plots import subplots
    from ..distilled import atomic_write
    fig, axes = subplots(2, len(datasets), figsize=(4.2 * len(datasets), 5.6), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1]}, sharex="col")
    for k, d in enumerate(datasets):
        ax, ax2 = axes[0][k], axes[1][k]
        for rule, by_ipc in summ[d].items():
            col, mk = _RULE_STYLE.get(rule, (None, "x"))
            ipcs = sorted(by_ipc)
            ax.errorbar(ipcs, [by_ipc[i]["mean"] for i in ipcs], yerr=[by_ipc[i]["std"] for i in ipcs],
                        color=col, marker=mk, capsize=3, label=rule)
            if rule != "random" and "random" in summ[d]:
                common = [i for i in ipcs if i in summ[d]["random"]]
                ax2.plot(common, [by_ipc[i]["mean"] - summ[d]["random"][i]["mean"] for i in common], color=col,
                         marker=mk, label=f"{rule} - random")
        ax.set_xscale("log")
        ax.set_title(d, fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set_xscale("log")
        ax2.set_xlabel("images per class (IPC)")
        ax2.set_ylabel("vs random (points)")
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


# ---------------------------------------------------------------------------------------------------------------
# GraDN of the synthetic set while distilling
# ---------------------------------------------------------------------------------------------------------------

def _preset_for(method: str, dataset: str, ipc: int) -> str | None:
    from ..config import all_presets
    presets = all_presets()
    for name in (f"{method}-{dataset}-ipc{ipc}-cpu", f"{method}-{dataset}-ipc{ipc}"):
        if name in presets:
            return name
    return None


def _read_curve(run_dir: Path) -> list[tuple[int, float]]:
    f = run_dir / "curves.csv"
    if not f.is_file():
        return []
    with open(f) as fh:
        return [(int(r["iteration"]), float(r["gradn"])) for r in csv.DictReader(fh) if r.get("gradn")]


# methods whose initialisation is part of the method (DATM: real images the experts classify correctly); every
# other method starts from the same seeded draw of real images (base.Method.init_synthetic keys it by seed only)
OWN_INIT = ("datm",)


def _family(method: str) -> str:
    """The method class's family (gradient, distribution, trajectory), 'other' for a name that is no method."""
    from ..methods import get_method
    try:
        return get_method(method).family
    except UserError:
        return "other"


def difficulty_study(a) -> dict:
    from ..config import build_config
    from ..difficulty import reference_panel
    from ..distill import distill
    from ..methods import method_params

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    iters = list(a.iterations)
    if len(iters) not in (1, len(a.ipc)):
        raise UserError(f"--iterations takes one value, or one per --ipc ({len(a.ipc)}); got {len(iters)}")
    ds = _load_dataset(a.dataset)
    jf = out / f"difficulty-{ds.name}.json"
    prev = json.loads(jf.read_text()) if jf.is_file() else {}
    results = {(r["ipc"], r["method"]): r for r in prev.get("runs", [])}
    for r in results.values():  # files written before track_every was kept per run
        r.setdefault("track_every", prev.get("meta", {}).get("track_every"))
    panel = reference_panel(ds, model="ConvNet", num_models=a.panel_models, epochs=a.panel_epochs, log=_log)
    for k, ipc in enumerate(a.ipc):
        n_it = iters[k] if len(iters) > 1 else iters[0]
        for method in a.methods:
            key = (ipc, method)
            if key in results and results[key].get("status") == "ok" and results[key]["iterations"] == n_it \
                    and not a.rerun:
                if results[key].get("diag") != DIAG_VERSION:  # runs finished before these diagnostics existed
                    _add_norms(results[key], ds, a, panel)
                    _write_difficulty(out, ds.name, results, a)
                continue
            preset = _preset_for(method, ds.name, ipc)
            over = {"dataset": ds.name, "ipc": ipc, "method": method, "seed": a.seed, "iterations": n_it,
                    "init": "real", "track_every": a.track_every, "panel_models": a.panel_models,
                    "panel_epochs": a.panel_epochs, "eval_every": 0, "checkpoint_every": max(n_it, 1),
                    "out_dir": a.runs, "name": f"study-{method}-{ds.name}-ipc{ipc}-s{a.seed}", "lambda_sdc": 0.0}
            if a.model:
                over["model"] = a.model
                over["eval_models"] = [a.model]
            t = time.perf_counter()
            rec = {"ipc": ipc, "method": method, "iterations": n_it, "track_every": a.track_every, "preset": preset,
                   "model": None, "init": "own" if method in OWN_INIT else "shared", "family": _family(method)}
            try:
                cfg = build_config(preset, over, method_params)
                rec["model"] = cfg.model
                rec["method_args"] = cfg.method_args
                _log(f"{method} ipc {ipc}: {n_it} iterations ({preset or 'defaults'}, {cfg.model})")
                res = distill(cfg, ds, progress=False, resume=not a.rerun, final_eval=a.eval, panel=panel)
                rec["status"] = "ok"
                rec["run_dir"] = str(res.run_dir)
                if a.eval and res.metrics.get("last"):
                    m = res.metrics["last"]["models"]
                    rec["test_mean"] = next(iter(m.values()))["mean"]
            except UserError as e:  # a missing buffer, a divergence: the study goes on without this method
                rec["status"] = "failed"
                rec["reason"] = str(e).splitlines()[0][:300]
                _log(f"{method} ipc {ipc}: not run ({rec['reason']})")
            run_dir = Path(a.runs) / over["name"]
            curve = _read_curve(run_dir)
            rec["curve"] = curve
            if curve:
                rec["gradn_start"], rec["gradn_end"] = curve[0][1], curve[-1][1]
                rec["ratio_end"] = curve[-1][1] / curve[0][1] if curve[0][1] else float("nan")
            rec["seconds"] = round(time.perf_counter() - t, 1)
            if rec["status"] == "ok":
                _add_norms(rec, ds, a, panel)
            results[key] = rec
            if curve:
                _log(f"{method} ipc {ipc}: GraDN {rec['gradn_start']:.4g} -> {rec['gradn_end']:.4g} "
                     f"(x{rec['ratio_end']:.3f}) in {rec['seconds']:.0f} s")
            _write_difficulty(out, ds.name, results, a)
    return write_difficulty_outputs(out, ds.name, getattr(a, "_command", None))


DIAG_VERSION = 2


def _add_norms(rec: dict, ds, a, panel) -> None:
    """Diagnostics beside the GraDN curve, from the initial and the final set:
    rec['norm_start'/'norm_end'/'norm_ratio']: mean per-image L2 norm (GraDN grows with the input's scale, so a set
    that merely shrinks looks easier); rec['hard_start'/'hard_end'/'hard_ratio']: GraDN of the images with their
    class as a hard label (methods with soft labels, TESLA and DATM, are tracked against their current soft labels,
    which move too; this separates what the images did)."""
    from ..config import build_config
    from ..distilled import Distilled
    from ..methods import get_method, method_params
    try:
        run_dir = Path(rec["run_dir"])
        raw = _run_config(run_dir)
        margs = raw.pop("method_args", None) or {}
        cfg = build_config(None, {**raw, **margs}, method_params)
        m = get_method(cfg.method)(cfg, ds)
        m.init_synthetic()
        x0 = m.images.detach().flatten(1).norm(dim=1)
        d1 = Distilled.load(run_dir / "distilled.safetensors")
        x1 = d1.images.flatten(1).norm(dim=1)
        rec["norm_start"], rec["norm_end"] = float(x0.mean()), float(x1.mean())
        rec["norm_ratio"] = rec["norm_end"] / rec["norm_start"]
        hard = torch.arange(ds.num_classes).repeat_interleave(cfg.ipc)
        rec["hard_start"] = float(panel.gradn(m.images.detach().cpu(), hard).mean())
        rec["hard_end"] = float(panel.gradn(d1.images.float(), hard).mean())
        rec["hard_ratio"] = rec["hard_end"] / rec["hard_start"]
        rec["diag"] = DIAG_VERSION
    except Exception as e:  # a diagnostic only: never lose the run for it
        rec["norm_ratio"] = None
        _log(f"{rec['method']} ipc {rec['ipc']}: image norms not measured ({type(e).__name__}: {e})")


def _run_config(run_dir: Path) -> dict:
    import yaml
    return yaml.safe_load((run_dir / "config.yaml").read_text()) or {}


def _write_difficulty(out: Path, dataset: str, results: dict, a) -> None:
    # another process may be filling other IPCs into the same file: keep its runs (under a lock)
    from ..difficulty import _file_lock
    jf = out / f"difficulty-{dataset}.json"
    with _file_lock(Path(a.runs) / f".difficulty-{dataset}.lock"):  # beside the runs, not the results
        if jf.is_file():
            try:
                for r in json.loads(jf.read_text()).get("runs", []):
                    if r["ipc"] not in a.ipc:  # another invocation's IPC: the file has its latest state
                        results[(r["ipc"], r["method"])] = r
                    else:
                        results.setdefault((r["ipc"], r["method"]), r)
            except (json.JSONDecodeError, KeyError):
                pass
        _write_difficulty_locked(out, dataset, results, a)


def _write_difficulty_locked(out: Path, dataset: str, results: dict, a) -> None:
    runs = sorted(results.values(), key=lambda r: (r["ipc"], _method_rank(r["method"])))
    meta = {"dataset": dataset, "seed": a.seed, "panel": {
        "model": "ConvNet", "num_models": a.panel_models, "epochs": a.panel_epochs}, "command": getattr(a, "_command",
                                                                                                         None)}
    _atomic_text(out / f"difficulty-{dataset}.json", json.dumps({"meta": meta, "runs": runs}, indent=1))


def _method_rank(m: str) -> int:
    order = list(GM_METHODS) + ["dm"] + list(TM_METHODS)
    return order.index(m) if m in order else len(order)


def _trend(rec: dict, tol: float) -> str:
    r = rec.get("ratio_end")
    if r is None or not math.isfinite(r):
        return "-"
    return "harder" if r > 1 + tol else "easier" if r < 1 - tol else "flat"


def write_difficulty_outputs(out: Path, dataset: str, command: str | None = None, tol: float = 0.02) -> dict:
    jf = Path(out) / f"difficulty-{dataset}.json"
    if not jf.is_file():
        raise UserError(f"no difficulty results at {jf}")
    data = json.loads(jf.read_text())
    runs, meta = data["runs"], data["meta"]
    command = command or meta.get("command")
    lines = [f"# Synthetic-set difficulty while distilling ({dataset})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    p = meta["panel"]
    lines += [f"GraDN: mean over the synthetic set of the per-sample gradient norm, averaged over the fixed reference "
              f"panel ({p['num_models']} x {p['model']}, {p['epochs']} epoch(s)), measured every "
              f"{_every(runs, meta)} iterations; init=real, seed {meta['seed']}, lambda_sdc=0. Trend: end/start "
              f"above {1 + tol:g} = harder, below {1 - tol:g} = easier.", "",
              "Image norm end/start: the mean per-image L2 norm of the set at the end over that at iteration 0 "
              "(GraDN scales with the input, so a set that only shrinks would look easier). Hard-label GraDN "
              "end/start: the same ratio with each image's class as a hard label (TESLA and DATM are tracked "
              "against their own soft labels, which change during the run).", "",
              "| IPC | method | family | network | init | iterations | GraDN start | GraDN end | end/start | "
              "min/max of ratio | image norm end/start | hard-label GraDN end/start | trend |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r.get("status") != "ok":
            lines.append(f"| {r['ipc']} | {r['method'].upper()} | {r['family']} | {r.get('model') or '-'} | "
                         f"{r.get('init', '-')} | {r['iterations']} | - | - | - | - | - | - | not run: "
                         f"{r.get('reason', '?').replace('|', '/')} |")
            continue
        c = r["curve"]
        ratios = [g / c[0][1] for _, g in c] if c and c[0][1] else []
        nr = r.get("norm_ratio")
        lines.append(f"| {r['ipc']} | {r['method'].upper()} | {r['family']} | {r['model']} | {r.get('init', '-')} | "
                     f"{r['iterations']} | {r['gradn_start']:.4g} | {r['gradn_end']:.4g} | {r['ratio_end']:.3f} | "
                     f"{min(ratios):.3f} / {max(ratios):.3f} | {f'{nr:.3f}' if nr else '-'} | "
                     f"{_fmt_ratio(r.get('hard_ratio'))} | {_trend(r, tol)} |")
    lines.append("")
    for ipc in sorted({r["ipc"] for r in runs}):
        fam: dict = {}
        for r in runs:
            if r["ipc"] == ipc and r.get("status") == "ok":
                t, th = _trend(r, tol), _trend({"ratio_end": r.get("hard_ratio")}, tol)
                fam.setdefault(r["family"], []).append(
                    f"{r['method'].upper()} {t}" + (f" (images with hard labels: {th})" if th not in ("-", t) else ""))
        lines.append(f"- IPC {ipc}: " + "; ".join(f"{f}: {', '.join(v)}" for f, v in fam.items()))
    md = "\n".join(lines) + "\n"
    _atomic_text(Path(out) / f"difficulty-{dataset}.md", md)
    fig = Path(out) / f"difficulty-{dataset}.png"
    _plot_difficulty(fig, runs, dataset)
    _log(f"wrote {Path(out) / f'difficulty-{dataset}.md'}, {fig}")
    return data


def _fmt_ratio(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _every(runs: list[dict], meta: dict) -> str:
    by_ipc: dict = {}
    for r in runs:
        by_ipc.setdefault(r["ipc"], set()).add(r.get("track_every", meta.get("track_every")))
    return "; ".join(f"{'/'.join(str(v) for v in sorted(vs, key=str))} (IPC {i})" for i, vs in sorted(by_ipc.items()))


def _plot_difficulty(path: Path, runs: list[dict], dataset: str) -> None:
    from ..plots import subplots
    from ..distilled import atomic_write
    ipcs = sorted({r["ipc"] for r in runs if r.get("curve")})
    if not ipcs:
        return
    fig, axes = subplots(1, len(ipcs), figsize=(5 * len(ipcs), 3.8), squeeze=False)
    styles = {"gradient": "-", "distribution": ":", "trajectory": "--", "other": "-."}
    for ax, ipc in zip(axes[0], ipcs):
        for j, r in enumerate(sorted((r for r in runs if r["ipc"] == ipc and r.get("curve")),
                                     key=lambda r: _method_rank(r["method"]))):
            c = r["curve"]
            if not c[0][1]:
                continue
            ax.plot([p[0] for p in c], [p[1] / c[0][1] for p in c], ls=styles.get(r["family"], "-"),
                    color=f"C{_method_rank(r['method'])}", marker="." if len(c) < 40 else None,
                    label=f"{r['method'].upper()} ({r['family'][:4]}.)")
        ax.axhline(1.0, color="k", lw=0.7)
        ax.set_title(f"{dataset} IPC {ipc}", fontsize=10)
        ax.set_xlabel("distillation iteration")
        ax.set_ylabel("synthetic mean GraDN / initial")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="study", required=True, metavar="{selection,difficulty}")
    p = sub.add_parser("selection", help="easiest / hardest / random subsets by GraDN, accuracy against IPC")
    p.add_argument("--dataset", nargs="+", default=["mnist"], help="dataset(s) (default mnist)")
    p.add_argument("--ipcs", nargs="+", type=int, default=[1, 10, 50, 100, 500])
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="evaluation seeds (networks' init, batch order; the random rule's subset)")
    p.add_argument("--eval-model", default="ConvNet", help="architecture trained on each subset (default ConvNet)")
    p.add_argument("--num-models", "--eval-num-models", type=int, default=1, help="networks trained per subset and seed (default 1)")
    p.add_argument("--epochs", "--eval-epochs", type=int, default=300, help="epochs when the step budget allows (default 300)")
    p.add_argument("--max-steps", type=int, default=300,
                   help="at most this many SGD steps per network: fewer epochs for large IPC (default 300; 0 = "
                        "no budget)")
    p.add_argument("--dsa", action="store_true", help="DSA augmentation while training (default: none)")
    p.add_argument("--pool", type=int, default=0,
                   help="score and choose from this many random images per class (default 0 = all)")
    p.add_argument("--panel-model", default="ConvNet", help="architecture of the GraDN panel (default ConvNet)")
    p.add_argument("--panel-models", type=int, default=4, help="panel networks (default 4)")
    p.add_argument("--panel-epochs", type=int, default=1, help="panel training epochs (default 1)")
    p.add_argument("--panel-subset", type=int, default=10000, help="panel training images (default 10000; 0 all)")
    p.add_argument("--panel-seed", type=int, default=0, help="seed of the panel and of the pool (default 0)")
    p.add_argument("--out", default="runs/study", help="output folder (default runs/study)")
    p.add_argument("--replot", action="store_true", help="only rewrite the table and figure from the JSONL files")

    p = sub.add_parser("difficulty", help="synthetic-set GraDN over distillation iterations, one curve per method")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--ipc", nargs="+", type=int, default=[1], help="IPC(s) (default 1)")
    p.add_argument("--methods", nargs="+", default=["dc", "dsa", "dsac", "dm", "mtt", "ftd", "tesla", "datm"])
    p.add_argument("--iterations", nargs="+", type=int, default=[50],
                   help="iterations for every method: one value, or one per --ipc (default 50)")
    p.add_argument("--track-every", type=int, default=5, help="measure GraDN every k iterations (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None,
                   help="distil with this network for every method (default: each preset's network)")
    p.add_argument("--panel-models", type=int, default=4, help="reference panel networks (default 4)")
    p.add_argument("--panel-epochs", type=int, default=1, help="reference panel epochs (default 1)")
    p.add_argument("--eval", action="store_true", help="also run each method's final evaluation")
    p.add_argument("--rerun", action="store_true", help="run again even where a finished run exists")
    p.add_argument("--runs", default="runs/study", help="where the run directories go (default runs/study)")
    p.add_argument("--out", default="runs/study", help="output folder of the table and figure")
    p.add_argument("--replot", action="store_true", help="only rewrite the table and figure from the JSON file")


def run_from_args(args) -> int:
    import shlex
    import sys
    args._command = "easydd " + " ".join(shlex.quote(s) for s in sys.argv[1:]) if len(sys.argv) > 1 else None
    if args.study == "selection":
        for name, v in (("--ipcs", min(args.ipcs)), ("--num-models", args.num_models), ("--epochs", args.epochs)):
            if v < 1:
                raise UserError(f"{name} must be >= 1")
        if args.replot:
            write_selection_outputs(Path(args.out))
        else:
            selection_study(args)
    else:
        if args.track_every < 1 or min(args.iterations) < 1:
            raise UserError("--track-every and --iterations must be >= 1")
        if args.replot:
            write_difficulty_outputs(Path(args.out), args.dataset)
        else:
            difficulty_study(args)
    return 0
