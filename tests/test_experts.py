"""Expert trajectories: storage, resume, checksums, SAM/GSAM, streaming reads, 2-process generation on CPU."""
import json

import pytest
import torch

from easydd.data import Dataset
from easydd.errors import UserError
from easydd.cli.experts import add_arguments, run_from_args
from easydd.experts import (ExpertBuffer, _sam_gradient, default_buffer_dir, expert_file, train_experts,
                            train_experts_parallel)
from easydd.nets import make_network
from easydd.runtime import derive_seed



def fake_dataset(name="fake", classes=3, per_class=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = classes * per_class
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()  # separable classes
    return Dataset(name, x, y, x[::4].clone(), y[::4].clone(), x[1::4].clone(), y[1::4].clone(),
                   [str(c) for c in range(classes)], (0.5,), (0.5,), "test")


KW = dict(model="MLP", batch_size=8, progress=False, log=lambda *a: None)


def test_files_manifest_and_trajectory(tmp_path):
    ds = fake_dataset()
    out = train_experts(ds, tmp_path / "b", num_experts=2, epochs=3, **KW)
    man = json.loads((out / "manifest.json").read_text())
    assert man["num_experts"] == 2 and man["dataset"] == "fake" and man["model"] == "MLP" and man["zca"] is False
    assert [e["file"] for e in man["experts"]] == [expert_file(0), expert_file(1)]
    assert all(len(e["sha256"]) == 64 and 0 <= e["val_acc"] <= 1 for e in man["experts"])
    buf = ExpertBuffer(out)
    assert len(buf) == 2 and buf.epochs == 3
    net = make_network("MLP", 1, 3, (8, 8), derive_seed(0, "expert-init", 1))
    init = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert torch.equal(buf.params(1, 0), init)                      # epoch 0 = the initialisation
    traj = buf.params(1, [0, 1, 2, 3])
    assert traj.shape == (4, buf.num_params) and (traj[1:] - traj[:-1]).abs().sum(1).min() > 0
    start, target = buf.get(1, 1, 2)
    assert torch.equal(start, traj[1]) and torch.equal(target, traj[3])
    assert torch.equal(buf.params(1, -1), traj[3])
    named = buf.unflatten(start)
    assert list(named) == [n for n, _ in net.named_parameters()]
    with pytest.raises(UserError, match="out of range"):
        buf.get(0, 2, 2)


def test_resume_skips_finished_and_refuses_other_settings(tmp_path):
    ds = fake_dataset()
    out = train_experts(ds, tmp_path / "b", num_experts=2, epochs=2, **KW)
    f0, f1 = out / expert_file(0), out / expert_file(1)
    before0 = ExpertBuffer(out).params(0, [0, 1, 2])
    stamp1 = f1.stat().st_mtime_ns
    # a "killed" run: expert 0 lost, no manifest
    f0.unlink()
    (out / "manifest.json").unlink()
    with pytest.raises(UserError, match="did not finish"):
        ExpertBuffer(out)
    train_experts(ds, out, num_experts=2, epochs=2, **KW)
    assert f1.stat().st_mtime_ns == stamp1                       # finished expert skipped
    assert len(ExpertBuffer(out)) == 2
    assert torch.equal(ExpertBuffer(out).params(0, [0, 1, 2]), before0)  # retrained identically (seeded by index)
    with pytest.raises(UserError, match="other settings"):
        train_experts(ds, out, num_experts=2, epochs=3, **KW)
    assert not list(out.glob(".*tmp"))                             # no temp files left behind


def test_checksum_and_dataset_checks(tmp_path):
    ds = fake_dataset()
    out = train_experts(ds, tmp_path / "b", num_experts=1, epochs=1, **KW)
    buf = ExpertBuffer(out)
    buf.check(ds, "MLP")
    with pytest.raises(UserError, match="ZCA"):
        zds = fake_dataset()
        zds.zca = object()
        buf.check(zds)
    with pytest.raises(UserError, match="trained on"):
        buf.check(fake_dataset(name="other"))
    with pytest.raises(UserError, match="model="):
        buf.check(ds, "ConvNetD1")
    raw = bytearray((out / expert_file(0)).read_bytes())
    raw[-5] ^= 0xFF
    (out / expert_file(0)).write_bytes(bytes(raw))
    with pytest.raises(UserError, match="checksum"):
        ExpertBuffer(out).params(0, 0)


def test_sam_and_gsam_directions():
    gen = torch.Generator().manual_seed(0)
    net = make_network("MLP", 1, 3, (8, 8), 0)
    params = list(net.parameters())
    x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen)

    def loss_fn():
        return torch.nn.functional.cross_entropy(net(x), y)
    g = torch.autograd.grad(loss_fn(), params)
    before = [p.detach().clone() for p in params]
    sam = _sam_gradient(net, params, loss_fn, g, 0.05, 0.0, False)
    assert all(torch.equal(a, b) for a, b in zip(before, params))   # parameters restored
    # SAM: the gradient at w + rho g/||g||
    gn = torch.sqrt(sum((t ** 2).sum() for t in g))
    with torch.no_grad():
        for p, t in zip(params, g):
            p.add_(0.05 * t / gn)
    g_p = torch.autograd.grad(loss_fn(), params)
    with torch.no_grad():
        for p, b in zip(params, before):
            p.copy_(b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(sam, g_p))
    # GSAM: g_p minus alpha times the part of g orthogonal to g_p; so <d, g_p> = ||g_p||^2
    d = _sam_gradient(net, params, loss_fn, g, 0.05, 0.5, False)
    dot = sum((a * b).sum() for a, b in zip(d, g_p))
    assert torch.allclose(dot, sum((b * b).sum() for b in g_p), rtol=1e-4)
    assert not all(torch.allclose(a, b) for a, b in zip(d, g_p))


