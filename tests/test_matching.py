"""Gradient matching (DC/DSA/DSAC), distribution matching (DM) and their SDC term, on tiny shapes."""
import pytest
import torch

from easydd.config import build_config
from easydd.methods import get_method, method_params
from easydd.methods.gradient import default_loops, layer_distance, match_distance
from easydd.train import soft_cross_entropy


def test_layer_distance_hand_computed():
    gr = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gs = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    # row 1: cos = 1 -> 0; row 2: cos = 0 -> 1
    assert layer_distance(gr, gs).item() == pytest.approx(1.0, abs=1e-5)
    # opposite directions: 1 - (-1) = 2 per row
    assert layer_distance(gr, -gr).item() == pytest.approx(4.0, abs=1e-5)
    # biases / norm weights count zero
    assert layer_distance(torch.ones(3), -torch.ones(3)).item() == 0.0
    # a conv gradient is reshaped to (out, in*h*w): one output unit, orthogonal -> 1
    a = torch.zeros(1, 2, 3, 3)
    b = torch.zeros(1, 2, 3, 3)
    a[0, 0, 0, 0], b[0, 1, 2, 2] = 1.0, 1.0
    assert layer_distance(a, b).item() == pytest.approx(1.0, abs=1e-5)
    assert match_distance([gr, torch.ones(2)], [gs, torch.zeros(2)]).item() == pytest.approx(1.0, abs=1e-5)


def test_reference_loop_schedule_and_fallback():
    assert default_loops(1) == (1, 1) and default_loops(10) == (10, 50) and default_loops(50) == (50, 10)
    assert default_loops(15) == (10, 50) and default_loops(100) == (50, 10)


def make(method, ds, **over):
    base = dict(method=method, dataset=ds.name, ipc=1, model="ConvNetD2W16", iterations=3, seed=0,
                eval_num_models=1)
    base.update(over)
    cfg = build_config(None, base, method_params)
    m = get_method(method)(cfg, ds)
    m.init_synthetic()
    m.setup()
    return m


def test_dsac_loss_is_the_contrastive_definition(digits):
    """After warm-up, DSAC matches the gradient of the WHOLE synthetic set against the mean of the real class
    gradients (Lee et al. 2022). Recompute that by hand at the same network and real batches."""
    m = make("dsac", digits, outer_warmup=0, inner_warmup=0, dsa_strategy="none", batch_real=8)
    it = 0
    x0 = m.images.detach().clone()  # the images the step matched (it updates them afterwards)
    logs = m.step(it)
    net, g = m.new_network(it), m.rng(it)
    params = list(net.parameters())
    g_mean = None
    for c in range(10):
        xr = m.real_batch(c, 8, g)
        gr = torch.autograd.grad(soft_cross_entropy(net(xr), torch.full((xr.shape[0],), c)), params)
        g_mean = [t / 10 for t in gr] if g_mean is None else [a + t / 10 for a, t in zip(g_mean, gr)]
    gs = torch.autograd.grad(soft_cross_entropy(net(x0), m.labels), params)
    expected = match_distance(g_mean, gs).item()
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


def test_dsac_warmup_is_classwise(digits):
    m_warm = make("dsac", digits, outer_warmup=5, dsa_strategy="none", batch_real=8)
    m_dc = make("dc", digits, batch_real=8)
    # same seed, same draws: during warm-up DSAC is class-wise gradient matching; only the network seed's
    # method name differs, so compare structure: a class-wise loss is a sum of 10 class terms (>= 0, larger)
    lw = m_warm.step(0)["loss"]
    m_c = make("dsac", digits, outer_warmup=0, inner_warmup=0, dsa_strategy="none", batch_real=8)
    lc = m_c.step(0)["loss"]
    assert lw > lc  # ten class distances vs one contrastive distance
    assert m_dc.step(0)["loss"] > 0


@pytest.mark.parametrize("method", ["dc", "dsa", "dsac", "dm"])
def test_lambda_zero_is_exactly_the_base_method(digits, method):
    """lambda_sdc = 0 must give bit-identical sets whatever the SDC mode (no extra draws, no extra gradient)."""
    sets = []
    for mode in ("batch", "sample", "batch"):
        m = make(method, digits, lambda_sdc=0.0, sdc_mode=mode, batch_real=8)
        for it in range(2):
            m.step(it)
        sets.append(m.images.detach().clone())
    assert torch.equal(sets[0], sets[1]) and torch.equal(sets[0], sets[2])
    m = make(method, digits, lambda_sdc=0.5, batch_real=8)
    for it in range(2):
        m.step(it)
    assert not torch.equal(sets[0], m.images.detach())


@pytest.mark.parametrize("method", ["dsa", "dm"])
def test_sdc_lowers_the_synthetic_gradient_norm(digits, method):
    """With lambda_sdc > 0 the synthetic set's mean GraDN (on fixed reference networks) ends lower."""
    from easydd.difficulty import per_sample_grad_norms
    from easydd.nets import make_network
    panel = [make_network("ConvNetD2W16", 1, 10, (8, 8), 100 + i) for i in range(3)]

    def gradn(x, y):
        return torch.stack([per_sample_grad_norms(n, x, y) for n in panel]).mean().item()
    lam = 100.0 if method == "dsa" else 10.0
    out = {}
    for lam_ in (0.0, lam):
        m = make(method, digits, lambda_sdc=lam_, batch_real=16, ipc=2)
        for it in range(15):
            m.step(it)
        out[lam_] = gradn(m.images.detach(), m.labels)
    assert out[lam] < out[0.0]


