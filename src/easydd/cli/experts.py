"""``easydd experts``: train expert trajectories for trajectory matching (the library part is ``easydd.experts``).

Also a process entry point of its own, for ``torchrun --nproc-per-node P -m easydd.cli.experts ...``: each process
it starts takes its share of the experts (and of the cores).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..experts import (MANIFEST, check_recipe, recipe_from_preset, train_experts,
                       train_experts_parallel)
from ..runtime import share_cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--preset", default=None, help="take the expert recipe (and output directory) of a trajectory preset, e.g. "
                                     "mtt-mnist-ipc1-cpu; explicit options override it")
    a("--dataset", default=None, help="dataset name (mnist, fashion_mnist, cifar10, ...)")
    a("--num-experts", type=int, default=None, help="number of experts (reference: 100)")
    a("--epochs", type=int, default=None, help="epochs per expert (reference: 50; DATM: 100)")
    a("--model", default=None, help="network (default ConvNet; no BatchNorm)")
    a("--out", default=None, help="output directory (default buffers/<dataset>_<model>[_zca][_sam])")
    a("--lr", type=float, default=None, help="SGD learning rate (default 0.01)")
    a("--batch-size", type=int, default=None, help="batch size (default 256)")
    a("--momentum", type=float, default=None, help="SGD momentum (default 0, as the reference)")
    a("--weight-decay", type=float, default=None, help="weight decay (default 0)")
    a("--sam", type=float, default=None, metavar="RHO", help="sharpness-aware minimisation radius (FTD's flat "
                                                             "experts; 0 = plain SGD)")
    a("--gsam-alpha", type=float, default=None, help="GSAM surrogate-gap weight alpha (0 = plain SAM)")
    a("--sam-adaptive", action="store_true", default=None, help="adaptive SAM (ASAM) perturbation")
    a("--no-dsa", action="store_true", default=None, help="train without DSA augmentation")
    a("--zca", action="store_true", default=None, help="ZCA-whiten the data (distill later with zca=true)")
    a("--subset", type=int, default=None, help="train on a class-balanced subset of N images (CPU budgets)")
    a("--seed", type=int, default=None, help="seed (default 0)")
    a("--precision", choices=["fp32", "bf16"], default=None, help="bf16: the training passes under bf16 autocast "
                                                                  "(CPUs with AMX / AVX512-BF16, GPUs with bf16); "
                                                                  "default fp32")
    a("--compile", action="store_true", default=None, help="the training passes through torch.compile")
    a("--nproc", type=int, default=1, help="train in P local processes (or launch with torchrun)")
    a("--data-root", default=None, help="data root")
    a("--device", default=None, help="cpu or cuda[:i] (default: cuda if available)")
    a("--no-progress", action="store_true", help="no progress bar")


def _recipe(args) -> tuple[dict, str | None]:
    """(expert recipe, output directory): the preset's, with every option given on the command line on top."""
    recipe, out = ({}, None)
    if getattr(args, "preset", None):
        recipe, out = recipe_from_preset(args.preset)
    explicit = {"dataset": args.dataset, "num_experts": args.num_experts, "epochs": args.epochs,
                "model": args.model, "lr": args.lr, "batch_size": args.batch_size, "momentum": args.momentum,
                "weight_decay": args.weight_decay, "sam_rho": args.sam, "gsam_alpha": args.gsam_alpha,
                "sam_adaptive": args.sam_adaptive, "dsa": None if args.no_dsa is None else not args.no_dsa,
                "zca": args.zca, "subset": args.subset, "seed": args.seed,
                "precision": args.precision, "compile": args.compile}
    recipe.update({k: v for k, v in explicit.items() if v is not None})
    for need, flag in (("dataset", "--dataset"), ("num_experts", "--num-experts"), ("epochs", "--epochs")):
        if recipe.get(need) is None:
            raise UserError(f"{flag} is required (or --preset NAME of a trajectory preset)")
    return recipe, args.out or out


def run_from_args(args) -> Path:
    recipe, out = _recipe(args)
    check_recipe(**{k: recipe[k] for k in ("num_experts", "epochs", "lr", "batch_size", "momentum", "weight_decay",
                                           "subset", "seed") if k in recipe}, nproc=args.nproc)
    kwargs = dict(recipe, out_dir=out, data_root=args.data_root, device=args.device,
                  progress=not args.no_progress)
    if args.nproc > 1:
        path = train_experts_parallel(args.nproc, **kwargs)
    else:
        share_cores(int(os.environ.get("WORLD_SIZE", 1)), args.device)  # under torchrun: this process's share
        path = train_experts(**kwargs)
    man = json.loads((Path(path) / MANIFEST).read_text()) if (Path(path) / MANIFEST).exists() else None
    if man is not None:
        accs = [e["val_acc"] for e in man["experts"] if e.get("val_acc") is not None]
        acc = f"; final validation accuracy {sum(accs) / len(accs):.3f} (mean of {len(accs)})" if accs else ""
        print(f"{man['num_experts']} experts x {man['epochs']} epochs in {path}{acc}")
    return Path(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m easydd.cli.experts", description="train expert trajectories")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        run_from_args(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
