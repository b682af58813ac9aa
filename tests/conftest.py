import os

import pytest
import torch

# the suite runs on 2 cores; keep torch from oversubscribing them
torch.set_num_threads(int(os.environ.get("EASYDD_THREADS", "2")))


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
