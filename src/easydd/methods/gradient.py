"""Gradient matching: DC (Zhao et al. 2021), DSA (Zhao & Bilen 2021), DSAC (DCC contrastive signals + DSA,
Lee et al. 2022), with Sample Difficulty Correction.

One iteration: sample a fresh network; ``outer_loop`` times: for every class c, compare the gradient of the loss on
a real batch of c with the gradient on the synthetic images of c (layer-wise distance 'ours'), update the images;
then train the network on the synthetic set for ``inner_loop`` epochs. DSA applies the same sampled augmentation
(family and parameters) to the real and the synthetic batch of a class. DSAC matches the gradient of the whole
synthetic set against the mean of the real class gradients (contrastive signal) after a class-wise warm-up.

SDC, batch mode: R = mean over classes of ||g_c|| where g_c = d/dtheta CE(f_theta(S_c), c) is the synthetic
gradient the matching loss already builds with create_graph (DSAC after warm-up: the norm of its one
whole-set gradient). Sample mode: mean per-sample GraDN of the synthetic images at the same network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..augment import DSA, default_strategy
from ..nets import frozen_batchnorm, has_batchnorm
from ..train import soft_cross_entropy
from .base import Method, class_loss_grads, flat_norm, sdc_sample_term

# (outer_loop, inner_loop) by IPC, from the reference code
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: int) -> tuple[int, int]:
    """The reference schedule; other IPCs take the nearest tabulated IPC at or below them (the reference exits)."""
    if ipc in LOOPS:
        return LOOPS[ipc]
    key = max(k for k in LOOPS if k <= ipc) if ipc > 1 else 1
    return LOOPS[key]


def layer_distance(gr: torch.Tensor, gs: torch.Tensor) -> torch.Tensor:
    """The reference distance for one layer: sum over output units of (1 - cos) between the reshaped real and
    synthetic gradients; 1-D parameters (biases, norm weights) count zero."""
    if gr.dim() == 1:
        return gr.new_zeros(())
    gr, gs = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
    cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def match_distance(g_real, g_syn, metric: str = "ours") -> torch.Tensor:
    if metric == "ours":
        return sum(layer_distance(r, s) for r, s in zip(g_real, g_syn))
    r = torch.cat([g.flatten() for g in g_real])
    s = torch.cat([g.flatten() for g in g_syn])
    if metric == "mse":
        return ((r - s) ** 2).sum()
    if metric == "cos":
        return 1 - (r * s).sum() / (r.norm() * s.norm() + 1e-6)
    raise ValueError(f"unknown distance {metric!r}; choose ours, mse or cos")


@dataclass
class GMParams:
    lr_img: float = 0.1            # SGD, momentum 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    outer_loop: int = 0            # 0: the reference schedule for this IPC
    inner_loop: int = 0
    dis_metric: str = "ours"
    dsa_strategy: str = ""         # '': the reference strategy for the dataset
    outer_warmup: int = 250        # DSAC: class-wise matching for the first iterations ...
    inner_warmup: int = 10         # ... and the first outer steps of each iteration


class DC(Method):
    name = "dc"
    family = "gradient"
    Params = GMParams
    real_passes = True
    dsa = False
    contrastive = False

    def setup(self):
        self.outer, self.inner = default_loops(self.ipc)
        self.outer = self.p.outer_loop or self.outer
        self.inner = self.p.inner_loop or self.inner
        self.aug = DSA(self.p.dsa_strategy or default_strategy(self.data.name)) if self.dsa else None
        self.optimizers = {"img": torch.optim.SGD([self.images], lr=self.p.lr_img, momentum=0.5)}

    def _contrast_now(self, it: int, ol: int) -> bool:
        return self.contrastive and (it >= self.p.outer_warmup or ol >= min(self.p.inner_warmup, self.outer))

    def step(self, it: int) -> dict[str, float]:
        g = self.rng(it)
        net = self.new_network(it)
        net.train()
        params = [p for p in net.parameters()]
        opt_net = torch.optim.SGD(params, lr=self.p.lr_net)
        logs_sum: dict[str, float] = {}
        for ol in range(self.outer):
            if has_batchnorm(net):  # running statistics from 16 real images per class, frozen while matching
                net.train()
                with torch.no_grad():
                    net(torch.cat([self.real_batch(c, 16, g) for c in range(self.num_classes)]))
            with frozen_batchnorm(net):
                loss, sdc = self._match(it, ol, net, params, g)
                logs = {"loss": float(loss.detach()), "sdc": float(sdc.detach())}
                logs.update(self.descend(it, loss, sdc, ol))  # SDC on: R, rho and lambda of this update
            self.optimizers["img"].step()
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / self.outer
            if ol == self.outer - 1:
                break
            self._train_net(net, opt_net, g)  # batch norm back in training mode, as the reference's inner loop
        return logs_sum

    def _match(self, it: int, ol: int, net, params, g) -> tuple[torch.Tensor, torch.Tensor]:
        """The matching loss of one outer step (summed over classes, or DSAC's one contrastive term) and the SDC
        term R at this network (zero unless sdc_net=fresh)."""
        fresh, mode = self.sdc.fresh, self.cfg.sdc_mode
        contrast = self._contrast_now(it, ol)
        loss = torch.zeros((), device=self.device)
        sdc_terms, g_real_mean, syn_aug = [], None, []
        for c in range(self.num_classes):
            x_real = self.real_batch(c, self.p.batch_real, g)
            x_syn = self.images[self.class_slice(c)]
            if self.aug is not None:
                plan = self.aug.sample(1, self.shape[1:], g, siamese=True)
                x_real, x_syn = self.aug.apply(x_real, plan), self.aug.apply(x_syn, plan)
            y_real = torch.full((x_real.shape[0],), c, device=self.device)
            gr = self.real.grads(net, params, x_real, y_real)  # eager fp32 unless precision/compile
            if contrast:
                g_real_mean = ([t / self.num_classes for t in gr] if g_real_mean is None
                               else [a + t / self.num_classes for a, t in zip(g_real_mean, gr)])
                syn_aug.append(x_syn)
                continue
            y_syn = self.labels[self.class_slice(c)]
            _, gs = class_loss_grads(net, x_syn, y_syn, create_graph=True)
            loss = loss + match_distance(gr, gs, self.p.dis_metric)
            if mode == "batch":
                sdc_terms.append(flat_norm(gs))
            elif fresh:
                sdc_terms.append(sdc_sample_term(net, x_syn, y_syn))
        if contrast:  # one gradient of the whole synthetic set against the mean real class gradient
            x_all = torch.cat(syn_aug)
            _, gs = class_loss_grads(net, x_all, self.labels, create_graph=True)
            loss = loss + match_distance(g_real_mean, gs, self.p.dis_metric)
            if mode == "batch":
                sdc_terms.append(flat_norm(gs))
            elif fresh:
                sdc_terms.append(sdc_sample_term(net, x_all, self.labels))
        sdc = torch.stack(sdc_terms).mean() if sdc_terms else torch.zeros((), device=self.device)
        return loss, sdc

    def _train_net(self, net, opt_net, g):
        """Inner loop: train the sampled network on the (detached) synthetic set."""
        net.train()
        x, y = self.images.detach(), self.labels.detach()
        bs = min(self.p.batch_train, x.shape[0])
        for _ in range(self.inner):
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], bs):
                idx = perm[i:i + bs]
                xb = x[idx] if self.aug is None else self.aug(x[idx], g)
                if self.real.fast:  # no graph to the images here either: the fast path applies
                    for p, gp in zip(net.parameters(), self.real.grads(net, list(net.parameters()), xb, y[idx])):
                        p.grad = gp
                else:
                    loss = soft_cross_entropy(net(xb), y[idx])
                    opt_net.zero_grad(set_to_none=True)
                    loss.backward()
                opt_net.step()
        # the image optimiser must not see gradients the inner loop left on the network
        for p in net.parameters():
            p.grad = None


class DSAMethod(DC):
    name = "dsa"
    dsa = True


class DSAC(DC):
    name = "dsac"
    dsa = True
    contrastive = True
