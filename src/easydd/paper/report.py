"""``easydd report``: gather finished runs into a paper-style markdown table.

    easydd report runs/matching benchmarks/results/matching/results.jsonl benchmarks/study/selection.json \
        --figure benchmarks/study/selection.png --out results.md [--readme README.md]

Inputs (any mix): run directories, folders of them, and results files (JSON Lines or a JSON list); what each
must hold is in ``easydd.paper.records``.

The table: one row per method (``+SDC`` rows for lambda_sdc > 0), one column per dataset x IPC; a cell is the mean
+- std over runs (seeds) of each run's mean test accuracy over its evaluation networks (a single run shows the std
over its evaluation networks, marked with a dagger). Where several SDC weights were run for one cell, the weight
with the best mean VALIDATION accuracy is shown (never chosen on the test split; without validation numbers, each
weight gets its own row). The published accuracy (ConvNet, src/easydd/published.yaml) is printed beside a
base-method cell in brackets when dataset, IPC, method and the ConvNet architecture match; budgets cut for a CPU are
listed in the details table under the main one, so a reader can see how far the setting is from the published one.
"""
from __future__ import annotations

import math
import os
import shlex
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..sweep import choose_on_validation
from .records import Record, load_records

__all__ = ["PUBLISHED", "Record", "load_records", "build_table", "render", "add_arguments", "run_from_args",
           "published"]


def _published_table() -> dict[tuple[str, str, int], float]:
    """{(method, dataset, ipc): accuracy %} from the package's published.yaml (the one copy of these numbers)."""
    from importlib import resources

    import yaml
    raw = yaml.safe_load(resources.files("easydd").joinpath("published.yaml").read_text())
    return {(m, d, ipc): float(v) for t in raw["tables"] for m, row in t["rows"].items() for d, vals in row.items()
            for ipc, v in zip(raw["ipc"], vals) if v is not None}


# Published ConvNet accuracies (%): DC/DSA on MNIST / Fashion-MNIST / SVHN (DC repository README), and the
# CIFAR-10 / CIFAR-100 / Tiny ImageNet main table; sources in src/easydd/published.yaml
PUBLISHED: dict[tuple[str, str, int], float] = _published_table()

# display order
_DATASET_ORDER = ["digits", "mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "tiny_imagenet"]
_DATASET_LABEL = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "svhn": "SVHN", "cifar10": "CIFAR-10",
                  "cifar100": "CIFAR-100", "tiny_imagenet": "TinyImageNet", "digits": "digits"}
_METHOD_ORDER = ["random", "herding", "kcenter", "easiest", "hardest", "dc", "dsa", "dsac", "dm", "mtt", "ftd",
                 "tesla", "tesla_soft", "datm"]
_METHOD_LABEL = {"random": "Random", "herding": "Herding", "kcenter": "K-Center", "easiest": "Easiest (GraDN)",
                 "hardest": "Hardest (GraDN)", "dc": "DC", "dsa": "DSA", "dsac": "DSAC", "dm": "DM", "mtt": "MTT",
                 "ftd": "FTD", "tesla": "TESLA", "tesla_soft": "TESLA soft labels", "datm": "DATM"}
_PUBLISHED_MODELS = ("ConvNet",)  # the published numbers are for the width-128 ConvNet


def published(method: str, dataset: str, ipc: int) -> float | None:
    """The published accuracy (%) for this setting, or None."""
    return PUBLISHED.get((str(method).lower(), str(dataset).lower(), int(ipc)))


# ---------------------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------------------

def _order(seq, ref):
    return sorted(seq, key=lambda v: (ref.index(v) if v in ref else len(ref), str(v)))


def _row_key(method: str, lam: float | None) -> tuple:
    return (method, 0 if not lam else 1, lam or 0.0)


