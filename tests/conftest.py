import os

import pytest
import torch

# Unit tests use tiny shapes, where one thread is fastest and immune to oversubscription (several OpenMP
# threads contending for 2 busy cores can be 10-20x slower); the end-to-end tests ask for all cores.
torch.set_num_threads(int(os.environ.get("EASYDD_THREADS", "1")))


@pytest.fixture(autouse=True)
def no_reexec(monkeypatch):
    """The CLI re-executes itself to set the allocator; under pytest it must run in-process."""
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")


def run_cli(capsys, *argv):
    """``easydd ARGV`` in-process: (exit code, stdout, stderr)."""
    from easydd.cli import main
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def all_cores():
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    from easydd.data import load_dataset
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist():
    from easydd.data import DataError, load_dataset
    try:
        return load_dataset("mnist")
    except DataError as e:
        pytest.skip(f"MNIST not available: {e}")
