"""``easydd study selection``: easiest / hardest / random real images by GraDN, accuracy against IPC."""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import UserError
from ...runtime import RunsETA, derive_seed, generator
from .common import _atomic_text, _load_dataset, _log, _read_jsonl

RULES = ("easiest", "hardest", "random")
_RULE_STYLE = {"easiest": ("C2", "o"), "hardest": ("C3", "s"), "random": ("C0", "^")}


@dataclass(frozen=True)
class SelectionStudy:
    """The settings of :func:`selection_study` (``easydd study selection`` fills them from its flags)."""
    datasets: tuple[str, ...] = ("mnist",)
    ipcs: tuple[int, ...] = (1, 10, 50, 100, 500)
    rules: tuple[str, ...] = RULES
    seeds: tuple[int, ...] = (0,)              # evaluation seeds (networks' init, batch order; the random subset)
    eval_model: str = "ConvNet"                # architecture trained on each subset
    num_models: int = 1                        # networks trained per subset and seed
    epochs: int = 300                          # epochs when the step budget allows
    max_steps: int = 300                       # at most this many SGD steps per network (0: no budget)
    dsa: bool = False                          # DSA augmentation while training
    pool: int = 0                              # score and choose from this many random images per class (0: all)
    panel_model: str = "ConvNet"
    panel_models: int = 4
    panel_epochs: int = 1
    panel_subset: int = 10000                  # panel training images (0: all)
    panel_seed: int = 0                        # seed of the panel and of the pool
    out: str = "runs/study"
    command: str | None = None                 # the command line, recorded with every run


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
    from ...difficulty import default_panel_dir
    from ...distilled import atomic_write
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


def selection_study(s: SelectionStudy) -> dict:
    """Score each dataset's pool on the panel, train on the easiest / hardest / random ``ipc`` per class, append
    one record per run to ``selection-<dataset>.jsonl`` (runs already there are skipped), then write the summary."""
    from ...distilled import Distilled
    from ...evaluate import evaluate_distilled
    from ...difficulty import reference_panel

    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    for ds_name in s.datasets:
        ds = _load_dataset(ds_name)
        jl = out / f"selection-{ds.name}.jsonl"
        done = {(r["ipc"], r["method"], r["seed"]) for r in _read_jsonl(jl)}
        todo = [(seed, ipc, rule) for seed in s.seeds for ipc in s.ipcs for rule in s.rules
                if (ipc, rule, seed) not in done]
        if not todo:
            _log(f"{ds.name}: every run is already in {jl}")
            continue
        t0 = time.perf_counter()
        pools = pool_indices(ds, s.pool, s.panel_seed)
        smallest = min(len(p) for p in pools)
        if max(s.ipcs) > smallest:
            raise UserError(f"--ipcs {max(s.ipcs)} is larger than the smallest class pool of {ds.name} ({smallest}); "
                            "lower --ipcs or raise --pool")
        panel = reference_panel(ds, model=s.panel_model, num_models=s.panel_models, epochs=s.panel_epochs,
                                seed=s.panel_seed, subset=s.panel_subset or None, log=_log)
        _log(f"{ds.name}: GraDN of {sum(len(p) for p in pools)} pool images on {panel}")
        scores = _score_pools(ds, pools, panel)
        score_seconds = time.perf_counter() - t0
        all_scores = torch.cat([scores[c] for c in range(ds.num_classes)])
        pos = {int(i): (c, j) for c, idx in enumerate(pools) for j, i in enumerate(idx.tolist())}
        _log(f"{ds.name}: scores ready in {score_seconds:.0f} s (GraDN mean {float(all_scores.mean()):.4g}, "
             f"min {float(all_scores.min()):.4g}, max {float(all_scores.max()):.4g})")
        eta = RunsETA(len(todo))
        for seed, ipc, rule in todo:
            t = time.perf_counter()
            sel = pick_by_rule(pools, scores, rule, ipc, seed)
            n = int(sel.numel())
            ep = eval_epochs_for(n, s.epochs, s.max_steps)
            d = Distilled(ds.x_train[sel].clone(), ds.y_train[sel].clone(), None,
                          {"dataset": ds.name, "ipc": ipc, "method": rule, "kind": "selection", "seed": seed})
            r = evaluate_distilled(d, ds, models=[s.eval_model], num_models=s.num_models, epochs=ep,
                                   aug="dsa" if s.dsa else "crop", seed=seed, progress=False)
            m = r["models"][s.eval_model]
            sel_g = [float(scores[pos[int(i)][0]][pos[int(i)][1]]) for i in sel.tolist()]
            rec = {"dataset": ds.name, "ipc": ipc, "method": rule, "seed": seed, "accs": m["accs"],
                   "mean": m["mean"], "model": s.eval_model, "num_models": s.num_models, "eval_epochs": ep,
                   "steps": ep * max(1, math.ceil(n / 256)), "dsa": s.dsa, "pool": s.pool or None,
                   "sel_gradn_mean": statistics.fmean(sel_g), "pool_gradn_mean": float(all_scores.mean()),
                   "panel": {"model": s.panel_model, "num_models": s.panel_models, "epochs": s.panel_epochs,
                             "seed": s.panel_seed, "subset": s.panel_subset},
                   "seconds": round(time.perf_counter() - t, 1), "date": time.strftime("%Y-%m-%d %H:%M"),
                   "note": (f"{ep} epochs (budget {s.max_steps} steps)" if ep < s.epochs else f"{ep} epochs"),
                   "command": s.command}
            with open(jl, "a") as f:
                f.write(json.dumps(rec) + "\n")
            _log(f"{ds.name} ipc {ipc:4d} {rule:8s} seed {seed}: {100 * m['mean']:.2f} % "
                 f"({ep} epochs, selected GraDN {rec['sel_gradn_mean']:.3g}, {rec['seconds']:.0f} s) {eta.step()}")
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
    from ...plots import subplots
    from ...distilled import atomic_write
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
