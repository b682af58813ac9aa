"""easydd: dataset distillation (DC, DSA, DSAC, DM, MTT, FTD, TESLA, DATM) with Sample Difficulty Correction.

The few calls a user needs::

    import easydd
    ds = easydd.load_dataset("mnist")
    run = easydd.distill(easydd.make_config(method="dsa", dataset="mnist", ipc=1, lambda_sdc=0.01))
    print(easydd.evaluate(run.distilled, ds))
    d = easydd.Distilled.load("runs/dsa-mnist-ipc1-s0")
"""
from __future__ import annotations

__version__ = "0.1.0"

# the functions themselves, not wrappers: their signatures and docstrings are the real ones. Importing them here also
# keeps `easydd.distill` / `easydd.evaluate` the functions after `import easydd.distill` (the submodule is loaded by
# then, so the import system does not rebind the package attribute).
from .data import load_dataset
from .distill import distill
from .distilled import Distilled
from .errors import UserError
from .evaluate import evaluate_distilled as evaluate
from .methods.selection import select


def make_config(preset: str | None = None, **overrides):
    """A validated RunConfig from an optional preset plus keyword overrides."""
    from .config import build_config
    from .methods import method_params
    return build_config(preset, overrides, method_params)


__all__ = ["Distilled", "UserError", "load_dataset", "make_config", "distill", "evaluate", "select", "__version__"]
