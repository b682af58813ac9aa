"""Fast unit tests of the core pieces: networks, DSA, the distilled set, config, training, evaluation."""
import json

import pytest
import torch

from easydd.augment import DSA, DCAugment, PlainAugment
from easydd.config import build_config, parse_overrides
from easydd.distilled import Distilled, DistilledFileError
from easydd.errors import UserError
from easydd.methods import method_params
from easydd.nets import MODEL_NAMES, UnknownModel, build_network, count_parameters, make_network
from easydd.runtime import generator
from easydd.train import Ensemble, TrainSpec, soft_cross_entropy


# -- networks -----------------------------------------------------------------------------------------------
def test_reference_parameter_counts():
    assert count_parameters(build_network("ConvNet", 3, 10, (32, 32))) == 320_010
    assert count_parameters(build_network("ConvNet", 3, 100, (32, 32))) == 504_420


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_network_runs_on_both_sizes(name):
    for c, s in ((3, 32), (1, 28)):
        net = make_network(name, c, 7, (s, s), seed=0)
        assert net(torch.randn(2, c, s, s)).shape == (2, 7)
        assert net.embed(torch.randn(2, c, s, s)).dim() == 2


def test_convnet_d4_on_64px_and_functional_call():
    net = make_network("ConvNetD4", 3, 200, (64, 64), seed=0)
    x = torch.randn(2, 3, 64, 64)
    params = {k: v.detach() * 1.0 for k, v in net.named_parameters()}
    out = torch.func.functional_call(net, params, (x,))
    assert torch.allclose(out, net(x))


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = make_network("ConvNet", 1, 10, (28, 28), seed=3)
    b = make_network("ConvNet", 1, 10, (28, 28), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_model_names_the_choices():
    with pytest.raises(UnknownModel, match="choose one of"):
        build_network("ConvNot", 1, 10, (28, 28))


# -- augmentation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_dsa_siamese_same_transform_for_both_batches(family):
    dsa = DSA(family)
    g = generator(0)
    shared = torch.randn(1, 3, 16, 16)
    real = torch.cat([shared, torch.randn(7, 3, 16, 16)])
    syn = torch.cat([shared, torch.randn(2, 3, 16, 16)])
    plan = dsa.sample(1, (16, 16), g, siamese=True)
    assert torch.allclose(dsa.apply(real, plan)[0], dsa.apply(syn, plan)[0], atol=1e-6)


def test_dsa_is_differentiable_and_per_sample_differs():
    dsa = DSA("scale")
    x = torch.randn(1, 1, 16, 16).repeat(6, 1, 1, 1).requires_grad_(True)
    y = dsa(x, generator(1))
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.allclose(y[0], y[1])  # per-sample parameters


def test_dsa_uses_only_the_given_generator():
    state = torch.random.get_rng_state()
    a = DSA()(torch.randn(4, 3, 8, 8, generator=generator(5)), generator(2))
    b = DSA()(torch.randn(4, 3, 8, 8, generator=generator(5)), generator(2))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), state)


def test_dsa_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="unknown DSA"):
        DSA("color_warp")


def test_plain_augment_shape():
    assert PlainAugment()(torch.randn(3, 1, 28, 28), generator(0)).shape == (3, 1, 28, 28)