def test_sam_experts_differ_and_are_recorded(tmp_path):
    ds = fake_dataset()
    plain = train_experts(ds, tmp_path / "p", num_experts=1, epochs=2, **KW)
    flat = train_experts(ds, tmp_path / "s", num_experts=1, epochs=2, sam_rho=0.05, gsam_alpha=0.3, **KW)
    a, b = ExpertBuffer(plain), ExpertBuffer(flat)
    assert b.settings["sam_rho"] == 0.05 and b.settings["gsam_alpha"] == 0.3
    assert torch.equal(a.params(0, 0), b.params(0, 0)) and not torch.equal(a.params(0, 2), b.params(0, 2))


def test_two_processes_train_disjoint_experts(tmp_path):
    """2 gloo processes on CPU (torch.multiprocessing spawn): rank r trains experts i % 2 == r; same buffer."""
    ds = fake_dataset()
    kw = dict(model="MLP", batch_size=8, progress=False, num_experts=3, epochs=2)
    par = train_experts_parallel(2, dataset=ds, out_dir=str(tmp_path / "par"), **kw)
    seq = train_experts(ds, tmp_path / "seq", log=lambda *a: None, **kw)
    bp, bs = ExpertBuffer(par), ExpertBuffer(seq)
    assert len(bp) == 3
    for i in range(3):  # same seeds per expert index: the buffer does not depend on the number of processes
        assert torch.allclose(bp.params(i, -1), bs.params(i, -1), atol=1e-5)


def test_cli_arguments(tmp_path, monkeypatch):
    import argparse
    p = argparse.ArgumentParser()
    add_arguments(p)
    with pytest.raises(UserError, match="--dataset"):
        run_from_args(p.parse_args(["--num-experts", "1", "--epochs", "1"]))
    ds = fake_dataset()
    monkeypatch.setattr("easydd.experts._resolve_dataset", lambda d, zca, root=None: ds)
    args = p.parse_args(["--dataset", "fake", "--num-experts", "1", "--epochs", "1", "--model", "MLP",
                         "--sam", "0.01", "--out", str(tmp_path / "c"), "--no-progress", "--batch-size", "8"])
    out = run_from_args(args)
    assert ExpertBuffer(out).settings["sam_rho"] == 0.01
    assert default_buffer_dir("mnist", "ConvNet", zca=True, sam=True).endswith("mnist_ConvNet_zca_sam")


