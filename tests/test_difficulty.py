"""Sample difficulty: per-sample gradient norms (GraDN), EL2N, the reference panel and the command."""
from __future__ import annotations

import argparse
import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from easydd.cli import difficulty as dif_cli  # the command's glue (the scores are easydd.difficulty)
from easydd.difficulty import Panel, PanelError, el2n_scores, per_sample_grad_norms, reference_panel
from easydd.errors import UserError
from easydd.nets import make_network
from easydd.train import soft_cross_entropy



def gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def loop_norms(model, x, y, params=None, create_graph=False):
    """Reference: one torch.autograd.grad call per sample, in eval mode."""
    was = model.training
    model.eval()
    params = list(model.parameters()) if params is None else params
    out = []
    for i in range(x.shape[0]):
        loss = soft_cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        gs = torch.autograd.grad(loss, params, create_graph=create_graph)
        out.append(torch.sqrt(sum((g ** 2).sum() for g in gs)))
    model.train(was)
    return torch.stack(out)


def tiny_net(name: str, seed: int = 0, **kw):
    if name == "MLP":
        return make_network("MLP", 1, 3, (4, 4), seed)
    return make_network(name, 1, 3, (8, 8), seed, width=8, **kw)


# -- per-sample gradient norms ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["MLP", "ConvNetD1"])
@pytest.mark.parametrize("soft", [False, True])
def test_grad_norms_match_python_loop(name, soft):
    net = tiny_net(name, seed=1).double()
    side = 4 if name == "MLP" else 8
    x = torch.randn(7, 1, side, side, generator=gen(0), dtype=torch.float64)
    y = torch.randn(7, 3, generator=gen(1), dtype=torch.float64) * 2 if soft else torch.tensor([0, 1, 2, 2, 1, 0, 1])
    got = per_sample_grad_norms(net, x, y, chunk=3)  # 3 chunks, the last one short
    ref = loop_norms(net, x, y)
    assert got.shape == (7,) and not got.requires_grad
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_grad_norms_over_given_params_only():
    net = tiny_net("MLP", seed=2).double()
    x = torch.randn(5, 1, 4, 4, generator=gen(3), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    head = {n: p for n, p in net.named_parameters() if n.startswith("classifier")}
    got = per_sample_grad_norms(net, x, y, params=head)
    torch.testing.assert_close(got, loop_norms(net, x, y, params=list(net.classifier.parameters())))
    assert (got < per_sample_grad_norms(net, x, y)).all()


def test_batchnorm_uses_running_stats_and_restores_mode():
    net = tiny_net("ConvNetD1", seed=3, norm="batchnorm").double()
    with torch.no_grad():  # non-trivial running statistics
        for s in range(3):
            net(torch.randn(16, 1, 8, 8, generator=gen(10 + s), dtype=torch.float64) * 2 + 1)
    net.train()
    x = torch.randn(6, 1, 8, 8, generator=gen(4), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    a = per_sample_grad_norms(net, x, y, chunk=6)
    b = per_sample_grad_norms(net, x, y, chunk=1)  # samples are independent of their chunk
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a, loop_norms(net, x, y), rtol=1e-10, atol=1e-12)
    assert net.training and all(m.training for m in net.modules())


def test_differentiable_norms_match_autograd_loop_and_finite_differences():
    net = tiny_net("MLP", seed=4).double()
    x = torch.randn(4, 1, 4, 4, generator=gen(5), dtype=torch.float64).requires_grad_()
    ys = (torch.randn(4, 3, generator=gen(6), dtype=torch.float64) * 2).requires_grad_()
    yh = torch.tensor([2, 0, 1, 1])

    # hard labels: d/dx sum(norms) vs a per-sample torch.autograd.grad(create_graph=True) loop
    s = per_sample_grad_norms(net, x, yh, chunk=3, create_graph=True)
    assert s.requires_grad
    (gx,) = torch.autograd.grad(s.sum(), x)
    (rx,) = torch.autograd.grad(loop_norms(net, x, yh, create_graph=True).sum(), x)
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-12)
    assert gx.abs().max() > 1e-6

    # the model's own parameters are constants (no .grad left on them); explicit params can be differentiated
    per_sample_grad_norms(net, x, yh, create_graph=True).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())
    x.grad = None
    params = {n: p.detach().clone().requires_grad_() for n, p in net.named_parameters()}
    gp = torch.autograd.grad(per_sample_grad_norms(net, x, yh, params=params, create_graph=True).sum(),
                             list(params.values()))
    rp = torch.autograd.grad(loop_norms(net, x, yh, create_graph=True).sum(), list(net.parameters()))
    for a, b in zip(gp, rp):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

    # soft labels: gradients w.r.t. images and label logits, against central finite differences
    def f(xx, yy):
        return per_sample_grad_norms(net, xx, yy, chunk=3).sum()

    gx, gy = torch.autograd.grad(per_sample_grad_norms(net, x, ys, chunk=3, create_graph=True).sum(), (x, ys))
    eps = 1e-6
    for t, g in ((x, gx), (ys, gy)):
        for flat in (0, 5, 11):
            d = torch.zeros_like(t).view(-1)
            d[flat] = eps
            d = d.view_as(t)
            args_p = (x + d, ys) if t is x else (x, ys + d)
            args_m = (x - d, ys) if t is x else (x, ys - d)
            fd = (f(*args_p) - f(*args_m)) / (2 * eps)
            assert abs(float(fd) - float(g.view(-1)[flat])) < 1e-6 * max(1.0, abs(float(fd)))


