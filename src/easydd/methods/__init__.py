"""Distillation methods by name. Each is a small class with the face of ``base.Method``.

The registry is the tree of ``Method``'s subclasses: every module of this package is imported on the first lookup,
and every class in the tree that sets its own ``name`` is a method under that name. A new file here (or a subclass
defined anywhere before the lookup, e.g. in your script) is found with no list to edit.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import UserError
from .base import Method

_modules_imported = False


def _import_package_modules() -> None:
    """Import every module of easydd.methods once, so that the classes they define exist."""
    global _modules_imported
    if not _modules_imported:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _modules_imported = True


def available_methods() -> dict[str, type[Method]]:
    """{name: class} for every subclass of Method that sets its own ``name``; two classes with one name are an
    error (give yours another name)."""
    _import_package_modules()
    found: dict[str, type[Method]] = {}
    todo = list(Method.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if "name" not in vars(cls):  # inherits its parent's name: a variant, not a method of its own
            continue
        key = cls.name.lower()
        other = found.setdefault(key, cls)
        if other is not cls:
            raise TypeError(f"two methods are named {cls.name!r}: {other.__module__}.{other.__qualname__} and "
                            f"{cls.__module__}.{cls.__qualname__}; give one of them another name")
    return found


def get_method(name: str) -> type[Method]:
    methods = available_methods()
    key = name.lower()
    if key not in methods:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(sorted(methods))}")
    return methods[key]


def method_params(name: str):
    return get_method(name).Params
