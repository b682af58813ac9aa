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

from .distilled import Distilled
from .errors import UserError


def _callable_module(name: str, fn) -> None:
    """``easydd.distill`` and ``easydd.evaluate`` are functions of this package AND submodules: importing the
    submodule rebinds the package attribute to the module, so the module is made callable as the function."""
    import sys
    import types

    class _Module(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return fn(*args, **kwargs)
    sys.modules[name].__class__ = _Module


def load_dataset(*args, **kwargs):
    from .data import load_dataset as _ld
    return _ld(*args, **kwargs)


def make_config(preset: str | None = None, **overrides):
    """A validated RunConfig from an optional preset plus keyword overrides."""
    from .config import build_config
    from .methods import method_params
    return build_config(preset, overrides, method_params)


def distill(cfg, dataset=None, **kwargs):
    from .distill import distill as _d
    return _d(cfg, dataset, **kwargs)


def evaluate(distilled, dataset, **kwargs):
    from .evaluate import evaluate_distilled
    return evaluate_distilled(distilled, dataset, **kwargs)


def select(dataset, method: str, ipc: int, seed: int = 0):
    from .methods.selection import select as _s
    return _s(dataset, method, ipc, seed)


__all__ = ["Distilled", "UserError", "load_dataset", "make_config", "distill", "evaluate", "select", "__version__"]