def test_easydd_experts_command_exits_zero(tmp_path, monkeypatch, capsys):
    """`easydd experts ...` through the real entry point: the plugin returns the buffer path, the exit code is 0."""
    from easydd.cli import main
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")
    monkeypatch.setattr("easydd.experts._resolve_dataset", lambda d, zca, root=None: fake_dataset())
    rc = main(["experts", "--dataset", "fake", "--num-experts", "1", "--epochs", "1", "--model", "MLP",
               "--out", str(tmp_path / "e"), "--no-progress", "--batch-size", "8", "--device", "cpu"])
    assert rc == 0
    assert len(ExpertBuffer(tmp_path / "e").files) == 1
    assert "1 experts x 1 epochs" in capsys.readouterr().out


def test_fast_path_experts_follow_eager_and_say_so(tmp_path):
    """compile=true trains the same trajectory as eager fp32 up to float rounding (SAM's second pass included),
    records the setting in every file, and a folder made one way refuses the other."""
    ds = fake_dataset()
    kw = dict(KW, num_experts=1, epochs=2, sam_rho=0.05)
    eager = ExpertBuffer(train_experts(ds, tmp_path / "e", **kw)).params(0, [0, 1, 2])
    out = train_experts(ds, tmp_path / "f", compile=True, **kw)
    fast = ExpertBuffer(out)
    assert torch.equal(fast.params(0, 0), eager[0])               # the same initialisation
    assert torch.allclose(fast.params(0, [0, 1, 2]), eager, rtol=1e-4, atol=1e-5)
    assert fast.settings["compile"] is True and fast.settings["precision"] == "fp32"
    with pytest.raises(UserError, match="compile"):
        train_experts(ds, out, **kw)


def test_bf16_experts_train_where_the_hardware_has_it(tmp_path, monkeypatch):
    from easydd.fastpass import native_bf16
    ds = fake_dataset()
    if native_bf16(torch.device("cpu")):
        out = train_experts(ds, tmp_path / "b", num_experts=1, epochs=3, precision="bf16", **KW)
        rec = ExpertBuffer(out).record(0)
        assert rec["settings"]["precision"] == "bf16" and rec["train_loss"][-1] < rec["train_loss"][0]
    monkeypatch.setattr("easydd.fastpass.native_bf16", lambda device: False)
    with pytest.raises(UserError, match="no native bf16"):
        train_experts(ds, tmp_path / "n", num_experts=1, epochs=1, precision="bf16", **KW)
    assert not (tmp_path / "n").exists()                          # refused before anything was written
    with pytest.raises(UserError, match="precision"):
        train_experts(ds, tmp_path / "n", num_experts=1, epochs=1, precision="fp16", **KW)


def test_buffers_made_before_the_fast_path_settings_still_match():
    from easydd.experts import _check_same
    want = {"dataset": "fake", "epochs": 2, "precision": "fp32", "compile": False}
    _check_same({"dataset": "fake", "epochs": 2}, want, "old")     # an old header: made with the defaults
    with pytest.raises(UserError, match="precision"):
        _check_same({"dataset": "fake", "epochs": 2}, dict(want, precision="bf16"), "old")


def test_cli_fast_path_flags(tmp_path, monkeypatch):
    import argparse
    from easydd.experts import recipe_command
    p = argparse.ArgumentParser()
    add_arguments(p)
    monkeypatch.setattr("easydd.experts._resolve_dataset", lambda d, zca, root=None: fake_dataset())
    args = p.parse_args(["--dataset", "fake", "--num-experts", "1", "--epochs", "1", "--model", "MLP", "--compile",
                         "--precision", "fp32", "--out", str(tmp_path / "c"), "--no-progress", "--batch-size", "8"])
    assert ExpertBuffer(run_from_args(args)).settings["compile"] is True
    cmd = recipe_command({"dataset": "mnist", "num_experts": 2, "epochs": 3, "precision": "bf16", "compile": True},
                         None)
    assert "--precision bf16" in cmd and "--compile" in cmd
