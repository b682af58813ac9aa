"""``easydd theory`` / ``python -m easydd.paper.theory``: the flags, both sweeps, the files."""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Sequence

from .outputs import write_outputs
from .sweeps import MODES, run_distillation_sweep, run_pruning_sweep


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``easydd theory`` options to ``parser`` (used by the package CLI and by :func:`main`)."""
    g = parser.add_argument_group("theory simulation (teacher-student perceptron)")
    g.add_argument("--N", type=int, default=100, help="input dimension (default 100)")
    g.add_argument("--alpha-total", type=float, nargs="*", default=[1.0, 2.0, 4.0, 8.0, 16.0],
                   help="P/N of the full data, one pruning panel each (default 1 2 4 8 16); "
                        "give none to skip pruning")
    g.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
                   help="kept fractions f (default 0.05 0.1 0.2 0.3 0.5 0.7 1)")
    g.add_argument("--theta-p", type=float, default=0.0,
                   help="probe angle from the teacher in degrees; 0 = perfect probe (default 0)")
    g.add_argument("--seeds", type=int, default=5, help="number of seeds averaged (default 5)")
    g.add_argument("--seed", type=int, default=0, help="base seed of all Generators (default 0)")
    g.add_argument("--kind", choices=["maxmargin", "logistic", "perceptron"], default="maxmargin",
                   help="student trained on the kept / distilled sets (default maxmargin)")
    g.add_argument("--budgets", type=float, nargs="*", default=[0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                   help="distillation budgets alpha_syn = M/N (default 0.05 0.1 0.2 0.5 1 2); "
                        "give none to skip distillation")
    g.add_argument("--distill-alpha-total", type=float, default=4.0,
                   help="P/N of the full data the sets are distilled from (default 4)")
    g.add_argument("--lambda-sdc", type=float, nargs="+", default=[-0.1, 0.0, 0.1, 1.0],
                   help="SDC weights; 0 (no penalty) is always added; < 0 pushes synthetic points harder "
                        "(default -0.1 0 0.1 1)")
    g.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["gradient", "trajectory"],
                   help="distillation variants (default gradient trajectory)")
    g.add_argument("--steps", type=int, default=200, help="distillation iterations (default 200)")
    g.add_argument("--out", default="runs/theory", help="output directory (default runs/theory)")
    return parser


def run_from_args(args: argparse.Namespace) -> dict:
    """Run both sweeps from parsed arguments, write the outputs in ``args.out`` and return their summaries."""
    t0 = time.time()
    theta = math.radians(args.theta_p)
    prune_rows = []
    if args.alpha_total:
        prune_rows = run_pruning_sweep(args.N, args.alpha_total, args.fractions, theta, args.seeds, args.kind,
                                       seed=args.seed)
    t1 = time.time()
    distill_rows = []
    lams = sorted(set([0.0] + [float(l) for l in args.lambda_sdc]))
    if args.budgets:
        distill_rows = run_distillation_sweep(args.N, args.distill_alpha_total, args.budgets, lams, args.modes,
                                              theta, args.seeds, args.kind, args.steps, seed=args.seed)
    t2 = time.time()
    meta = dict(N=args.N, alpha_total=list(args.alpha_total or []), fractions=list(args.fractions),
                theta_p_deg=args.theta_p, seeds=args.seeds, seed=args.seed, kind=args.kind,
                budgets=list(args.budgets or []), distill_alpha_total=args.distill_alpha_total,
                lambda_sdc=lams, modes=list(args.modes), steps=args.steps,
                seconds=round(t2 - t0, 2), seconds_pruning=round(t1 - t0, 2), seconds_distillation=round(t2 - t1, 2))
    res = write_outputs(args.out, prune_rows, distill_rows, meta)
    print(res["markdown"])
    print(f"wrote {os.path.join(args.out, 'theory')}.{{png,csv,md,json}} in {t2 - t0:.1f} s "
          f"(pruning {t1 - t0:.1f} s, distillation {t2 - t1:.1f} s)")
    res["meta"] = meta
    return res


def cli(args: argparse.Namespace) -> dict:
    """Alias of :func:`run_from_args`."""
    return run_from_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m easydd.paper.theory [options]``."""
    parser = argparse.ArgumentParser(prog="easydd theory", description="Teacher-student simulation of data pruning "
                                     "(Sorscher et al. 2022) and of dataset distillation with the SDC penalty.")
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
    return 0
