"""The package's face: the functions themselves (real signatures), still functions after their submodule is
imported, whichever import comes first."""
import inspect
import subprocess
import sys

import easydd


def test_the_face_is_the_functions_themselves():
    from easydd.data import load_dataset
    from easydd.distill import distill
    from easydd.evaluate import evaluate_distilled
    from easydd.methods.selection import select
    assert easydd.load_dataset is load_dataset and easydd.distill is distill
    assert easydd.evaluate is evaluate_distilled and easydd.select is select
    for fn in (easydd.load_dataset, easydd.distill, easydd.evaluate, easydd.select):
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_POSITIONAL not in kinds, fn  # no *args hiding the parameters


def test_importing_a_submodule_first_keeps_the_functions():
    code = ("import easydd.distill, easydd.evaluate, inspect; import easydd; "
            "assert inspect.isfunction(easydd.distill) and inspect.isfunction(easydd.evaluate)")
    subprocess.run([sys.executable, "-c", code], check=True)