# -- EL2N -------------------------------------------------------------------------------------------------

def test_el2n_definition_and_range():
    net = tiny_net("MLP", seed=5)
    with torch.no_grad():  # large weights: confident predictions reach both ends of the range
        net.classifier.weight.mul_(50)
    x = torch.randn(64, 1, 4, 4, generator=gen(7))
    y = torch.randint(0, 3, (64,), generator=gen(8))
    e = el2n_scores(net, x, y, chunk=10)
    ref = (net(x).softmax(-1) - F.one_hot(y, 3).float()).norm(dim=1)
    torch.testing.assert_close(e, ref.detach())
    assert e.min() >= 0 and e.max() <= math.sqrt(2) + 1e-6
    assert e.max() > 1.0  # some confident mistakes
    ys = torch.randn(64, 3, generator=gen(9)) * 3
    es = el2n_scores(net, x, ys)
    torch.testing.assert_close(es, (net(x).softmax(-1) - ys.softmax(-1)).norm(dim=1).detach())
    assert es.min() >= 0 and es.max() <= math.sqrt(2) + 1e-6


# -- a trained network: a fitted sample is easier than the same image mislabelled -------------------------

@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - x.mean()) / x.std()
    return x, torch.tensor(d.target, dtype=torch.int64)


def test_mislabelled_samples_have_larger_gradn_and_el2n(digits):
    x, y = digits
    xt, yt = x[:1200], y[:1200]
    panel = Panel.train((xt, yt, 10), model="MLP", num_models=2, epochs=8, seed=0, lr=0.05, batch_size=64)
    assert len(panel) == 2
    acc = (panel.network(0)(xt).argmax(1) == yt).float().mean()
    assert acc > 0.9
    xs, ys = xt[:300], yt[:300]
    wrong = (ys + 1 + torch.randint(0, 9, (300,), generator=gen(11))) % 10
    assert (wrong != ys).all()
    g_ok, g_bad = panel.gradn(xs, ys), panel.gradn(xs, wrong)
    e_ok, e_bad = panel.el2n(xs, ys), panel.el2n(xs, wrong)
    assert g_bad.mean() > 3 * g_ok.mean()
    assert (g_bad > g_ok).float().mean() > 0.9
    assert e_bad.mean() > 3 * e_ok.mean()


# -- the panel --------------------------------------------------------------------------------------------

def toy_tensors(n=64, seed=0):
    return torch.randn(n, 1, 8, 8, generator=gen(seed)), torch.randint(0, 10, (n,), generator=gen(seed + 1))


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm"])
def test_panel_train_save_load_round_trip(tmp_path, norm):
    x, y = toy_tensors()
    panel = Panel.train((x, y, 10), model="ConvNetD1", num_models=2, epochs=1, checkpoints=(0, 1), seed=3,
                        batch_size=16, net_kwargs={"width": 8, "norm": norm})
    assert len(panel) == 4 and [m["epoch"] for m in panel.info] == [0, 0, 1, 1]
    assert not torch.equal(panel.states[0]["classifier.weight"], panel.states[2]["classifier.weight"])
    xs, ys = x[:20], y[:20]
    g, e = panel.gradn(xs, ys), panel.el2n(xs, ys)
    assert g.shape == (20,) and (g > 0).all()
    torch.testing.assert_close(g, panel.gradn(xs, ys, per_member=True).mean(0))

    path = panel.save(tmp_path / "p.safetensors")
    manifest = json.loads((tmp_path / "p.json").read_text())
    assert manifest["format"] == "easydd-panel" and len(manifest["members"]) == 4
    again = Panel.load(path)
    assert again.info == panel.info and again.net_kwargs == panel.net_kwargs
    assert torch.equal(again.gradn(xs, ys), g)
    assert torch.equal(again.el2n(xs, ys), e)

    # the differentiable version: same values, gradients reach the images
    xg = xs[:5].clone().requires_grad_()
    d = again.gradn_differentiable(xg, ys[:5])
    torch.testing.assert_close(d.detach(), g[:5], rtol=1e-5, atol=1e-6)
    (gx,) = torch.autograd.grad(d.sum(), xg)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_panel_load_rejects_bad_files(tmp_path):
    with pytest.raises(PanelError, match="no panel"):
        Panel.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(PanelError):
        Panel.load(bad)
    assert issubclass(PanelError, UserError) and issubclass(PanelError, ValueError)
    with pytest.raises(PanelError, match="checkpoints"):
        Panel.train(toy_tensors(), model="MLP", epochs=1, checkpoints=(2,))