def test_sample_mode_runs_and_is_differentiable(digits):
    m = make("dsa", digits, lambda_sdc=0.1, sdc_mode="sample", batch_real=8)
    before = m.images.detach().clone()
    logs = m.step(0)
    assert logs["sdc"] > 0 and not torch.equal(before, m.images.detach())


def test_batchnorm_network_is_handled(digits):
    m = make("dc", digits, model="ConvNetD2W16BN", batch_real=8, ipc=2)
    assert torch.isfinite(torch.tensor(m.step(0)["loss"]))


# -- SDC at the trained pool, rho and the ratio-controlled weight ----------------------------------------------
@pytest.mark.parametrize("method", ["dsa", "dm"])
def test_sdc_off_is_bit_identical_whatever_the_sdc_settings(digits, method):
    """lambda_sdc = 0 and sdc_ratio = 0 give the base method bit for bit, wherever R would be measured."""
    sets = []
    for over in (dict(), dict(sdc_net="fresh"), dict(sdc_net="trained", sdc_ratio=0.0, sdc_pool=2)):
        m = make(method, digits, batch_real=8, **over)
        for it in range(2):
            m.step(it)
        sets.append(m.images.detach().clone())
    assert torch.equal(sets[0], sets[1]) and torch.equal(sets[0], sets[2])


@pytest.mark.parametrize("method", ["dc", "dm"])
def test_trained_pool_logs_rho_and_the_ratio_holds_it(digits, method):
    """sdc_ratio = r sets lambda so that ||d(lambda R)/dS|| / ||dL_match/dS|| stays near r (a running estimate:
    exactly r on the first update, within a factor of 3 later); R is taken at a pool network, not the method's."""
    m = make(method, digits, batch_real=8, sdc_ratio=0.5, sdc_pool=2)
    logs = [m.step(it) for it in range(6)]
    assert logs[0]["rho"] == pytest.approx(0.5, rel=1e-4)
    assert all(0.5 / 3 < r["rho"] < 0.5 * 3 for r in logs), [r["rho"] for r in logs]
    assert all(r["lambda"] > 0 and r["sdc"] > 0 for r in logs)
    # the weight's running state travels with the checkpoint
    state = m.state_dict()
    m2 = make(method, digits, batch_real=8, sdc_ratio=0.5, sdc_pool=2)
    m2.load_state_dict(state)
    assert m2.sdc.scale == pytest.approx(m.sdc.scale)


def test_fixed_lambda_reports_its_rho(digits):
    m = make("dsa", digits, batch_real=8, lambda_sdc=2.0, sdc_pool=2)
    logs = m.step(0)
    assert logs["lambda"] == 2.0 and logs["rho"] > 0


def test_trained_pool_penalty_lowers_r_at_the_pool(digits):
    """The mechanics on tiny shapes: with the ratio on, the set's R at the pool networks ends below the base
    method's (same seed). Transfer to disjoint networks is an MNIST-scale behaviour, tested in test_e2e_mnist."""
    from easydd.sdc import batch_term
    out = {}
    for r in (0.0, 1.0):
        m = make("dsa", digits, batch_real=16, ipc=2, sdc_ratio=r, sdc_pool=2, lr_img=1.0)
        for it in range(10):
            m.step(it)
        if r == 0.0:
            base = m
            continue
        x, y = m.images.detach(), m.labels
        sl = [m.class_slice(c) for c in range(10)]
        out = [(batch_term(net, base.images.detach(), y, sl).item(), batch_term(net, x, y, sl).item())
               for net in m.sdc._pool]
    assert all(after < before for before, after in out), out


def test_pool_and_tracking_panel_never_share_a_network():
    from easydd.sdc import POOL_SEED
    assert POOL_SEED != 0  # the driver's tracking panel is reference_panel(..., seed=0)


def test_final_set_is_tracked_whatever_track_every(digits, tmp_path):
    """final_gradn is the FINAL set's panel GraDN even when iterations is not a multiple of track_every."""
    from easydd.distill import distill
    cfg = build_config(None, dict(method="dm", dataset=digits.name, ipc=1, model="ConvNetD2W16", iterations=3,
                                  track_every=2, panel_models=1, checkpoint_every=0, out_dir=str(tmp_path)),
                       method_params)
    res = distill(cfg, digits, progress=False, final_eval=False, resume=False)
    assert res.metrics["final_gradn_iteration"] == 3
    rows = (res.run_dir / "curves.csv").read_text().splitlines()
    header = rows[0].split(",")
    tracked = [r.split(",")[0] for r in rows[1:] if r.split(",")[header.index("gradn")]]
    assert tracked == ["0", "2", "3"]


def test_divergence_before_any_checkpoint_says_so_and_the_rerun_starts_over(digits, tmp_path):
    """A gradient-matching run that diverges before its first checkpoint must not claim one is kept; the rerun with
    a lower rate starts over and finishes."""
    from easydd.distill import distill
    from easydd.errors import DivergedError

    def cfg(lr_img):
        return build_config(None, dict(method="dc", dataset=digits.name, ipc=1, model="ConvNetD2W16", iterations=2,
                                       track_every=0, checkpoint_every=5, lr_img=lr_img, out_dir=str(tmp_path),
                                       name="div"), method_params)
    with pytest.raises(DivergedError) as exc:
        distill(cfg(1e30), digits, progress=False, final_eval=False, resume=True)
    msg = str(exc.value)
    assert "No checkpoint had been written yet (checkpoint_every=5)" in msg and "starts over" in msg
    assert "is kept" not in msg and not (tmp_path / "div" / "checkpoint.pt").exists()
    res = distill(cfg(0.1), digits, progress=False, final_eval=False, resume=True)
    assert torch.isfinite(res.distilled.images).all() and (tmp_path / "div" / "checkpoint.pt").exists()
