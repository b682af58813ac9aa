"""The fast path for real-data passes (precision=bf16, compile=true): same gradients / embeddings as eager fp32
within the precision's tolerance, refused where it cannot help, and off by default."""
import pytest
import torch
import torch.nn.functional as F

from easydd import fastpass
from easydd.config import build_config
from easydd.errors import UserError
from easydd.fastpass import RealPass, native_bf16
from easydd.methods import get_method, method_params
from easydd.nets import make_network
from easydd.train import soft_cross_entropy


def net_and_batch(model="ConvNetD2W16", n=16, seed=0):
    net = make_network(model, 1, 10, (8, 8), seed)
    g = torch.Generator().manual_seed(seed)
    return net, torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def eager_grads(net, x, y):
    return torch.autograd.grad(soft_cross_entropy(net(x), y), list(net.parameters()))


def cosines(a, b):
    return [float(F.cosine_similarity(u.flatten(), v.flatten(), 0)) for u, v in zip(a, b) if u.dim() > 1]


def test_default_is_the_eager_code_bit_for_bit():
    net, x, y = net_and_batch()
    rp = RealPass()
    assert not rp.fast
    for a, b in zip(rp.grads(net, list(net.parameters()), x, y), eager_grads(net, x, y)):
        assert torch.equal(a, b)
    xs = [x[:5], x[5:]]
    for a, b in zip(rp.class_means(net, xs), [net.embed(t).mean(0) for t in xs]):
        assert torch.equal(a, b)


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU has no native bf16")
def test_bf16_gradients_point_the_same_way():
    net, x, y = net_and_batch(n=64)
    got = RealPass("bf16").grads(net, list(net.parameters()), x, y)
    assert all(t.dtype == torch.float32 for t in got)
    assert min(cosines(got, eager_grads(net, x, y))) > 0.99


def test_compiled_template_gives_each_fresh_network_its_own_gradients():
    """One compiled template serves every network: the gradients are those of the network passed in."""
    rp = RealPass(compile=True)
    for seed in (0, 1):  # two different fresh networks through the same template
        net, x, y = net_and_batch(seed=seed)
        got = rp.grads(net, list(net.parameters()), x, y)
        for a, b in zip(got, eager_grads(net, x, y)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        xs = [x[:7], x[7:]]  # batched into one compiled pass, split back
        for a, b in zip(rp.class_means(net, xs), [net.embed(t).mean(0) for t in xs]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert len(rp._templates) == 1


def test_batchnorm_networks_stay_eager():
    rp = RealPass(compile=True)
    net, x, y = net_and_batch(model="ConvNetBN")
    rp.grads(net, list(net.parameters()), x, y)
    assert rp.why_eager and "batch norm" in rp.why_eager and not rp._templates


def test_bf16_is_refused_without_native_units(monkeypatch):
    monkeypatch.setattr(fastpass, "native_bf16", lambda device: False)
    with pytest.raises(UserError, match="no native bf16"):
        RealPass("bf16")


def test_a_method_without_real_passes_refuses_the_settings(digits):
    cfg = build_config(None, dict(method="mtt", dataset=digits.name, ipc=1, compile=True, buffer="x"),
                       method_params)
    with pytest.raises(UserError, match="compile"):
        get_method("mtt")(cfg, digits)


def test_bad_values_are_refused():
    with pytest.raises(UserError, match="precision"):
        build_config(None, dict(method="dsa", precision="fp16"), method_params)
    with pytest.raises(UserError, match="compile"):
        build_config(None, dict(method="dsa", compile="yes"), method_params)


def test_compiled_gradient_matching_tracks_eager_through_the_inner_loop(digits):
    """DC with compile=true (fp32): real gradients AND the inner loop's training on the synthetic set go through
    the template; two outer steps (one inner loop between them) give the eager run's loss and images."""
    def run(**kw):
        cfg = build_config(None, dict(method="dc", dataset=digits.name, ipc=2, model="ConvNetD2W16", seed=0,
                                      batch_real=8, outer_loop=2, inner_loop=1, **kw), method_params)
        m = get_method("dc")(cfg, digits)
        m.init_synthetic()
        m.setup()
        return m.step(0), m.images.detach()
    (le, xe), (lc, xc) = run(), run(compile=True)
    assert lc["loss"] == pytest.approx(le["loss"], rel=1e-3)
    torch.testing.assert_close(xc, xe, rtol=1e-3, atol=1e-4)


def test_evaluation_on_the_fast_path_tracks_eager_and_says_so():
    """eval_compile: the evaluation networks' training and test passes through the compiled template (fp32 here)
    give the eager run's accuracy; the result records the path; the default stays the eager code."""
    from easydd.distilled import Distilled
    from easydd.evaluate import evaluate_distilled
    from easydd.data import Dataset
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    x = torch.randn(60, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    ds = Dataset("toy", x, y, x[::3].clone(), y[::3].clone(), x[1::3].clone(), y[1::3].clone(),
                 ["a", "b", "c"], (0.5,), (0.5,), "test")
    d = Distilled(x[::10].clone(), y[::10].clone(), meta={"dataset": "toy"})
    kw = dict(models=["ConvNetD2W16"], num_models=2, epochs=20, aug="none", progress=False, device="cpu")
    eager = evaluate_distilled(d, ds, **kw)
    fast = evaluate_distilled(d, ds, passes=fastpass.passes_for("fp32", True, torch.device("cpu")), **kw)
    assert eager["compile"] is False and fast["compile"] is True and fast["precision"] == "fp32"
    a, b = eager["models"]["ConvNetD2W16"]["accs"], fast["models"]["ConvNetD2W16"]["accs"]
    assert max(abs(u - v) for u, v in zip(a, b)) <= 1 / 20 + 1e-9   # at most one test image flips
    assert fastpass.passes_for("fp32", False, torch.device("cpu")) is None


def test_eval_settings_are_checked_before_any_work(monkeypatch, tmp_path, capsys):
    with pytest.raises(UserError, match="eval_precision"):
        build_config(None, dict(method="dsa", eval_precision="fp16"), method_params)
    with pytest.raises(UserError, match="eval_compile"):
        build_config(None, dict(method="dsa", eval_compile="yes"), method_params)
    from easydd.cli import main
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")
    monkeypatch.setattr(fastpass, "native_bf16", lambda device: False)
    assert main(["eval", str(tmp_path / "nothing.safetensors"), "--precision", "bf16", "--device", "cpu"]) == 2
    assert "no native bf16" in capsys.readouterr().err     # refused before the (missing) file is even opened
    assert main(["eval", str(tmp_path / "nothing.safetensors"), "--scores", "ddranking", "--compile"]) == 2
    assert "not to --scores" in capsys.readouterr().err
