"""The method registry finds every Method subclass by its name, with no list to edit."""
import importlib
import inspect
import pkgutil

import pytest

import easydd.methods as registry
from easydd.errors import UserError
from easydd.methods.base import Method


def test_every_method_class_of_every_module_is_registered():
    found = registry.available_methods()
    seen = 0
    for mod in pkgutil.iter_modules(registry.__path__):
        module = importlib.import_module(f"easydd.methods.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            own = cls.__module__ == module.__name__ and "name" in vars(cls)  # defined here, with a name of its own
            if issubclass(cls, Method) and cls is not Method and own:
                assert found[cls.name] is cls, f"{module.__name__}.{cls.__name__} is not found as {cls.name!r}"
                seen += 1
    assert seen >= 8 and {"dc", "dsa", "dsac", "dm", "mtt", "ftd", "tesla", "datm"} <= set(found)
    assert "base" not in found  # Method itself is the face, not a method


def test_a_subclass_defined_elsewhere_is_found_by_name():
    class Toy(Method):
        name = "toy-registry-test"
        family = "test"

    class ToyVariant(Toy):  # no name of its own: a variant, not a second method
        pass

    assert registry.get_method("toy-registry-test") is Toy
    assert registry.get_method("TOY-registry-test") is Toy
    assert ToyVariant not in registry.available_methods().values()
    with pytest.raises(UserError, match="toy-registry-test"):  # the error lists what exists
        registry.get_method("no-such-method")


def test_two_classes_with_one_name_are_an_error():
    import gc

    class Clash(Method):
        name = "dc"

    try:
        with pytest.raises(TypeError, match="two methods are named 'dc'"):
            registry.available_methods()
    finally:
        del Clash
        gc.collect()  # the clash goes with its class, so the tests after this one see the package's DC again
    assert registry.get_method("dc").__module__ == "easydd.methods.gradient"
