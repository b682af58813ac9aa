"""``easydd select --dataset D --method herding --ipc K``: a set of real images (random, herding, kcenter, easiest,
hardest), saved and evaluated like a distilled one."""
from __future__ import annotations

import json
from pathlib import Path

from .eval import add_eval_arguments, eval_aug_from_args


def add_arguments(p) -> None:
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--method", default="herding")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs", help="output root; the run goes to OUT/<name>")
    p.add_argument("--name", default=None)
    p.add_argument("--no-eval", action="store_true")
    add_eval_arguments(p)


def run_from_args(a) -> int:
    from ..distilled import atomic_write
    from ..evaluate import evaluate_distilled, format_result
    from ..methods.selection import select
    from ..distill import prepare_run_dir
    if not a.no_eval:
        from ..evaluate import check_eval_settings
        check_eval_settings(a.models, a.num_models, a.epochs, a.lr, aug=eval_aug_from_args(a))
    from ..config import _check_name
    _check_name(a.name)
    from ..data import load_dataset
    ds = load_dataset(a.dataset, a.data_root, zca=False)
    if not a.no_eval:  # an unknown model or device fails now, not after the selection is written
        from ..nets import build_network
        from ..runtime import resolve_device
        resolve_device(a.device)
        for m in a.models:
            build_network(m, ds.shape[0], ds.num_classes, tuple(ds.shape[1:]))
    d = select(ds, a.method, a.ipc, seed=a.seed, progress=not a.quiet)
    run_dir = prepare_run_dir(Path(a.out) / (a.name or f"{a.method}-{ds.name}-ipc{a.ipc}-s{a.seed}"))
    d.save(run_dir / "distilled.safetensors")
    d.save_grid(run_dir / "grid.png", ds)
    print(f"selected {len(d)} images ({a.method}, ipc {a.ipc}) -> {run_dir}")
    if not a.no_eval:
        r = evaluate_distilled(d, ds, models=a.models, num_models=a.num_models, epochs=a.epochs,
                               aug=eval_aug_from_args(a), lr=a.lr, seed=a.seed, progress=not a.quiet, device=a.device)
        atomic_write(run_dir / "metrics.json", lambda t: Path(t).write_text(json.dumps(
            {"config": {"dataset": ds.name, "method": a.method, "ipc": a.ipc, "seed": a.seed}, "last": r},
            indent=2)))
        print(format_result(r))
    return 0
