"""The face every distillation method shares, and the Sample Difficulty Correction (SDC) term.

A method is a small class: ``init_synthetic()`` builds the synthetic set from real images (or noise),
``setup()`` creates its optimisers, ``step(it)`` performs one outer iteration and returns its logs
(``loss`` = matching loss, ``sdc`` = the SDC term R), ``distilled()`` returns the current set. The shared driver
(``easydd.distill``) owns the loop, logging, checkpoints, difficulty tracking and evaluation.

Randomness: every iteration draws from its own generator seeded by (run seed, method, iteration), so a run that
resumes from a checkpoint continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distilled import Distilled
from ..nets import make_network
from ..runtime import derive_seed, generator
from ..train import soft_cross_entropy


@dataclass
class NoParams:
    pass


class Method:
    name = "base"
    family = "base"
    Params = NoParams

    def __init__(self, cfg, dataset, device="cpu"):
        self.cfg, self.data, self.device = cfg, dataset, torch.device(device)
        self.p = self.Params(**cfg.method_args)
        self.num_classes, self.shape = dataset.num_classes, tuple(dataset.shape)
        self.ipc = cfg.ipc
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.lr: torch.Tensor | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- randomness -----------------------------------------------------------------------------------------
    def rng(self, it: int, *keys) -> torch.Generator:
        return generator(derive_seed(self.cfg.seed, self.name, it, *keys))

    def new_network(self, it: int, *keys, model: str | None = None):
        return make_network(model or self.cfg.model, self.shape[0], self.num_classes, self.shape[1:],
                            derive_seed(self.cfg.seed, self.name, "net", it, *keys)).to(self.device)

    def real_batch(self, c: int, n: int, g: torch.Generator) -> torch.Tensor:
        return self.data.images_of_class(c, n, generator=g).to(self.device)

    # -- the synthetic set ----------------------------------------------------------------------------------
    def class_slice(self, c: int) -> slice:
        return slice(c * self.ipc, (c + 1) * self.ipc)

    def init_synthetic(self) -> None:
        g = generator(derive_seed(self.cfg.seed, "init"))  # same seed -> same start for every method
        if self.cfg.init == "real":
            imgs = torch.cat([self.real_batch(c, self.ipc, g) for c in range(self.num_classes)])
        else:
            imgs = torch.randn((self.num_classes * self.ipc, *self.shape), generator=g).to(self.device)
        self.images = imgs.detach().clone().requires_grad_(True)
        self.labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(self.ipc)

    def setup(self) -> None:
        raise NotImplementedError

    def step(self, it: int) -> dict[str, float]:
        raise NotImplementedError

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Additional named tensors a method wants saved with the set (e.g. FTD's EMA images)."""
        return {}

    def distilled(self) -> Distilled:
        lr = None if self.lr is None else float(self.lr.detach().abs())
        return Distilled(self.images.detach().cpu().clone(), self.labels.detach().cpu().clone(), lr,
                         {"dataset": self.data.name, "ipc": self.ipc, "method": self.name, "kind": "distilled",
                          "seed": self.cfg.seed, "lambda_sdc": self.cfg.lambda_sdc, "sdc_mode": self.cfg.sdc_mode,
                          "model": self.cfg.model, "mean": list(self.data.mean), "std": list(self.data.std),
                          "zca": self.data.zca is not None, "config": self.cfg.to_dict(), **data_path(self.data)})

    # -- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        s = {"images": self.images.detach().cpu(), "labels": self.labels.detach().cpu(),
             "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}
        if self.lr is not None:
            s["lr"] = self.lr.detach().cpu()
        s["extra"] = {k: v.detach().cpu() for k, v in self.extra_tensors().items()}
        return s

    def load_state_dict(self, s: dict) -> None:
        with torch.no_grad():
            self.images.copy_(s["images"])
            if s["labels"].dtype.is_floating_point and not self.labels.dtype.is_floating_point:
                self.labels = s["labels"].to(self.device).clone().requires_grad_(True)
            elif self.labels.requires_grad:
                self.labels.copy_(s["labels"])
            else:
                self.labels = s["labels"].to(self.device)
            if self.lr is not None and "lr" in s:
                self.lr.copy_(s["lr"])
        for k, o in self.optimizers.items():
            o.load_state_dict(s["optimizers"][k])
        self.load_extra(s.get("extra", {}))

    def load_extra(self, extra: dict) -> None:
        pass


def data_path(dataset) -> dict:
    """{'data_path': ...} for a set made from your own data (so `easydd eval` can reload it), else {}."""
    path = getattr(dataset, "path", None)
    return {"data_path": path} if path else {}


# -- Sample Difficulty Correction ---------------------------------------------------------------------------
def flat_norm(grads) -> torch.Tensor:
    """L2 norm of a list of gradient tensors seen as one flat vector (differentiable)."""
    return torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) + 1e-12)


def sdc_sample_term(net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SDC in 'sample' mode: mean per-sample GraDN of the synthetic images at ``net``, kept in the graph so it
    moves the images (and soft labels)."""
    from ..difficulty import per_sample_grad_norms
    return per_sample_grad_norms(net, x, y, create_graph=True).mean()


def class_loss_grads(net, x, y, create_graph=True):
    params = [p for p in net.parameters() if p.requires_grad]
    loss = soft_cross_entropy(net(x), y)
    return loss, torch.autograd.grad(loss, params, create_graph=create_graph)


__all__ = ["Method", "data_path", "flat_norm", "sdc_sample_term", "class_loss_grads"]
