"""Trajectory matching (MTT, FTD, TESLA, DATM) with SDC: the gradients, lambda=0 == base, the divergence guard."""
import math

import pytest
import torch

from easydd.config import build_config
from easydd.data import Dataset
from easydd.distill import DivergedError, distill
from easydd.errors import UserError
from easydd.experts import ExpertBuffer, train_experts
from easydd.methods import get_method, method_params
from easydd.methods.base import flat_norm
from easydd.methods.unroll import Step, matching_loss, tesla_gradients
from easydd.train import soft_cross_entropy



# ---------------------------------------------------------------------------------------------------------------
# TESLA's constant-memory gradient against the full unroll (tiny tanh MLP, float64)
# ---------------------------------------------------------------------------------------------------------------
D_IN, HID, K, N_IMG = 6, 5, 3, 8
P = D_IN * HID + HID + HID * K + K


def tiny_fwd(th, x):
    o = D_IN * HID
    w1, b1 = th[:o].view(HID, D_IN), th[o:o + HID]
    o += HID
    w2, b2 = th[o:o + HID * K].view(K, HID), th[o + HID * K:]
    return torch.tanh(x @ w1.T + b1) @ w2.T + b2


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(P, generator=g, dtype=torch.float64) * 0.5
    target = start + torch.randn(P, generator=g, dtype=torch.float64) * 0.1
    images = torch.randn(N_IMG, D_IN, generator=g, dtype=torch.float64).requires_grad_(True)
    labels = torch.randn(N_IMG, K, generator=g, dtype=torch.float64).requires_grad_(True)  # soft-label logits
    return start, target, images, labels


def steps(n):
    g = torch.Generator().manual_seed(1)
    return [Step(torch.randperm(N_IMG, generator=g)[:4]) for _ in range(n)]


def autograd_unroll(problem, n, lr, lam=0.0, stop_gradient=False):
    """Reference: d/d(images, labels, lr) of L + lam * mean_k ||g_k|| by plain autograd through the unroll;
    stop_gradient evaluates each g_k at a detached copy of theta_k."""
    start, target, images, labels = problem
    lr = torch.tensor(lr, dtype=torch.float64).requires_grad_(True)
    theta = start.clone().requires_grad_(True)
    norms = []
    for st in steps(n):
        th = theta.detach().requires_grad_(True) if stop_gradient else theta
        g = torch.autograd.grad(soft_cross_entropy(tiny_fwd(th, images[st.idx]), labels[st.idx]), th,
                                create_graph=True)[0]
        norms.append(flat_norm([g]))
        theta = theta - lr * g
    total = matching_loss(theta, start, target) + lam * torch.stack(norms).mean()
    return torch.autograd.grad(total, [images, labels, lr])


def tesla(problem, n, lr, lam=0.0, exact=False):
    start, target, images, labels = problem
    r = tesla_gradients(tiny_fwd, start, target, steps(n), images, labels, torch.tensor(lr, dtype=torch.float64),
                        lam_sdc=lam, exact=exact, learn_labels=True)
    return r["images"], r["labels"], r["lr"]


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_tesla_one_step_is_the_full_unroll(problem, lam):
    for got, want in zip(tesla(problem, 1, 0.5, lam), autograd_unroll(problem, 1, 0.5, lam)):
        assert rel(got, want) < 1e-12


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_tesla_many_steps_is_the_stop_gradient_unroll(problem, lam):
    """TESLA's published gradient (the default) = the gradient of the unroll whose step gradients g_k are taken at
    stop-gradient copies of theta_k: all second-order terms (I - lr H_j), j > k, are dropped. It therefore
    differs from the full unroll's for more than one step; exact=True restores the full unroll's gradient."""
    got = tesla(problem, 4, 0.5, lam)
    for a, b in zip(got, autograd_unroll(problem, 4, 0.5, lam, stop_gradient=True)):
        assert rel(a, b) < 1e-12
    full = autograd_unroll(problem, 4, 0.5, lam)
    assert rel(got[0], full[0]) > 0.05 and rel(got[2], full[2]) > 1e-3
    for a, b in zip(tesla(problem, 4, 0.5, lam, exact=True), full):
        assert rel(a, b) < 1e-12