def test_dc_augment_one_transform_per_image():
    """Each transform alone does what the DC code's does: crop moves the content by -3..4 px (mean fill), rotation
    keeps a constant image constant (mean fill), scale keeps the centre, noise is tiny; the mix is reproducible."""
    dot = torch.zeros(1, 1, 16, 16)
    dot[0, 0, 8, 8] = 1.0
    g = generator(0)
    moves = {tuple((DCAugment("crop")(dot, g)[0, 0] > 0.5).nonzero()[0].tolist()) for _ in range(200)}
    assert {r - 8 for r, _ in moves} == set(range(-3, 5)) and {c - 8 for _, c in moves} == set(range(-3, 5))
    const = torch.full((4, 3, 16, 16), 0.7)
    assert torch.allclose(DCAugment("rotate")(const, g), const, atol=1e-5)
    assert torch.allclose(DCAugment("crop")(const, g), const)
    centre = DCAugment("scale")(const, g)[:, :, 6:10, 6:10]
    assert torch.equal(centre, const[:, :, 6:10, 6:10])
    x = torch.randn(64, 1, 28, 28)
    assert (DCAugment("noise")(x, g) - x).abs().max() < 0.01
    a, b = DCAugment()(x, generator(3)), DCAugment()(x, generator(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    with pytest.raises(ValueError, match="unknown DC augmentation"):
        DCAugment("crop_warp")


# -- the distilled set --------------------------------------------------------------------------------------
def test_distilled_round_trip_hard_and_soft(tmp_path, digits):
    for labels, lr in ((torch.arange(10), None), (torch.randn(10, 10), 0.0123)):
        d = Distilled(torch.randn(10, 1, 8, 8), labels, lr, {"dataset": "digits", "ipc": 1, "method": "x"})
        p = d.save(tmp_path / "set.safetensors")
        e = Distilled.load(p)
        assert torch.equal(d.images, e.images) and torch.equal(d.labels, e.labels)
        assert e.lr == (None if lr is None else pytest.approx(lr)) and e.meta["method"] == "x"
        assert json.loads((tmp_path / "set.json").read_text())["dataset"] == "digits"
        assert e.save_grid(tmp_path / "grid.png", digits).stat().st_size > 0


def test_distilled_load_errors(tmp_path, digits):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(DistilledFileError, match="not a readable"):
        Distilled.load(bad)
    with pytest.raises(DistilledFileError, match="no such file"):
        Distilled.load(tmp_path / "missing.safetensors")
    d = Distilled(torch.randn(10, 1, 8, 8), torch.arange(10), None, {"dataset": "mnist"})
    with pytest.raises(DistilledFileError, match="made from 'mnist'"):
        d.check_dataset(digits)
    assert not list(tmp_path.glob("*.tmp"))


# -- config -------------------------------------------------------------------------------------------------
def test_config_preset_overrides_and_errors():
    cfg = build_config("dsa-mnist-ipc1-cpu", parse_overrides(["lambda_sdc=0.01", "lr_img=0.2"]), method_params)
    assert cfg.lambda_sdc == 0.01 and cfg.method_args["lr_img"] == 0.2 and cfg.iterations == 100
    assert cfg.method_args["batch_real"] == 64  # from the -cpu preset, inherited over its base
    with pytest.raises(UserError, match="unknown preset"):
        build_config("dsa-mnsit-ipc1", {}, method_params)
    with pytest.raises(UserError, match="did you mean 'lr_img'"):
        build_config(None, {"method": "dsa", "lr_im": 1}, method_params)
    with pytest.raises(UserError, match="unknown method"):
        build_config(None, {"method": "dd"}, method_params)
    with pytest.raises(UserError, match="ipc must be"):
        build_config(None, {"ipc": 0}, method_params)
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["ipc"])
    with pytest.raises(UserError, match="eval_aug must be one of dsa, dc, crop, none"):
        build_config(None, {"eval_aug": "autoaug"}, method_params)
    with pytest.raises(UserError, match="eval_dsa is now eval_aug: write eval_aug=dsa"):
        build_config(None, {"eval_dsa": True}, method_params)


def test_dc_presets_evaluate_as_the_dc_code_does():
    """The DC code augments MNIST evaluations (crop/scale/rotate, 1000 epochs) and nothing else (300 epochs)."""
    assert build_config("dc-mnist-ipc1", {}, method_params).eval_aug == "dc"
    assert build_config("dc-fashion_mnist-ipc1", {}, method_params).eval_aug == "none"
    assert build_config("dsa-fashion_mnist-ipc1", {}, method_params).eval_aug == "dsa"


# -- training and evaluation --------------------------------------------------------------------------------
def test_soft_cross_entropy_matches_hard_for_peaked_logits():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 2, 1, 1])
    peaked = torch.nn.functional.one_hot(y, 3).float() * 1e4
    assert torch.allclose(soft_cross_entropy(logits, peaked), soft_cross_entropy(logits, y), atol=1e-4)


