"""``easydd`` command line: a thin layer that turns arguments into library calls.

    easydd distill  [--preset P] key=value ...    distil a dataset, evaluate, write runs/<name>/
    easydd select   --dataset D --method herding --ipc K   a real-image baseline, saved and evaluated alike
    easydd eval     RUN_OR_FILE [--models ...]     the evaluation protocol on a distilled set
    easydd info                                    datasets (and where they were found), methods, presets
    easydd sweep    --preset P --weights 0 0.1 1 --seeds 0 1 2 [--jobs N]   SDC weight chosen on validation
    easydd import   PATH --dataset D [--format dc|mtt|ddranking]   a set saved by other code -> a run directory
    easydd export   RUN --format ddranking --out DIR             the files DD-Ranking's evaluators take
    easydd difficulty | experts | theory | study | report   (see --help of each)

Every command keeps its arguments beside its code: ``add_arguments(parser)`` and ``run_from_args(args)``, in one
module of this package for the built-in commands (distill.py, select.py, eval.py, info.py) and in the module the
PLUGINS table names for the others (this package's difficulty.py and experts.py, the glue of two library
modules; the paper's analyses, the demo, sweep, import and export keep their own). Errors the user can cause print
one line naming the fix and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import UserError
from . import distill as distill_cmd
from . import eval as eval_cmd
from . import info as info_cmd
from . import select as select_cmd

# the built-in commands, in the order --help lists them: name -> (module, help)
COMMANDS = {
    "distill": (distill_cmd, "distil a dataset (a method from `easydd info`)"),
    "select": (select_cmd, "build a set from real images (random, herding, kcenter, easiest, hardest)"),
    "eval": (eval_cmd, "train networks on a distilled set and test them"),
    "info": (info_cmd, "datasets and where they were found, methods, presets"),
}

# subcommands whose arguments live beside their code: name -> (module, help)
PLUGINS = {
    "demo": ("easydd.demo", "the main job: MNIST IPC 1, DSA vs DSA+SDC vs random, in minutes"),
    "difficulty": ("easydd.cli.difficulty", "per-sample difficulty (GraDN, EL2N) of a dataset or a distilled set"),
    "experts": ("easydd.cli.experts", "train expert trajectories for trajectory matching"),
    "theory": ("easydd.paper.theory", "the teacher-student scaling-law simulation (pruning and distillation)"),
    "study": ("easydd.paper.study", "difficulty study and selection-by-difficulty experiments"),
    "report": ("easydd.paper.report", "gather run directories into a paper-style table"),
    "sweep": ("easydd.sweep", "seeds x SDC weights: weight chosen on validation, paired-seed test effect"),
    "import": ("easydd.interop", "a set saved by DC/DSA/DM, MTT/FTD/DATM or for DD-Ranking -> an easydd run"),
    "export": ("easydd.export", "a distilled set as the files DD-Ranking's evaluators take"),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="easydd", description="dataset distillation with Sample Difficulty Correction")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: EASYDD_THREADS, else OMP_NUM_THREADS, else all cores)")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, (mod, help_) in COMMANDS.items():
        mod.add_arguments(sub.add_parser(name, help=help_))
    for name, (mod, help_) in PLUGINS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(_plugin=mod)
        try:
            importlib.import_module(mod).add_arguments(p)
        except ImportError:
            p.set_defaults(_missing=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    from ..runtime import ensure_fast_allocator, set_threads
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
        return COMMANDS[a.command][0].run_from_args(a)
    except UserError as e:  # every error a user can cause (easydd.errors): one line naming the fix, code 2
        print(f"easydd: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("easydd: interrupted; a rerun of the same command resumes from the last checkpoint", file=sys.stderr)
        return 130