def test_tesla_error_is_first_order_in_the_step_size(problem):
    """The dropped terms are O(lr) relative to the gradient itself (O(lr^2) absolute): halving lr halves the
    relative error (ratio -> 2 as lr -> 0)."""
    errs = [rel(tesla(problem, 4, lr)[0], autograd_unroll(problem, 4, lr)[0]) for lr in (0.04, 0.02, 0.01)]
    assert 1.8 < errs[0] / errs[1] < 2.4 and 1.8 < errs[1] / errs[2] < 2.2


# ---------------------------------------------------------------------------------------------------------------
# The methods end to end on a tiny dataset with tiny experts
# ---------------------------------------------------------------------------------------------------------------
def fake_dataset(classes=3, per_class=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randn(len(y), 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return Dataset("fake", x, y, x[::4].clone(), y[::4].clone(), x[1::4].clone(), y[1::4].clone(),
                   [str(c) for c in range(classes)], (0.5,), (0.5,), "test")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("tm")
    ds = fake_dataset()
    kw = dict(model="MLP", batch_size=8, epochs=4, lr=0.05, progress=False, log=lambda *a: None)
    plain = train_experts(ds, root / "plain", num_experts=2, **kw)
    flat = train_experts(ds, root / "flat", num_experts=2, sam_rho=0.05, **kw)
    return ds, plain, flat, root


def cfg_for(env, method, tmp, **kw):
    ds, plain, flat, _ = env
    args = dict(method=method, dataset="fake", ipc=2, model="MLP", iterations=3, track_every=0, out_dir=str(tmp),
                buffer=str(flat if method in ("ftd", "datm") else plain), syn_steps=4, expert_epochs=2,
                max_start_epoch=2, lr_img=10.0, lr_lr=1e-4, batch_syn=3, checkpoint_every=1, eval_num_models=1,
                eval_epochs=2)
    args.update(kw)
    return build_config(None, args, method_params)


def run(env, tmp, method, **kw):
    return distill(cfg_for(env, method, tmp, **kw), env[0], progress=False, final_eval=False, resume=False)


def direct(env, tmp, method, iterations=2, **kw):
    """The method's own loop without the driver's files (fast): init, setup, step(0..iterations-1)."""
    m = get_method(method)(cfg_for(env, method, tmp, **kw), env[0])
    m.init_synthetic()
    m.setup()
    for it in range(iterations):
        m.step(it)
    return m.distilled()


def reference_mtt(env, tmp, iterations):
    """MTT written out straight from the reference algorithm, drawing the same random numbers as the method."""
    ds = env[0]
    m = get_method("mtt")(cfg_for(env, "mtt", tmp), ds)
    m.init_synthetic()
    images = m.images.detach().clone().requires_grad_(True)
    syn_lr = torch.tensor(0.01).requires_grad_(True)
    opt_img = torch.optim.SGD([images], lr=10.0, momentum=0.5)
    opt_lr = torch.optim.SGD([syn_lr], lr=1e-4, momentum=0.5)
    buf = ExpertBuffer(env[1])
    for it in range(iterations):
        g = m.rng(it)
        e = int(torch.randint(len(buf), (1,), generator=g))
        t = int(torch.randint(0, 2, (1,), generator=g))
        start, target = buf.get(e, t, 2)
        plan = m.plan(g)
        theta = start.clone().requires_grad_(True)
        for st in plan:
            x = m.aug.apply(images[st.idx], st.plan)
            ce = soft_cross_entropy(m.fwd(theta, x), m.labels[st.idx])
            theta = theta - syn_lr * torch.autograd.grad(ce, theta, create_graph=True)[0]
        loss = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
        opt_img.zero_grad()
        opt_lr.zero_grad()
        loss.backward()
        opt_img.step()
        opt_lr.step()
    return images.detach(), syn_lr.detach()


def test_mtt_lambda_zero_is_the_reference_algorithm_bitwise(env, tmp_path):
    r = run(env, tmp_path / "a", "mtt")                          # through the driver
    images, lr = reference_mtt(env, tmp_path / "ref", 3)
    assert torch.equal(r.distilled.images, images)
    assert r.distilled.lr == float(lr.abs())


@pytest.mark.parametrize("method", ["mtt", "ftd", "tesla", "datm"])
def test_lambda_zero_is_exactly_the_base_method(env, tmp_path, method):
    """lambda_sdc = 0 leaves no trace (both modes give the same bits); lambda_sdc > 0 moves the set."""
    base = direct(env, tmp_path, method, lambda_sdc=0.0)
    same = direct(env, tmp_path, method, lambda_sdc=0.0, sdc_mode="sample")
    assert torch.equal(base.images, same.images)
    assert torch.equal(base.labels, same.labels) and base.lr == same.lr
    for mode, net in (("batch", "fresh"), ("sample", "fresh"), ("batch", "trained"), ("batch", "expert"),
                      ("sample", "expert")):
        sdc = direct(env, tmp_path, method, lambda_sdc=0.5, sdc_mode=mode, sdc_net=net, sdc_pool=2)
        assert not torch.equal(base.images, sdc.images)
        assert torch.isfinite(sdc.images).all()


def test_sdc_batch_term_is_the_mean_step_gradient_norm(env, tmp_path):
    """R = mean_k ||g_k||: with one step on the whole set it is ||g_0|| at the expert's start parameters."""
    m = get_method("mtt")(cfg_for(env, "mtt", tmp_path, lambda_sdc=1.0, sdc_net="fresh", syn_steps=1, batch_syn=0), env[0])
    m.init_synthetic()
    m.setup()
    g = m.rng(0)
    e, t = m.draw(0, g)
    start, _ = m.buffer.get(e, t, 2)
    st = m.plan(g)[0]
    x = m.aug.apply(m.images.detach()[st.idx], st.plan)
    th = start.requires_grad_(True)
    g0 = torch.autograd.grad(soft_cross_entropy(m.fwd(th, x), m.labels[st.idx]), th)[0]
    logs = m.step(0)
    assert logs["sdc"] == pytest.approx(float(g0.norm()), rel=1e-5)


def test_sdc_at_the_expert_start_checkpoint(env, tmp_path):
    """sdc_net=expert: R is the mean per-class gradient norm of the synthetic images at the start checkpoint, and
    sdc_ratio sets lambda so that the first update's rho is the ratio; other method families refuse it."""
    m = get_method("mtt")(cfg_for(env, "mtt", tmp_path, sdc_ratio=0.3, sdc_net="expert"), env[0])
    m.init_synthetic()
    m.setup()
    g = m.rng(0)
    e, t = m.draw(0, g)
    start, _ = m.buffer.get(e, t, 2)
    th = start.clone().requires_grad_(True)
    norms = [torch.autograd.grad(soft_cross_entropy(m.fwd(th, m.images.detach()[m.class_slice(c)]),
                                                    m.labels[m.class_slice(c)]), th)[0].norm()
             for c in range(m.num_classes)]
    logs = m.step(0)
    assert logs["sdc"] == pytest.approx(float(torch.stack(norms).mean()), rel=1e-5)
    assert logs["rho"] == pytest.approx(0.3, rel=1e-4)
    with pytest.raises(UserError, match="sdc_net=expert is not available for dsa"):
        build_config(None, dict(method="dsa", sdc_net="expert", sdc_ratio=0.3), method_params)


def test_tesla_method_labels_and_memory_mode(env, tmp_path):
    hard = direct(env, tmp_path, "tesla")                        # the reference's default: hard labels
    assert not hard.soft and hard.labels.dtype == torch.long
    r = direct(env, tmp_path, "tesla", soft_labels=True)
    assert r.soft and r.labels.shape == (6, 3)
    m = get_method("tesla")(cfg_for(env, "tesla", tmp_path / "u", soft_labels=True), env[0])
    m.init_synthetic()
    m.setup()
    g = m.rng(0)
    e, t = m.draw(0, g)
    _, target = m.buffer.get(e, t, 2)
    before = m.images.detach().clone()
    m.step(0)
    assert torch.allclose(m.labels, m.expert_logits(target, before))  # the target expert's soft labels
    exact = direct(env, tmp_path, "tesla", exact=True, soft_labels=True)
    assert not torch.equal(exact.images, r.images)


@pytest.mark.parametrize("method", ["mtt", "ftd", "datm"])
@pytest.mark.parametrize("sdc", [dict(lambda_sdc=0.0), dict(lambda_sdc=0.5, sdc_net="fresh")])
def test_adjoint_unroll_is_the_full_unroll(env, tmp_path, method, sdc):
    """unroll=adjoint (memory flat in syn_steps) follows the same trajectory as unroll=graph up to rounding,
    with and without the unrolled SDC term, learnable labels (DATM) included."""
    graph = direct(env, tmp_path, method, iterations=3, **sdc)
    adj = direct(env, tmp_path, method, iterations=3, unroll="adjoint", **sdc)
    init = direct(env, tmp_path, method, iterations=0)
    assert (graph.images - init.images).abs().max() > 1e-2        # the set moved...
    assert torch.allclose(adj.images, graph.images, rtol=1e-4, atol=1e-5)  # ...along the same gradients
    assert adj.lr == pytest.approx(graph.lr, rel=1e-4)
    if method == "datm":
        assert torch.allclose(adj.labels, graph.labels, rtol=1e-4, atol=1e-5)


def test_unroll_modes_are_checked(env, tmp_path):
    with pytest.raises(UserError, match="unroll='scan' is not offered; choose graph or adjoint"):
        get_method("mtt")(cfg_for(env, "mtt", tmp_path, unroll="scan"), env[0])
    with pytest.raises(UserError, match="exact=true"):
        get_method("tesla")(cfg_for(env, "tesla", tmp_path, unroll="graph"), env[0])


def test_ftd_ema_is_saved_evaluated_and_resumed(env, tmp_path):
    cfg = cfg_for(env, "ftd", tmp_path / "f", iterations=4, ema_decay=0.5)
    full = distill(cfg, env[0], progress=False, final_eval=True, resume=False)
    run_dir = full.run_dir
    assert (run_dir / "distilled_ema.safetensors").exists() and "last_ema" in full.metrics
    # resume: 2 iterations, then 2 more from the checkpoint == 4 straight (images, EMA, step size)
    half = distill(cfg_for(env, "ftd", tmp_path / "g", iterations=2, ema_decay=0.5), env[0], progress=False,
                   final_eval=False, resume=False)
    rest = distill(cfg_for(env, "ftd", tmp_path / "g", iterations=4, ema_decay=0.5), env[0], progress=False,
                   final_eval=False, resume=True)
    assert torch.equal(rest.distilled.images, full.distilled.images) and rest.distilled.lr == full.distilled.lr
    from easydd.distilled import Distilled
    ema_a = Distilled.load(run_dir / "distilled_ema.safetensors").images
    ema_b = Distilled.load(rest.run_dir / "distilled_ema.safetensors").images
    assert torch.equal(ema_a, ema_b) and not torch.equal(ema_a, full.distilled.images)
    del half


def test_ftd_refuses_plain_experts(env, tmp_path):
    with pytest.raises(UserError, match="--sam"):
        run(env, tmp_path, "ftd", buffer=str(env[1]))


def test_datm_window_labels_and_init(env, tmp_path):
    cfg = cfg_for(env, "datm", tmp_path, max_start_epoch=3, expert_epochs=1, current_max_start_epoch=1,
                  expansion_end=4, min_start_epoch=0)
    m = get_method("datm")(cfg, env[0])
    assert [m.window(it)[1] for it in (0, 1, 2, 4, 9)] == [1, 1, 2, 3, 3]
    m.init_synthetic()
    buf = ExpertBuffer(env[2])
    hard = torch.arange(3).repeat_interleave(2)
    lg = torch.stack([m.expert_logits(buf.params(e, -1), m.images.detach()) for e in range(len(buf))])
    right = lg[0].argmax(1) == hard                              # real images the first expert gets right ...
    assert len(m.init_short_classes) < 3                         # ... (unless a class has too few of them)
    assert all(right[hard == c].all() for c in range(3) if c not in m.init_short_classes)
    ok = (lg.argmax(2) == hard).float()
    n_ok = ok.sum(0)[:, None]                                    # mean logits over the experts that are right
    want = torch.where(n_ok > 0, (lg * ok[..., None]).sum(0) / n_ok.clamp_min(1), lg.mean(0))
    assert torch.allclose(m.labels, want, atol=1e-6) and m.labels.requires_grad
    m.setup()
    before = m.labels.detach().clone()
    m.p.loss_threshold = 0.0
    m.step(0)
    assert not torch.equal(before, m.labels.detach())            # labels are learned
    d = m.distilled()
    assert d.soft and d.labels.shape == (6, 3)


def test_divergence_guard_keeps_last_good_checkpoint(env, tmp_path, monkeypatch):
    from easydd.methods.trajectory import MTT
    step = MTT.step

    def diverging_step(self, it):  # a run that diverges at iteration 2 by itself (syn_lr blows up)
        if it == 2:
            with torch.no_grad():
                self.lr.fill_(1e9)
        return step(self, it)
    monkeypatch.setattr(MTT, "step", diverging_step)
    ckpt = tmp_path / "div" / "checkpoint.pt"
    with pytest.raises(DivergedError) as exc:
        distill(cfg_for(env, "mtt", tmp_path, iterations=8, name="div"), env[0], progress=False,
                final_eval=False, resume=True)
    msg = str(exc.value)
    assert "diverged at iteration 2" in msg and "lr_lr (now 0.0001" in msg and str(ckpt) in msg
    state = torch.load(ckpt, weights_only=True)                  # the last good state is kept
    assert state["iteration"] == 2 and torch.isfinite(state["method"]["images"]).all()
    monkeypatch.setattr(MTT, "step", step)
    # after a divergence the rerun may lower the rates the message names, and resumes from that checkpoint
    ok = distill(cfg_for(env, "mtt", tmp_path, iterations=3, name="div", lr_lr=1e-5), env[0], progress=False,
                 final_eval=False, resume=True)
    assert ok.distilled.lr is not None and math.isfinite(ok.distilled.lr)
    assert "resumed from iteration 2" in (tmp_path / "div" / "log.txt").read_text()
    # a healthy run does not resume under changed rates
    with pytest.raises(UserError, match="other settings"):
        distill(cfg_for(env, "mtt", tmp_path, iterations=4, name="div", lr_lr=1e-6), env[0], progress=False,
                final_eval=False, resume=True)


def test_buffer_problems_are_user_errors(env, tmp_path):
    with pytest.raises(UserError, match="easydd experts"):
        run(env, tmp_path, "mtt", buffer=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="at least 5 epochs"):
        run(env, tmp_path, "mtt", max_start_epoch=4)
    with pytest.raises(UserError, match="model="):
        run(env, tmp_path, "mtt", model="ConvNetD1")


def test_presets_are_valid():
    import dataclasses
    from easydd.config import all_presets
    presets = all_presets()  # parsed once; build_config (which re-reads the files) only for a few
    names = [n for n, v in presets.items() if v["_file"] == "trajectory.yaml"]
    assert {"mtt-cifar10-ipc1", "tesla-cifar10-ipc1", "datm-cifar100-ipc10", "mtt-tiny_imagenet-ipc1",
            "mtt-mnist-ipc1-cpu", "ftd-fashion_mnist-ipc1-cpu"} <= set(names)
    for n in names:
        d = presets[n]
        fields = {f.name for f in dataclasses.fields(method_params(d["method"]))}
        assert set(d["method_args"]) <= fields, n
        assert d["method_args"]["buffer"] and d["method_args"]["expert_recipe"]["num_experts"] > 0
        if n.endswith("-cpu"):
            assert d["note"]
    for n in ("mtt-cifar10-ipc1", "ftd-cifar100-ipc50", "tesla-cifar10-ipc1", "datm-mnist-ipc1-cpu"):
        cfg = build_config(n, {}, method_params)
        assert cfg.method == n.split("-")[0] and cfg.method_args["syn_steps"] > 0
