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
from ..errors import UserError
from ..fastpass import RealPass
from ..nets import make_network
from ..runtime import derive_seed, generator
from ..sdc import SDC, class_loss_grads, flat_norm, sample_term as sdc_sample_term


@dataclass
class NoParams:
    pass


class Method:
    name = "base"
    family = "base"
    Params = NoParams
    real_passes = False  # True: the method's real-data passes honour precision / compile (fastpass.RealPass)

    def __init__(self, cfg, dataset, device="cpu"):
        self.cfg, self.data, self.device = cfg, dataset, torch.device(device)
        self.p = self.Params(**cfg.method_args)
        self.num_classes, self.shape = dataset.num_classes, tuple(dataset.shape)
        self.ipc = cfg.ipc
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.lr: torch.Tensor | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.sdc = SDC(cfg)
        if not self.real_passes and (cfg.precision != "fp32" or cfg.compile):
            raise UserError(f"precision={cfg.precision} / compile={cfg.compile} speed up the real-data passes of "
                            f"dc, dsa, dsac and dm; {self.name} has none it could use them for: leave them at "
                            "precision=fp32 compile=false")
        self.real = RealPass(cfg.precision, cfg.compile, self.device)
        self.checkpoint_path = None  # set by the driver; named in divergence messages

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

    def learnables(self) -> list[torch.Tensor]:
        """The tensors the outer optimisers update (images first)."""
        out = [self.images]
        out += [t for t in (self.labels, self.lr) if t is not None and t.requires_grad]
        return out

    # -- one update with SDC ----------------------------------------------------------------------------------
    def descend(self, it: int, loss: torch.Tensor, sdc_fresh: torch.Tensor | None = None, *keys) -> dict:
        """Set ``.grad`` of the learnables to d(L_match + lambda R)/d(.) and return the SDC logs.

        ``sdc_fresh``: R at the method's own network (in its graph), used when sdc_net=fresh. With sdc_net=trained,
        R is taken at a pool network drawn for (iteration, *keys). Logs: ``sdc`` (R), ``rho`` (||d(lambda R)/dS|| /
        ||dL_match/dS||) and ``lambda`` when SDC is on. SDC off: exactly ``loss.backward()``.
        """
        ins = self.learnables()
        for t in ins:
            t.grad = None
        if not self.sdc.active:
            loss.backward()
            return {}
        if self.sdc.fresh:
            r = sdc_fresh
            g_match = torch.autograd.grad(loss, ins, retain_graph=True, allow_unused=True)
        else:
            g_match = torch.autograd.grad(loss, ins, allow_unused=True)
            r = self._pool_r(it, *keys)
        return self._add_sdc(ins, list(g_match), r)

    def add_trained_sdc(self, it: int, *keys) -> dict:
        """For methods that set ``.grad`` themselves (trajectory matching): add lambda * dR/d(.) with R at a pool
        network (sdc_net=trained) and return the logs; a no-op returning {} otherwise."""
        if not self.sdc.trained:
            return {}
        ins = self.learnables()
        r = self._pool_r(it, *keys)
        return self._add_sdc(ins, [t.grad for t in ins], r)

    def _pool_r(self, it: int, *keys) -> torch.Tensor:
        self.sdc.prepare(self.data, self.device)  # loads the cached pool the first time (the driver does it early)
        slices = [self.class_slice(c) for c in range(self.num_classes)]
        return self.sdc.pool_term(self.images, self.labels, slices, self.cfg.seed, it, *keys)

    def _add_sdc(self, ins, g_match, r) -> dict:
        g_r = torch.autograd.grad(r, ins, allow_unused=True)
        n_match = float(g_match[0].norm()) if g_match[0] is not None else 0.0
        n_r = float(g_r[0].norm()) if g_r[0] is not None else 0.0
        lam = self.sdc.weight(n_match, n_r)
        for t, gm, gr in zip(ins, g_match, g_r):
            g = gm if gm is not None else torch.zeros_like(t)
            t.grad = g + lam * gr if gr is not None else g
        rho = lam * n_r / n_match if n_match > 0 else float("inf")
        return {"sdc": float(r.detach()), "rho": rho, "lambda": lam}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Additional named tensors a method wants saved with the set (e.g. FTD's EMA images)."""
        return {}

    def distilled(self) -> Distilled:
        lr = None if self.lr is None else float(self.lr.detach().abs())
        return Distilled(self.images.detach().cpu().clone(), self.labels.detach().cpu().clone(), lr,
                         {"dataset": self.data.name, "ipc": self.ipc, "method": self.name, "kind": "distilled",
                          "seed": self.cfg.seed, "lambda_sdc": self.cfg.lambda_sdc, "sdc_mode": self.cfg.sdc_mode,
                          "sdc_net": self.cfg.sdc_net, "sdc_ratio": self.cfg.sdc_ratio,
                          "model": self.cfg.model, "mean": list(self.data.mean), "std": list(self.data.std),
                          "zca": self.data.zca is not None, "config": self.cfg.to_dict(), **data_path(self.data)})

    # -- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        s = {"images": self.images.detach().cpu(), "labels": self.labels.detach().cpu(),
             "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}
        if self.lr is not None:
            s["lr"] = self.lr.detach().cpu()
        s["extra"] = {k: v.detach().cpu() for k, v in self.extra_tensors().items()}
        s["sdc"] = self.sdc.state_dict()
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
            lrs = [grp["lr"] for grp in o.param_groups]
            o.load_state_dict(s["optimizers"][k])
            for grp, lr in zip(o.param_groups, lrs):  # a rerun with a lowered rate (after a divergence) uses it
                grp["lr"] = lr
        self.load_extra(s.get("extra", {}))
        self.sdc.load_state_dict(s.get("sdc", {}))

    def load_extra(self, extra: dict) -> None:
        pass


def data_path(dataset) -> dict:
    """{'data_path': ...} for a set made from your own data (so `easydd eval` can reload it), else {}."""
    path = getattr(dataset, "path", None)
    return {"data_path": path} if path else {}


__all__ = ["Method", "data_path", "flat_norm", "sdc_sample_term", "class_loss_grads"]
