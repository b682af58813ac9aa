"""One training loop, shared by evaluation, selection baselines and difficulty panels. Expert trajectories
(experts.py) keep a loop of their own: they record the flat parameters after every epoch and may take SAM/GSAM
steps, neither of which this loop does.

``Ensemble`` holds K networks of one architecture and trains them one after another. Each network has its own
initial weights, its own mini-batch order and its own augmentation draws, all derived from explicit seeds.
(A vmap-stacked path, all K networks in one call, was measured slower than K plain passes on this CPU, 1.45 vs
0.99 s a step at batch 10, and was killed at 17 GiB training 5 ConvNets on 100 images; it was removed, see
docs/speed.md.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .nets import has_batchnorm, make_network
from .runtime import generator


@dataclass
class TrainSpec:
    epochs: int
    lr: float = 0.01
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_at_half: bool = True   # lr x0.1 at half the epochs (reference evaluation protocol)


from .errors import DivergenceError, divergence_advice  # noqa: E402  (re-exported here)


def _sgd_step(opt, loss: torch.Tensor, epoch: int, spec: TrainSpec, grads=None, params=None) -> None:
    """One optimiser step, refusing a non-finite loss with the fix (a lower learning rate) in the message.
    ``grads`` (of ``params``): gradients computed elsewhere (the fast path); else ``loss.backward()``."""
    if not torch.isfinite(loss):
        raise DivergenceError(f"training diverged: the loss became {float(loss.detach())} at epoch {epoch}. "
                              + divergence_advice(f"the learning rate (now {spec.lr:g}, e.g. --lr)"))
    opt.zero_grad(set_to_none=True)
    if grads is None:
        loss.backward()
    else:
        for p, g in zip(params, grads):
            p.grad = g
    opt.step()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels (N,) or soft-label logits (N, K) (target = softmax(logits))."""
    if targets.dim() == 1:
        return F.cross_entropy(logits, targets)
    return -(targets.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Ensemble:
    def __init__(self, model: str, channel: int, num_classes: int, im_size, seeds: list[int], *,
                 device: str | torch.device = "cpu", **net_kwargs):
        self.model_name, self.seeds, self.device = model, list(seeds), torch.device(device)
        self.nets = [make_network(model, channel, num_classes, im_size, s, **net_kwargs).to(self.device)
                     for s in self.seeds]

    def __len__(self):
        return len(self.seeds)

    # -- training -------------------------------------------------------------------------------------------
    def train(self, x: torch.Tensor, y: torch.Tensor, spec: TrainSpec, *, aug: Augment | None = None,
              seed: int = 0, progress=None, passes=None) -> "Ensemble":
        """``passes``: a ``fastpass.RealPass`` for the training passes (bf16 / compiled); None: eager fp32."""
        x, y = x.to(self.device), y.to(self.device)
        g = generator(seed)
        for net in self.nets:
            self._train_single(net, x, y, spec, aug, g, progress, passes)
        return self

    def _batches(self, n: int, bs: int, g: torch.Generator):
        perm = torch.randperm(n, generator=g)
        return [perm[i:i + bs] for i in range(0, n, bs)]

    def _lr_at(self, spec: TrainSpec, epoch: int) -> float:
        return spec.lr * (0.1 if spec.decay_at_half and epoch >= spec.epochs // 2 and spec.epochs > 1 else 1.0)

    def _train_single(self, net, x, y, spec, aug, g, progress, passes=None):
        net.train()
        params = list(net.parameters())
        opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
        bs = min(spec.batch_size, x.shape[0])
        for ep in range(spec.epochs):
            for grp in opt.param_groups:
                grp["lr"] = self._lr_at(spec, ep)
            for idx in self._batches(x.shape[0], bs, g):
                xb = x[idx] if aug is None else aug(x[idx], g)
                if xb.shape[0] == 1 and has_batchnorm(net):
                    continue  # BatchNorm cannot train on a single image
                if passes is None:
                    _sgd_step(opt, soft_cross_entropy(net(xb), y[idx]), ep, spec)
                else:
                    loss, grads = passes.loss_and_grads(net, params, xb, y[idx])
                    _sgd_step(opt, loss, ep, spec, grads, params)
            if progress is not None:
                progress.update(1)

    # -- inference ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 1000, passes=None) -> torch.Tensor:
        """(K, N, classes) logits of every network (``passes``: through the fast path)."""
        outs = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(self.device)
            for n in self.nets:
                n.eval()
            outs.append(torch.stack([n(xb) if passes is None else passes.logits(n, xb) for n in self.nets]))
        for n in self.nets:
            n.train()
        return torch.cat(outs, 1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, passes=None) -> torch.Tensor:
        """(K,) accuracy of every network on (x, y)."""
        correct = torch.zeros(len(self))
        for i in range(0, x.shape[0], batch_size):
            lg = self.logits(x[i:i + batch_size], batch_size, passes)
            correct += (lg.argmax(-1).cpu() == y[i:i + batch_size].view(1, -1)).float().sum(1)
        return correct / x.shape[0]

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in self.nets]


def nan_safe_mean_std(values) -> tuple[float, float]:
    v = [float(a) for a in values]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    s = (sum((a - m) ** 2 for a in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
    return m, s
