"""Sample Difficulty Correction (SDC): where the penalty is measured, and how hard it pushes.

    L_total(S) = L_match(S) + lambda * R(S)

R is the classification-loss gradient norm of the synthetic images with respect to network parameters, kept in
the graph so that it moves the images (and learnable labels). Two choices decide whether it does anything:

Where R is measured (``sdc_net``):
- ``trained`` (default): at one network of a small POOL of networks of the run's architecture trained briefly on
  the real training split (the reference-panel machinery of :mod:`easydd.difficulty`, cached on disk and shared by
  every run on the dataset), one member drawn per update from a generator of its own. Difficulty (GraDN, Paul et
  al. 2021) is defined on networks that have learned something; at initialisation the gradient norm barely depends
  on the label, so a penalty there pushes on something that is not difficulty (docs/sdc.md has the measurements).
  The pool is built with seed 1; the tracking panel that reports the synthetic set's GraDN uses seed 0, so the
  difficulty a run reports is measured on networks the penalty never saw.
- ``fresh``: at the networks the method already uses (gradient matching: its sampled network; DM: its random
  network; trajectory matching: the unrolled student). Kept for comparison.
- ``expert`` (trajectory matching only): at the expert checkpoint the iteration's student starts from, a network
  trained on the real data that the method already holds (no pool); per-class norms as with ``trained``.

How hard it pushes: the matching losses differ by orders of magnitude across methods, so a fixed ``lambda_sdc``
does not transfer. Every update logs rho = ||d(lambda R)/dS|| / ||dL_match/dS|| (both gradients exist anyway).
``sdc_ratio = r`` sets lambda at every update so that rho stays near r: lambda_t = r * m_t, m_t a running mean
(EMA, 0.9) of ||dL_match/dS|| / ||dR/dS||. ``lambda_sdc = 0`` and ``sdc_ratio = 0`` give the base method bit for
bit (no pool, no extra random draws).
"""
from __future__ import annotations

import math

import torch

from .errors import UserError
from .runtime import derive_seed, generator
from .train import soft_cross_entropy

SDC_NETS = ("trained", "fresh", "expert")
SDC_NETS_DEFAULT = ("trained", "fresh")   # what a method supports unless its Params say ``sdc_nets``
POOL_SEED = 1      # the tracking panel uses seed 0: the pool and the panel never share a network
EMA = 0.9


def flat_norm(grads) -> torch.Tensor:
    """L2 norm of a list of gradient tensors seen as one flat vector (differentiable)."""
    return torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) + 1e-12)


def class_loss_grads(net, x, y, create_graph=True):
    params = [p for p in net.parameters() if p.requires_grad]
    loss = soft_cross_entropy(net(x), y)
    return loss, torch.autograd.grad(loss, params, create_graph=create_graph)


def sample_term(net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """R in 'sample' mode: mean per-sample GraDN of ``x`` at ``net``, differentiable w.r.t. x (and soft y)."""
    from .difficulty import per_sample_grad_norms
    return per_sample_grad_norms(net, x, y, create_graph=True).mean()


def batch_term(net, x: torch.Tensor, y: torch.Tensor, slices) -> torch.Tensor:
    """R in 'batch' mode: mean over classes of the norm of the class batch's loss gradient at ``net``."""
    return torch.stack([flat_norm(class_loss_grads(net, x[s], y[s])[1]) for s in slices]).mean()


def check_settings(cfg) -> None:
    """The SDC settings of a run config, checked before any data is read."""
    if cfg.sdc_net not in SDC_NETS:
        raise UserError(f"sdc_net must be one of {', '.join(SDC_NETS)} (got {cfg.sdc_net!r})")
    for k in ("lambda_sdc", "sdc_ratio"):
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(f"{k} must be a finite number >= 0 (got {v!r}); 0 turns SDC off")
    if cfg.lambda_sdc > 0 and cfg.sdc_ratio > 0:
        raise UserError("set either lambda_sdc (a fixed weight) or sdc_ratio (the weight that keeps "
                        "||d(lambda R)/dS|| / ||dL_match/dS|| near the ratio), not both")
    if not (isinstance(cfg.sdc_pool, int) and cfg.sdc_pool >= 1):
        raise UserError(f"sdc_pool must be a positive integer (got {cfg.sdc_pool!r})")
    if not (isinstance(cfg.sdc_pool_epochs, int) and cfg.sdc_pool_epochs >= 1):
        raise UserError(f"sdc_pool_epochs must be a positive integer (got {cfg.sdc_pool_epochs!r})")


class SDC:
    """The SDC state of one run: its settings, the pool of trained networks, the running weight."""

    def __init__(self, cfg):
        self.lam, self.ratio = float(cfg.lambda_sdc), float(cfg.sdc_ratio)
        self.mode, self.net = cfg.sdc_mode, cfg.sdc_net
        self.cfg = cfg
        self.scale: float | None = None    # running ||dL/dS|| / ||dR/dS|| (sdc_ratio only)
        self._pool: list | None = None

    @property
    def active(self) -> bool:
        return self.lam > 0 or self.ratio > 0

    @property
    def fresh(self) -> bool:
        """R enters the method's own graph (at the method's own networks)."""
        return self.active and self.net == "fresh"

    @property
    def trained(self) -> bool:
        return self.active and self.net == "trained"

    @property
    def expert(self) -> bool:
        return self.active and self.net == "expert"

    # -- the pool ---------------------------------------------------------------------------------------------
    def prepare(self, dataset, device, log=None) -> None:
        """Load (or build once, cached) the pool of trained networks; a no-op unless sdc_net=trained is active."""
        if not self.trained or self._pool is not None:
            return
        from .difficulty import reference_panel
        panel = reference_panel(dataset, model=self.cfg.model, num_models=self.cfg.sdc_pool,
                                epochs=self.cfg.sdc_pool_epochs, seed=POOL_SEED, device=device, log=log)
        self._pool = []
        for i in range(len(panel)):
            net = panel.network(i)
            for p in net.parameters():
                p.requires_grad_(True)
            self._pool.append(net)

    def pool_term(self, images, labels, slices, seed: int, *keys) -> torch.Tensor:
        """R at one pool member drawn from the generator of (seed, 'sdc', *keys)."""
        if self._pool is None:
            raise RuntimeError("SDC.prepare() must run before the first update")
        g = generator(derive_seed(seed, "sdc", *keys))
        net = self._pool[int(torch.randint(len(self._pool), (1,), generator=g))]
        if self.mode == "sample":
            return sample_term(net, images, labels)
        return batch_term(net, images, labels, slices)

    # -- the weight -------------------------------------------------------------------------------------------
    def weight(self, g_match: float, g_r: float) -> float:
        """lambda for this update: the fixed lambda_sdc, or sdc_ratio x the running gradient-norm ratio."""
        if self.ratio <= 0:
            return self.lam
        if g_r > 0 and math.isfinite(g_match / g_r):
            now = g_match / g_r
            self.scale = now if self.scale is None else EMA * self.scale + (1 - EMA) * now
        return self.ratio * (self.scale or 0.0)

    def state_dict(self) -> dict:
        return {"scale": torch.tensor(float("nan") if self.scale is None else self.scale, dtype=torch.float64)}

    def load_state_dict(self, s: dict) -> None:
        v = float(s["scale"]) if "scale" in s else float("nan")
        self.scale = None if math.isnan(v) else v


__all__ = ["SDC", "SDC_NETS", "check_settings", "flat_norm", "class_loss_grads", "sample_term", "batch_term"]
