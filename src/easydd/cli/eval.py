"""``easydd eval RUN_OR_FILE [--models ...]``: the evaluation protocol on a distilled set (or, with
``--scores ddranking``, DD-Ranking's scores); also the evaluation flags ``easydd select`` shares."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError


def add_eval_arguments(p) -> None:
    """The evaluation protocol's flags, the same for `eval` and `select`."""
    p.add_argument("--models", "--eval-models", nargs="+", default=["ConvNet"], help="architectures to evaluate (cross-architecture)")
    p.add_argument("--num-models", "--eval-num-models", type=int, default=5, help="networks trained per architecture")
    p.add_argument("--epochs", "--eval-epochs", type=int, default=None,
                   help="training epochs (default 1000 with --aug dsa or dc, 300 with crop or none)")
    p.add_argument("--aug", "--eval-aug", default=None, metavar="{dsa,dc,crop,none}",
                   help="augmentation while training the evaluation networks (default dsa; dc: the DC code's "
                        "crop/scale/rotate, its MNIST protocol; crop: translation by up to 4 px)")
    p.add_argument("--no-dsa", action="store_true", help="the same as --aug crop")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the set's learned lr or 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU if visible, else cpu), cpu, cuda[:i], mps")


def eval_aug_from_args(a) -> str:
    """--aug, with --no-dsa as its older spelling of --aug crop."""
    if a.no_dsa and a.aug not in (None, "crop"):
        raise UserError(f"--no-dsa means --aug crop; it contradicts --aug {a.aug}: give only one of them")
    return "crop" if a.no_dsa else (a.aug or "dsa")


def add_arguments(p) -> None:
    p.add_argument("target", help="a run directory or a .safetensors distilled file")
    p.add_argument("--dataset", default=None, help="dataset (default: the one recorded in the file)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="where to write metrics (default: the run directory)")
    p.add_argument("--scores", default=None, help="ddranking: HLR, IOR, label- and augmentation-robust scores "
                                                  "(docs/scores.md) instead of the plain evaluation")
    p.add_argument("--full-epochs", type=int, default=20, help="--scores: epochs on the full training set "
                                                               "(computed once per dataset/model, cached)")
    add_eval_arguments(p)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the networks' training and test passes under bf16 autocast (native bf16 only)")
    p.add_argument("--compile", action="store_true", help="the networks' passes through torch.compile")


def run_from_args(a) -> int:
    from ..distilled import Distilled, atomic_write
    from ..evaluate import check_eval_settings, evaluate_distilled, format_result
    check_eval_settings(a.models, a.num_models, a.epochs, a.lr, aug=eval_aug_from_args(a))
    if a.scores is not None and (a.precision != "fp32" or a.compile):
        raise UserError("--precision / --compile apply to the plain evaluation, not to --scores; drop them")
    from ..fastpass import passes_for
    from ..runtime import resolve_device
    passes = passes_for(a.precision, a.compile, resolve_device(a.device))  # bf16 without native units: refused now
    d = Distilled.load(a.target)
    from ..distill import prepare_run_dir  # an output folder that cannot be written fails now, not after training
    target = Path(a.target)
    prepare_run_dir(Path(a.out) if a.out else (target if target.is_dir() else target.parent))
    name = a.dataset or d.meta.get("data_path") or d.meta.get("dataset")
    if not name:
        raise UserError(f"{a.target} does not record its dataset; pass --dataset NAME")
    from ..data import load_dataset
    ds = load_dataset(name, a.data_root, zca=bool(d.meta.get("zca", False)))
    d.check_dataset(ds)
    if a.scores is not None:
        return _eval_scores(a, d, ds)
    r = evaluate_distilled(d, ds, models=a.models, num_models=a.num_models, epochs=a.epochs,
                           aug=eval_aug_from_args(a), lr=a.lr, seed=a.seed, progress=not a.quiet, device=a.device,
                           passes=passes)
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
    from ..distilled import atomic_write
    from ..scores import evaluate_scores, format_scores
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