def toy_dataset(name="toy", n=96, seed=0):
    x, y = toy_tensors(n, seed)
    xv, yv = toy_tensors(30, seed + 7)
    return SimpleNamespace(name=name, x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xv[:20], y_test=yv[:20],
                           num_classes=10, shape=(1, 8, 8), zca=None)


def test_reference_panel_is_cached_and_shared(tmp_path, monkeypatch):
    ds = toy_dataset()
    p1 = reference_panel(ds, model="MLP", num_models=1, epochs=1, cache_dir=tmp_path, subset=50)
    files = list((tmp_path / "panels").glob("*.safetensors"))
    assert len(files) == 1 and files[0].name.startswith("toy-MLP-k1-e1-c1-s0-n50-")

    def boom(*a, **k):
        raise AssertionError("the cached panel should have been loaded")
    monkeypatch.setattr(Panel, "train", boom)
    p2 = reference_panel(ds, model="MLP", num_models=1, epochs=1, cache_dir=tmp_path, subset=50)
    x, y = ds.x_train[:10], ds.y_train[:10]
    assert torch.equal(p1.gradn(x, y), p2.gradn(x, y))
    with pytest.raises(AssertionError):  # another setting is another panel
        reference_panel(ds, model="MLP", num_models=1, epochs=1, cache_dir=tmp_path, subset=50, seed=1)


# -- the command ------------------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser()
    dif_cli.add_arguments(p)
    return p.parse_args(argv)


def test_command_on_a_distilled_run_and_a_dataset(tmp_path, monkeypatch, capsys):
    from easydd.distilled import Distilled
    ds = toy_dataset()
    monkeypatch.setattr(dif_cli, "_load_dataset", lambda name, zca=False: ds if name == "toy" else
                        (_ for _ in ()).throw(UserError(f"unknown dataset {name!r}")))
    run = tmp_path / "run"
    imgs, labels = toy_tensors(20, seed=5)
    Distilled(imgs, labels, meta={"dataset": "toy", "ipc": 2}).save(run / "distilled.safetensors")
    common = ["--model", "MLP", "--num-models", "1", "--epochs", "1", "--cache-dir", str(tmp_path / "cache")]

    assert dif_cli.run_from_args(parse([str(run), *common, "--max-samples", "40"])) == 0
    summary = json.loads((run / "difficulty.json").read_text())
    rows = list(csv.DictReader((run / "difficulty.csv").open()))
    assert len(rows) == 20 and set(rows[0]) == {"index", "label", "gradn", "el2n"}
    assert (run / "difficulty.png").stat().st_size > 0 and (run / "difficulty.json").exists()
    assert summary["split"] == "distilled" and summary["real_train"]["n"] == 40 and summary["panel_members"] == 1
    assert set(summary["scores"]["gradn"]) >= {"mean", "median", "q1", "q3"}
    out = capsys.readouterr().out
    assert "GraDN" in out and "per class" in out

    out_dir = tmp_path / "test-split"
    s = dif_cli.measure_from_args(parse(["toy", *common, "--split", "test", "--out", str(out_dir),
                                     "--checkpoints", "0", "1"]))
    assert s["scores"]["n"] == 20 and s["panel_members"] == 2 and s["panel"]["checkpoints"] == [0, 1]
    assert len((out_dir / "difficulty.csv").read_text().splitlines()) == 21

    with pytest.raises(UserError, match="no such file"):
        dif_cli.run_from_args(parse([str(tmp_path / "nope.safetensors"), *common]))
    with pytest.raises(UserError, match="split"):
        dif_cli.run_from_args(parse(["toy", *common, "--split", "distilled"]))
    with pytest.raises(UserError, match="unknown dataset"):
        dif_cli.run_from_args(parse(["imagenet-9000", *common]))


def test_your_own_npz_or_image_folder_is_measured_as_a_dataset(tmp_path):
    """TARGET may be your own data (an .npz or a folder with train/), like a built-in name; a run directory (even
    one with a train/ folder in it) stays a distilled set."""
    from easydd.distilled import Distilled
    (tmp_path / "scans.npz").write_bytes(b"not even a zip")  # read later by the dataset loader, with its message
    (tmp_path / "folder" / "train").mkdir(parents=True)
    assert dif_cli._resolve_target(str(tmp_path / "scans.npz")) == (None, None, str(tmp_path / "scans.npz"))
    assert dif_cli._resolve_target(str(tmp_path / "folder")) == (None, None, str(tmp_path / "folder"))
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    imgs, labels = toy_tensors(4, seed=1)
    Distilled(imgs, labels, meta={"dataset": "toy", "ipc": 2}).save(run / "distilled.safetensors")
    d, path, name = dif_cli._resolve_target(str(run))
    assert d is not None and path == run and name is None
