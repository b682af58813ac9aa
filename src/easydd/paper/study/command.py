"""``easydd study {selection,difficulty}``: the flags, and their conversion into the studies' settings."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from .selection import RULES, SelectionStudy, selection_study, write_selection_outputs
from .tracking import DifficultyStudy, difficulty_study, write_difficulty_outputs


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


def selection_settings(args, command: str | None = None) -> SelectionStudy:
    """The parsed flags of ``easydd study selection`` as the study's settings."""
    return SelectionStudy(
        datasets=tuple(args.dataset), ipcs=tuple(args.ipcs), rules=tuple(args.rules), seeds=tuple(args.seeds),
        eval_model=args.eval_model, num_models=args.num_models, epochs=args.epochs, max_steps=args.max_steps,
        dsa=args.dsa, pool=args.pool, panel_model=args.panel_model, panel_models=args.panel_models,
        panel_epochs=args.panel_epochs, panel_subset=args.panel_subset, panel_seed=args.panel_seed, out=args.out,
        command=command)


def difficulty_settings(args, command: str | None = None) -> DifficultyStudy:
    """The parsed flags of ``easydd study difficulty`` as the study's settings."""
    return DifficultyStudy(
        dataset=args.dataset, ipcs=tuple(args.ipc), methods=tuple(args.methods), iterations=tuple(args.iterations),
        track_every=args.track_every, seed=args.seed, model=args.model, panel_models=args.panel_models,
        panel_epochs=args.panel_epochs, final_eval=args.eval, rerun=args.rerun, runs=args.runs, out=args.out,
        command=command)


def run_from_args(args) -> int:
    import shlex
    import sys
    command = "easydd " + " ".join(shlex.quote(s) for s in sys.argv[1:]) if len(sys.argv) > 1 else None
    if args.study == "selection":
        for name, v in (("--ipcs", min(args.ipcs)), ("--num-models", args.num_models), ("--epochs", args.epochs)):
            if v < 1:
                raise UserError(f"{name} must be >= 1")
        if args.replot:
            write_selection_outputs(Path(args.out))
        else:
            selection_study(selection_settings(args, command))
    else:
        if args.track_every < 1 or min(args.iterations) < 1:
            raise UserError("--track-every and --iterations must be >= 1")
        if args.replot:
            write_difficulty_outputs(Path(args.out), args.dataset)
        else:
            difficulty_study(difficulty_settings(args, command))
    return 0
