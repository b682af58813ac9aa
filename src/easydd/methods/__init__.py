"""Distillation methods by name. Each is a small class with the face of ``base.Method``."""
from __future__ import annotations

from ..errors import UserError
from .base import Method
from .distribution import DM
from .gradient import DC, DSAC, DSAMethod

METHODS: dict[str, type[Method]] = {"dc": DC, "dsa": DSAMethod, "dsac": DSAC, "dm": DM}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def _load_optional():
    try:  # trajectory matching lives in its own module; it registers itself
        from . import trajectory  # noqa: F401
    except ImportError as e:  # pragma: no cover - only while the module is absent
        if "trajectory" not in str(e):
            raise


def get_method(name: str) -> type[Method]:
    _load_optional()
    key = name.lower()
    if key not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[key]


def method_params(name: str):
    return get_method(name).Params