@dataclass
class Cell:
    records: list[Record]
    lam: float = 0.0

    @property
    def n(self) -> int:
        return len(self.records)

    def stats(self) -> tuple[float, float, bool]:
        """(mean %, std %, single_run) over runs; a single run: the std over its evaluation networks."""
        means = [100 * r.mean for r in self.records if math.isfinite(r.mean)]
        if not means:
            return float("nan"), float("nan"), False
        if len(means) > 1:
            return statistics.fmean(means), statistics.stdev(means), False
        accs = [100 * a for a in self.records[0].accs if math.isfinite(a)]
        return means[0], (statistics.stdev(accs) if len(accs) > 1 else float("nan")), True


def build_table(records: list[Record], sdc: str = "best") -> dict:
    """Group records into rows (method, SDC weight) and columns (dataset, IPC).

    ``sdc="best"``: the lambda_sdc > 0 runs of a cell go into one '+SDC' row: the only weight run, or the weight
    with the best mean validation accuracy over the seeds every weight was run with (when every run has one);
    otherwise (and with ``sdc="all"``) each weight gets its own row."""
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.method, r.dataset, r.ipc, r.model, float(r.lambda_sdc or 0.0))].append(r)
    columns = sorted({(r.dataset, r.ipc) for r in records},
                     key=lambda c: (_DATASET_ORDER.index(c[0]) if c[0] in _DATASET_ORDER else 99, c[0], c[1]))
    # several evaluation architectures for one method: one row per (method, model)
    models_of = defaultdict(set)
    for (m, d, i, mod, lam) in groups:
        models_of[m].add(mod)
    sdc_runs: dict[tuple, dict[float, list[Record]]] = defaultdict(dict)
    cells: dict[tuple, dict[tuple, Cell]] = defaultdict(dict)
    for (m, d, i, mod, lam), recs in groups.items():
        row_model = mod if (len(models_of[m]) > 1 or mod not in _PUBLISHED_MODELS) else None
        if lam == 0.0:
            cells[(m, row_model, 0.0)][(d, i)] = Cell(recs, 0.0)
        else:
            sdc_runs[(m, row_model, d, i)][lam] = recs
    for (m, row_model, d, i), by_lam in sdc_runs.items():
        if len(by_lam) == 1:
            (lam, recs), = by_lam.items()
            cells[(m, row_model, "sdc" if sdc == "best" else lam)][(d, i)] = Cell(recs, lam)
            continue
        choice = _best_on_val(by_lam) if sdc == "best" else None
        if choice is not None:
            cells[(m, row_model, "sdc")][(d, i)] = Cell(by_lam[choice], choice)
        else:
            for lam, recs in by_lam.items():
                cells[(m, row_model, lam)][(d, i)] = Cell(recs, lam)

    def row_sort(k):
        m, mod, lam = k
        lam_key = -1.0 if lam == 0.0 else (0.0 if lam == "sdc" else float(lam))
        return (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER), m, str(mod), lam_key)
    rows = sorted(cells, key=row_sort)
    return {"columns": columns, "rows": rows, "cells": cells}


def _best_on_val(by_lam: dict[float, list[Record]]) -> float | None:
    """The weight with the best mean validation accuracy over the seeds all weights share (None: no numbers).

    Records without a validation score (a benchmark may score only the seed that chose lambda) are left out of
    the choice; a weight with no scored record at all makes the choice impossible."""
    scored = {lam: [r for r in recs if r.val_mean is not None] for lam, recs in by_lam.items()}
    if any(not recs for recs in scored.values()):
        return None
    common = set.intersection(*({r.seed for r in recs} for recs in scored.values()))

    def score(lam):
        v = [r.val_mean for r in scored[lam] if not common or r.seed in common]
        return statistics.fmean(v)
    return choose_on_validation({lam: score(lam) for lam in by_lam})


def _row_label(row) -> str:
    m, mod, lam = row
    label = _METHOD_LABEL.get(m, m.upper())
    if mod:
        label += f" ({mod})"
    if lam == "sdc":
        label += " +SDC"
    elif lam:
        label += f" +SDC λ={lam:g}"
    return label


