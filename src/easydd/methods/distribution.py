"""Distribution matching (DM, Zhao & Bilen 2023), with Sample Difficulty Correction.

Each iteration draws a fresh randomly initialised network; for every class, the squared L2 distance between the
mean embedding of a real batch and of the synthetic images (both through the same siamese DSA transform) is
summed over classes and minimised with respect to the images. The network is never trained.

SDC (our extension: the paper has no DM variant): R = mean over classes of ||d/dtheta CE(f_theta(S_c), c)|| where
f_theta is the random network's features followed by its (random) linear head, i.e. the synthetic images'
classification-loss gradient norm at the network DM already samples. Sample mode: per-sample GraDN there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..augment import DSA, default_strategy
from .base import Method, class_loss_grads, flat_norm, sdc_sample_term


@dataclass
class DMParams:
    lr_img: float = 1.0            # SGD momentum 0.5 (reference: 1.0, 10 for IPC >= 100)
    batch_real: int = 256
    dsa_strategy: str = ""


class DM(Method):
    name = "dm"
    family = "distribution"
    Params = DMParams
    real_passes = True

    def setup(self):
        self.aug = DSA(self.p.dsa_strategy or default_strategy(self.data.name))
        self.optimizers = {"img": torch.optim.SGD([self.images], lr=self.p.lr_img, momentum=0.5)}

    def step(self, it: int) -> dict[str, float]:
        g = self.rng(it)
        net = self.new_network(it)
        net.train()
        fresh, mode = self.sdc.fresh, self.cfg.sdc_mode
        for p in net.parameters():
            p.requires_grad_(fresh)  # parameters only need gradients for the SDC term at this network
        reals, syns = [], []
        for c in range(self.num_classes):
            x_real = self.real_batch(c, self.p.batch_real, g)
            plan = self.aug.sample(1, self.shape[1:], g, siamese=True)
            reals.append(self.aug.apply(x_real, plan))
            syns.append(self.aug.apply(self.images[self.class_slice(c)], plan))
        e_reals = self.real.class_means(net, reals)  # one batched pass on the fast path, else class by class
        loss = torch.zeros((), device=self.device)
        sdc_terms = []
        for c, (e_real, x_syn) in enumerate(zip(e_reals, syns)):
            e_syn = net.embed(x_syn).mean(0)
            loss = loss + ((e_real - e_syn) ** 2).sum()
            if fresh:
                y_syn = self.labels[self.class_slice(c)]
                if mode == "batch":
                    sdc_terms.append(flat_norm(class_loss_grads(net, x_syn, y_syn)[1]))
                else:
                    sdc_terms.append(sdc_sample_term(net, x_syn, y_syn))
        sdc = torch.stack(sdc_terms).mean() if sdc_terms else None
        logs = {"loss": float(loss.detach())}
        logs.update(self.descend(it, loss, sdc))
        if "sdc" not in logs:
            logs["sdc"] = float(self._sdc_for_log(net))
        self.optimizers["img"].step()
        return logs

    def _sdc_for_log(self, net) -> torch.Tensor:
        """R at DM's network with SDC off, for the record only (no graph, no random draws: the base method)."""
        params = list(net.parameters())
        for p in params:
            p.requires_grad_(True)
        terms = []
        x = self.images.detach()
        for c in range(self.num_classes):
            sl = self.class_slice(c)
            terms.append(flat_norm(class_loss_grads(net, x[sl], self.labels[sl], create_graph=False)[1]))
        return torch.stack(terms).mean().detach()