def test_training_with_a_diverging_learning_rate_names_the_fix(digits):
    from easydd.train import DivergenceError
    x, y = digits.x_train[:20], digits.y_train[:20]
    with pytest.raises(DivergenceError, match="Lower the learning rate"):
        Ensemble("ConvNetD2W16", 1, 10, (8, 8), [0]).train(
            x, y, TrainSpec(epochs=20, lr=1e30, batch_size=10), seed=0)


def test_evaluate_reports_final_epoch_test_accuracy(digits):
    from easydd.evaluate import evaluate_distilled
    from easydd.methods.selection import select
    d = select(digits, "random", 5, seed=0)
    r = evaluate_distilled(d, digits, models=["ConvNetD2W16", "MLP"], num_models=2, epochs=20, progress=False)
    for m in ("ConvNetD2W16", "MLP"):
        assert len(r["models"][m]["accs"]) == 2 and 0.2 < r["models"][m]["mean"] <= 1.0
    assert r["split"] == "test"


@pytest.mark.parametrize("method", ["random", "herding", "kcenter"])
def test_selection_picks_ipc_real_images_per_class(digits, method):
    from easydd.methods.selection import select
    d = select(digits, method, 3, seed=0)
    assert torch.equal(torch.bincount(d.labels), torch.full((10,), 3))
    idx = torch.tensor(d.meta["indices"])
    assert torch.equal(digits.x_train[idx], d.images)


def test_ipc_larger_than_a_class_is_a_user_error(digits):
    from easydd.methods.selection import select
    with pytest.raises(UserError, match="larger than class"):
        select(digits, "random", 10_000)


def test_device_names_resolve_or_name_the_fix():
    from easydd.runtime import resolve_device
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == auto
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_evaluate_records_its_device(digits):
    from easydd.evaluate import evaluate_distilled
    from easydd.methods.selection import select
    r = evaluate_distilled(select(digits, "random", 1, seed=0), digits, models=["ConvNet"], num_models=1,
                           epochs=1, progress=False, device="cpu")
    assert r["device"] == "cpu"


def test_thread_count_honours_the_users_openmp_setting(monkeypatch):
    from easydd.runtime import set_threads
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("EASYDD_THREADS", raising=False)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads() == 1
        monkeypatch.setenv("EASYDD_THREADS", "2")
        assert set_threads() == 2          # easydd's own variable wins over OpenMP's
        assert set_threads(1) == 1         # and --threads over both
        monkeypatch.delenv("EASYDD_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
        assert set_threads() >= 1          # unparseable: every core, never a crash
    finally:
        torch.set_num_threads(before)


def test_runs_eta_reports_progress_and_time_left_from_the_mean_run():
    from easydd.runtime import RunsETA
    t = [100.0]
    eta = RunsETA(4, clock=lambda: t[0])
    t[0] += 30                                     # first run: 30 s, three left
    assert eta.step() == "[1/4, 30 s per run, ETA 0:01:30]"
    t[0] += 90                                     # mean 60 s, two left
    assert eta.step() == "[2/4, 60 s per run, ETA 0:02:00]"
    t[0] += 3 * 3600                               # a long one: the ETA grows past an hour
    assert eta.step() == "[3/4, 3640 s per run, ETA 1:00:40]"
    assert eta.step().startswith("[4/4,") and eta.step().endswith("ETA 0:00:00]")   # never negative


def test_peak_memory_is_this_process_peak_not_an_inherited_one():
    import subprocess
    import sys
    from easydd.runtime import PeakMemory
    big = torch.ones(512 * 2 ** 20 // 4)           # 512 MiB touched in this process: its peak is above torch's
    assert PeakMemory.rss_mib() >= 512             # import alone (about 300 MiB), which is all the child holds
    del big
    # a child started by fork + exec from this (larger) process reports its own, small peak
    out = subprocess.run([sys.executable, "-c", "from easydd.runtime import PeakMemory; print(PeakMemory.rss_mib())"],
                         capture_output=True, text=True, check=True).stdout
    assert float(out) < PeakMemory.rss_mib()