def _col_label(col) -> str:
    d, i = col
    return f"{_DATASET_LABEL.get(d, d)} {i}"


def _fmt(mean, std, single) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(std):  # one run of one network: no spread to show
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}" + ("†" if single else "")


def render(records: list[Record], figures=(), *, title: str | None = "Results", sdc: str = "best",
           command: str | None = None, out_dir: Path | None = None, details: bool = True) -> str:
    """The markdown: the main table, a legend, the details table and links to the figures."""
    if not records:
        raise UserError("no finished runs to report")
    t = build_table(records, sdc)
    lines: list[str] = []
    if title:
        lines += [f"## {title}", ""]
    if command:
        lines += [f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}.", ""]
    table, seen = _main_table(t)
    lines += table + [""]
    lines += [" ".join(_legend(seen, t["rows"])), ""]
    if details:
        lines += _details_table(t)
    lines += _figure_links(figures, out_dir)
    return "\n".join(lines).rstrip() + "\n"


def _main_table(t: dict) -> tuple[list[str], dict]:
    """The table's lines, and which kinds of cell it has (for the legend)."""
    cols, rows, cells = t["columns"], t["rows"], t["cells"]
    lines = ["| Method | " + " | ".join(_col_label(c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    seen = {"pub": False, "single": False, "sdc_choice": False, "lone": False}
    for row in rows:
        out = []
        for col in cols:
            c = cells[row].get(col)
            if c is None:
                out.append("-")
                continue
            st = c.stats()
            s = _fmt(*st)
            seen["single"] |= st[2] and math.isfinite(st[1])
            seen["lone"] |= not math.isfinite(st[1]) and math.isfinite(st[0])
            if row[2] == "sdc":
                s += f" (λ={c.lam:g})"
                seen["sdc_choice"] = True
            pub = published(row[0], col[0], col[1])
            if pub is not None and row[2] == 0.0 and all(r.model in _PUBLISHED_MODELS for r in c.records):
                s += f" [{pub:g}]"
                seen["pub"] = True
            out.append(s)
        lines.append(f"| {_row_label(row)} | " + " | ".join(out) + " |")
    return lines, seen


def _legend(seen: dict, rows) -> list[str]:
    legend = ["Test accuracy (%) of networks trained from scratch on each set, final epoch (no checkpoint chosen on "
              "the test split); mean ± std over runs (seeds), each run the mean over its evaluation networks."]
    if seen["single"]:
        legend.append("† a single run: ± is the std over its evaluation networks.")
    if seen["lone"]:
        legend.append("A value without ± is one run of one network.")
    if any(r[1] for r in rows):
        legend.append("A network in brackets after the method: evaluated with that architecture, not the "
                      "width-128 ConvNet.")
    if seen["sdc_choice"]:
        legend.append("+SDC: lambda_sdc > 0; the weight shown in each cell had the best VALIDATION accuracy among "
                      "those run.")
    if seen["pub"]:
        legend.append("[x]: the published ConvNet accuracy for that method, dataset and IPC (docs/references.md; "
                      "DC/DSA repository README, method papers); our budgets may be cut, see the details.")
    return legend


def _details_table(t: dict) -> list[str]:
    """The folded table of budgets, evaluation settings, seeds and notes behind every cell."""
    cols, rows, cells = t["columns"], t["rows"], t["cells"]
    lines = ["<details><summary>Details: budgets, evaluation, sources</summary>", "",
             "| Row | Column | λ | runs (seeds) | eval nets x epochs | iterations | notes |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        for col in cols:
            c = cells[row].get(col)
            if c is None:
                continue
            seeds = sorted({r.seed for r in c.records if r.seed is not None})
            nets = sorted({len(r.accs) for r in c.records})
            eps = sorted({r.eval_epochs for r in c.records if r.eval_epochs is not None})
            its = sorted({r.iterations for r in c.records if r.iterations is not None})
            notes = sorted({r.note for r in c.records if r.note})
            lines.append(f"| {_row_label(row)} | {_col_label(col)} | {c.lam:g} | {c.n} "
                         f"({', '.join(map(str, seeds)) or '-'}) | {'/'.join(map(str, nets))} x "
                         f"{'/'.join(map(str, eps)) or '?'} | {'/'.join(map(str, its)) or '-'} | "
                         f"{'; '.join(n.replace('|', '/') for n in notes) or '-'} |")
    return lines + ["", "</details>", ""]


def _figure_links(figures, out_dir: Path | None) -> list[str]:
    figs = list(dict.fromkeys(str(f) for f in figures))
    if not figs:
        return []
    lines = ["Figures:", ""]
    for f in figs:
        rel = _relpath(f, out_dir)
        lines.append(f"- [{Path(f).name}]({rel})")
        lines.append(f"\n  ![{Path(f).stem}]({rel})\n")
    return lines


def _relpath(f: str, out_dir: Path | None) -> str:
    if out_dir is None:
        return f
    try:
        return os.path.relpath(Path(f).resolve(), Path(out_dir).resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(f).resolve())


START, END = "<!-- easydd report: start -->", "<!-- easydd report: end -->"


def splice_into(path: Path, section: str, placeholder: str = "RESULTS_PLACEHOLDER") -> None:
    """Put ``section`` into a markdown file between the report markers (or in place of ``placeholder``)."""
    from ..distilled import atomic_write
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        new = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    elif placeholder in text:
        new = text.replace(placeholder, block, 1)
    else:
        raise UserError(f"{path} has neither the markers {START} ... {END} nor {placeholder}; add one where the "
                        "results should go")
    atomic_write(path, lambda tmp: Path(tmp).write_text(new))


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="RUN_OR_RESULTS",
                        help="run directories, folders of runs, or results .json/.jsonl files")
    parser.add_argument("--out", default=None, help="write the markdown here (default: print it)")
    parser.add_argument("--figure", dest="figures", nargs="+", default=[], metavar="PNG",
                        help="figures to link under the table (links are relative to --out)")
    parser.add_argument("--sdc", choices=("best", "all"), default="best",
                        help="SDC rows: the weight with the best validation accuracy per cell (default), or one "
                             "row per weight")
    parser.add_argument("--title", default="Results", help="section heading (default 'Results'; '' for none)")
    parser.add_argument("--no-details", action="store_true", help="omit the details table")
    parser.add_argument("--readme", default=None, metavar="MD",
                        help="also splice the section into this markdown file, between the report markers or in "
                             "place of RESULTS_PLACEHOLDER")


def run_from_args(args) -> int:
    records, figs = load_records(args.inputs)
    for f in args.figures:
        if not Path(f).is_file():
            raise UserError(f"figure {f} does not exist")
    out = Path(args.out) if args.out else None
    command = "easydd report " + " ".join(shlex.quote(str(a)) for a in args.inputs)
    if args.figures:
        command += " --figure " + " ".join(shlex.quote(f) for f in args.figures)
    if args.sdc != "best":
        command += f" --sdc {args.sdc}"
    base = out.parent if out else (Path(args.readme).parent if args.readme else None)
    md = render(records, list(args.figures) + figs, title=args.title or None, sdc=args.sdc, command=command,
                out_dir=base, details=not args.no_details)
    if out:
        from ..distilled import atomic_write
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, lambda tmp: Path(tmp).write_text(md))
        print(f"wrote {out} ({len(records)} runs)")
    else:
        print(md)
    if args.readme:
        if out and Path(args.readme).resolve().parent != out.resolve().parent:
            md = render(records, list(args.figures) + figs, title=args.title or None, sdc=args.sdc,
                        command=command, out_dir=Path(args.readme).parent, details=not args.no_details)
        splice_into(Path(args.readme), md)
        print(f"updated {args.readme}")
    return 0
