"""``easydd`` command line: a thin layer that turns arguments into library calls.

    easydd distill  [--preset P] key=value ...    distil a dataset, evaluate, write runs/<name>/
    easydd select   --dataset D --method herding --ipc K   a real-image baseline, saved and evaluated alike
    easydd eval     RUN_OR_FILE [--models ...]     the evaluation protocol on a distilled set
    easydd info                                    datasets (and where they were found), methods, presets
    easydd sweep    --preset P --weights 0 0.1 1 --seeds 0 1 2 [--jobs N]   SDC weight chosen on validation
    easydd import   PATH --dataset D [--format dc|mtt|ddranking]   a set saved by other code -> a run directory
    easydd export   RUN --format ddranking --out DIR             the files DD-Ranking's evaluators take
    easydd difficulty | experts | theory | study | report   (see --help of each)

Errors the user can cause print one line naming the fix and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .errors import UserError

# subcommands whose arguments live beside their code: name -> (module, help)
PLUGINS = {
    "demo": ("easydd.demo", "the main job: MNIST IPC 1, DSA vs DSA+SDC vs random, in minutes"),
    "difficulty": ("easydd.difficulty", "per-sample difficulty (GraDN, EL2N) of a dataset or a distilled set"),
    "experts": ("easydd.experts", "train expert trajectories for trajectory matching"),
    "theory": ("easydd.paper.theory", "the teacher-student scaling-law simulation (pruning and distillation)"),
    "study": ("easydd.paper.study", "difficulty study and selection-by-difficulty experiments"),
    "report": ("easydd.paper.report", "gather run directories into a paper-style table"),
    "sweep": ("easydd.sweep", "seeds x SDC weights: weight chosen on validation, paired-seed test effect"),
    "import": ("easydd.interop", "a set saved by DC/DSA/DM, MTT/FTD/DATM or for DD-Ranking -> an easydd run"),
    "export": ("easydd.export", "a distilled set as the files DD-Ranking's evaluators take"),
}


def _add_eval_args(p):
    p.add_argument("--models", nargs="+", default=["ConvNet"], help="architectures to evaluate (cross-architecture)")
    p.add_argument("--num-models", type=int, default=5, help="networks trained per architecture")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 1000 with DSA, 300 without)")
    p.add_argument("--no-dsa", action="store_true", help="plain augmentation instead of DSA during evaluation")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the set's learned lr or 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU if visible, else cpu), cpu, cuda[:i], mps")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="easydd", description="dataset distillation with Sample Difficulty Correction")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("distill", help="distil a dataset (a method from `easydd info`)")
    p.add_argument("--preset", default=None, help="a preset name from `easydd info`")
    p.add_argument("overrides", nargs="*", help="key=value settings, e.g. method=dsa ipc=10 lambda_sdc=0.01")
    p.add_argument("--out", default=None, help="output root (default runs/)")
    p.add_argument("--name", default=None, help="run name (default <method>-<dataset>-ipc<k>[-sdc<l>]-s<seed>)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("select", help="build a set from real images (random, herding, kcenter, easiest, hardest)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--method", default="herding")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs", help="output root; the run goes to OUT/<name>")
    p.add_argument("--name", default=None)
    p.add_argument("--no-eval", action="store_true")
    _add_eval_args(p)

    p = sub.add_parser("eval", help="train networks on a distilled set and test them")
    p.add_argument("target", help="a run directory or a .safetensors distilled file")
    p.add_argument("--dataset", default=None, help="dataset (default: the one recorded in the file)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="where to write metrics (default: the run directory)")
    p.add_argument("--scores", default=None, help="ddranking: HLR, IOR, label- and augmentation-robust scores "
                                                  "(docs/scores.md) instead of the plain evaluation")
    p.add_argument("--full-epochs", type=int, default=20, help="--scores: epochs on the full training set "
                                                               "(computed once per dataset/model, cached)")
    _add_eval_args(p)

    sub.add_parser("info", help="datasets and where they were found, methods, presets")

    for name, (mod, help_) in PLUGINS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(_plugin=mod)
        try:
            importlib.import_module(mod).add_arguments(p)
        except ImportError:
            p.set_defaults(_missing=True)
    return ap


def cmd_distill(a) -> int:
    from .config import build_config, parse_overrides
    from .distill import distill
    from .methods import method_params
    over = parse_overrides(a.overrides)
    if a.out:
        over["out_dir"] = a.out
    if a.name:
        over["name"] = a.name
    cfg = build_config(a.preset, over, method_params)
    res = distill(cfg, progress=not a.quiet, resume=not a.no_resume, final_eval=not a.no_eval)
    print(f"run directory: {res.run_dir}")
    if res.metrics.get("last"):
        from .evaluate import format_result
        print(format_result(res.metrics["last"]))
    return 0


def _load_data(name, root, zca=False):
    from .data import load_dataset
    return load_dataset(name, root, zca=zca)


def cmd_select(a) -> int:
    from .distilled import atomic_write
    from .evaluate import evaluate_distilled, format_result
    from .methods.selection import select
    from .distill import prepare_run_dir
    if not a.no_eval:
        from .evaluate import check_eval_settings
        check_eval_settings(a.models, a.num_models, a.epochs, a.lr)
    from .config import _check_name
    _check_name(a.name)
    ds = _load_data(a.dataset, a.data_root)
    if not a.no_eval:  # an unknown model or device fails now, not after the selection is written
        from .nets import build_network
        from .runtime import resolve_device
        resolve_device(a.device)
        for m in a.models:
            build_network(m, ds.shape[0], ds.num_classes, tuple(ds.shape[1:]))
    d = select(ds, a.method, a.ipc, seed=a.seed, progress=not a.quiet)
    run_dir = prepare_run_dir(Path(a.out) / (a.name or f"{a.method}-{ds.name}-ipc{a.ipc}-s{a.seed}"))
    d.save(run_dir / "distilled.safetensors")
    d.save_grid(run_dir / "grid.png", ds)
    print(f"selected {len(d)} images ({a.method}, ipc {a.ipc}) -> {run_dir}")
    if not a.no_eval:
        r = evaluate_distilled(d, ds, models=a.models, num_models=a.num_models, epochs=a.epochs, dsa=not a.no_dsa,
                               lr=a.lr, seed=a.seed, progress=not a.quiet, device=a.device)
        atomic_write(run_dir / "metrics.json", lambda t: Path(t).write_text(json.dumps(
            {"config": {"dataset": ds.name, "method": a.method, "ipc": a.ipc, "seed": a.seed}, "last": r},
            indent=2)))
        print(format_result(r))
    return 0


def cmd_eval(a) -> int:
    from .distilled import Distilled, atomic_write
    from .evaluate import check_eval_settings, evaluate_distilled, format_result
    check_eval_settings(a.models, a.num_models, a.epochs, a.lr)
    d = Distilled.load(a.target)
    from .distill import prepare_run_dir  # an output folder that cannot be written fails now, not after training
    target = Path(a.target)
    prepare_run_dir(Path(a.out) if a.out else (target if target.is_dir() else target.parent))
    name = a.dataset or d.meta.get("data_path") or d.meta.get("dataset")
    if not name:
        raise UserError(f"{a.target} does not record its dataset; pass --dataset NAME")
    ds = _load_data(name, a.data_root, zca=bool(d.meta.get("zca", False)))
    d.check_dataset(ds)
    if a.scores is not None:
        return _eval_scores(a, d, ds)
    r = evaluate_distilled(d, ds, models=a.models, num_models=a.num_models, epochs=a.epochs, dsa=not a.no_dsa,
                           lr=a.lr, seed=a.seed, progress=not a.quiet, device=a.device)
    target = Path(a.target)
    out = Path(a.out) if a.out else (target if target.is_dir() else target.parent)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "eval.json", lambda t: Path(t).write_text(json.dumps(r, indent=2)))
    if "imported" in d.meta and not (out / "metrics.json").exists():  # its evaluation is its result: report lists it
        atomic_write(out / "metrics.json", lambda t: Path(t).write_text(json.dumps(
            {"config": {"dataset": ds.name, "method": d.meta.get("method"), "ipc": d.ipc, "seed": a.seed},
             "last": r}, indent=2)))
    print(format_result(r))
    print(f"wrote {out / 'eval.json'}")
    return 0


def _eval_scores(a, d, ds) -> int:
    from .distilled import atomic_write
    from .scores import evaluate_scores, format_scores
    if a.scores != "ddranking":
        raise UserError(f"unknown --scores {a.scores!r}; easydd computes: ddranking")
    r = evaluate_scores(d, ds, model=a.models[0], num_models=a.num_models, epochs=a.epochs, lr=a.lr,
                        full_epochs=a.full_epochs, seed=a.seed, device=a.device,
                        log=(lambda m: None) if a.quiet else print)
    target = Path(a.target)
    out = Path(a.out) if a.out else (target if target.is_dir() else target.parent)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "scores.json", lambda t: Path(t).write_text(json.dumps(r, indent=2)))
    print(format_scores(r))
    print(f"wrote {out / 'scores.json'}")
    return 0


def cmd_info(a) -> int:
    from .config import all_presets
    from .methods import available_methods
    from .nets import MODEL_NAMES
    print("datasets (where each would be loaded from now):")
    try:
        from .data import find_sources
        for k, v in find_sources().items():
            print(f"  {k:15s} {v or 'not found locally (easydd can download it: set EASYDD_DOWNLOAD=1)'}")
    except ImportError as e:
        print(f"  (data module unavailable: {e})")
    methods = ", ".join(sorted(available_methods()))
    print(f"methods: {methods}; selection: random, herding, kcenter, easiest, hardest")
    print("models: " + ", ".join(MODEL_NAMES))
    presets = all_presets()
    print(f"presets ({len(presets)}):")
    for k, v in sorted(presets.items()):
        note = f"  [{v['note']}]" if v.get("note") else ""
        print(f"  {k:32s} {v['_file']}{note}")
    return 0


COMMANDS = {"distill": cmd_distill, "select": cmd_select, "eval": cmd_eval, "info": cmd_info}


def main(argv: list[str] | None = None) -> int:
    from .runtime import ensure_fast_allocator, set_threads
    ensure_fast_allocator(argv)
    ap = build_parser()
    a, extra = ap.parse_known_args(argv)
    if extra and a.command == "distill" and all("=" in x and not x.startswith("-") for x in extra):
        a.overrides += extra  # key=value settings after an option (`--quiet ipc=10`) count too
    elif extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if a.threads is not None and a.threads < 1:
        print(f"easydd: error: --threads must be >= 1 (got {a.threads}); leave it out to use every core",
              file=sys.stderr)
        return 2
    set_threads(a.threads)
    try:
        if getattr(a, "_plugin", None):
            if getattr(a, "_missing", False):
                raise UserError(f"`easydd {a.command}` is not available in this build")
            rc = importlib.import_module(a._plugin).run_from_args(a)  # a plugin may return its result (a path)
            return rc if isinstance(rc, int) else 0
        return COMMANDS[a.command](a)
    except UserError as e:  # every error a user can cause (easydd.errors): one line naming the fix, code 2
        print(f"easydd: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("easydd: interrupted; a rerun of the same command resumes from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
