"""Differentiable Siamese Augmentation (DSA) with explicit parameters, and the evaluation augmentations.

A DSA call is split in two: ``sample`` draws a *plan* (which family of transforms and its parameters) from an
explicit ``torch.Generator``; ``apply`` runs the plan on a batch and is differentiable with respect to the images.
Siamese use (DSA, DM, DSAC) samples one plan with one shared parameter set and applies it to the real and to the
synthetic batch of a class; evaluation and trajectory matching sample per-sample parameters. Nothing here touches
the global random generator.

Defaults are the reference ones: flip p=0.5; scale per axis U[1/1.2, 1.2]; rotate +-15 degrees; crop/translate
+-12.5% of the side with zero padding; cutout of a square half the side; brightness +U(-0.5, 0.5); saturation
xU(0, 2); contrast xU(0.5, 1.5); 'color' = brightness, saturation, contrast in turn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DIGITS_STRATEGY = "color_crop_cutout_scale_rotate"  # the reference drops flip for MNIST-like data and SVHN

FAMILIES = {
    "color": ("brightness", "saturation", "contrast"),
    "crop": ("crop",), "cutout": ("cutout",), "flip": ("flip",), "scale": ("scale",), "rotate": ("rotate",),
    "brightness": ("brightness",), "saturation": ("saturation",), "contrast": ("contrast",),
}


def default_strategy(dataset_name: str) -> str:
    return DIGITS_STRATEGY if dataset_name in ("mnist", "fashion_mnist", "svhn", "digits") else DEFAULT_STRATEGY


@dataclass(frozen=True)
class DSAParams:
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    prob_flip: float = 0.5


@dataclass
class Plan:
    """One sampled augmentation: the transforms in order and their parameters (batch of 1 when siamese)."""
    ops: list[tuple[str, dict[str, torch.Tensor]]] = field(default_factory=list)


def _u(n, g, lo=0.0, hi=1.0):
    return torch.rand(n, generator=g) * (hi - lo) + lo


class DSA:
    def __init__(self, strategy: str = DEFAULT_STRATEGY, params: DSAParams = DSAParams(), mode: str = "S"):
        names = [s for s in strategy.split("_") if s and s.lower() != "none"]
        unknown = [s for s in names if s not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown DSA transform(s) {unknown} in strategy {strategy!r}; "
                             f"known: {', '.join(FAMILIES)}")
        if mode not in ("S", "M"):
            raise ValueError("DSA mode must be 'S' (one family per call) or 'M' (all in turn)")
        self.strategy, self.families, self.p, self.mode = strategy, names, params, mode

    def __repr__(self):
        return f"DSA({self.strategy!r}, mode={self.mode!r})"

    # -- sampling -------------------------------------------------------------------------------------------
    def sample(self, n: int, shape: tuple[int, int], generator: torch.Generator, siamese: bool = False) -> Plan:
        """Draw a plan for a batch of ``n`` images of spatial ``shape``; siamese plans share one parameter set."""
        if not self.families:
            return Plan()
        m = 1 if siamese else n
        if self.mode == "S":
            pick = int(torch.randint(len(self.families), (1,), generator=generator))
            families = [self.families[pick]]
        else:
            families = self.families
        plan = Plan()
        for fam in families:
            for op in FAMILIES[fam]:
                plan.ops.append((op, self._draw(op, m, shape, generator)))
        return plan

    def _draw(self, op, m, shape, g) -> dict[str, torch.Tensor]:
        p, (h, w) = self.p, shape
        if op == "scale":
            return {"sx": _u(m, g, 1 / p.ratio_scale, p.ratio_scale), "sy": _u(m, g, 1 / p.ratio_scale, p.ratio_scale)}
        if op == "rotate":
            return {"theta": (_u(m, g) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi}
        if op == "flip":
            return {"flip": _u(m, g) < p.prob_flip}
        if op == "crop":
            sx, sy = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
            return {"tx": torch.randint(-sx, sx + 1, (m,), generator=g),
                    "ty": torch.randint(-sy, sy + 1, (m,), generator=g)}
        if op == "cutout":
            ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
            return {"cy": torch.randint(0, h + (1 - ch % 2), (m,), generator=g),
                    "cx": torch.randint(0, w + (1 - cw % 2), (m,), generator=g),
                    "size": torch.tensor([ch, cw])}
        if op == "brightness":
            return {"b": (_u(m, g) - 0.5) * p.brightness}
        if op == "saturation":
            return {"s": _u(m, g) * p.saturation}
        if op == "contrast":
            return {"c": _u(m, g) + p.contrast}
        raise AssertionError(op)

    # -- application ----------------------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        for op, prm in plan.ops:
            prm = {k: v.to(x.device) for k, v in prm.items()}
            x = getattr(self, "_" + op)(x, prm)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], tuple(x.shape[-2:]), generator, siamese))

    @staticmethod
    def _affine(x, theta):
        theta = theta.to(x.dtype).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _scale(self, x, p):
        z = torch.zeros_like(p["sx"])
        theta = torch.stack([torch.stack([p["sx"], z, z], 1), torch.stack([z, p["sy"], z], 1)], 1)
        return self._affine(x, theta)

    def _rotate(self, x, p):
        t, z = p["theta"], torch.zeros_like(p["theta"])
        theta = torch.stack([torch.stack([t.cos(), -t.sin(), z], 1), torch.stack([t.sin(), t.cos(), z], 1)], 1)
        return self._affine(x, theta)

    def _flip(self, x, p):
        f = p["flip"].view(-1, 1, 1, 1)
        return torch.where(f, x.flip(3), x)

    @staticmethod
    def _crop(x, p):
        """Translate by (tx, ty) pixels with zero fill: an index gather, differentiable w.r.t. x."""
        n, c, h, w = x.shape
        pad = max(int(p["tx"].abs().max()), int(p["ty"].abs().max()), 0)
        xp = F.pad(x, (pad, pad, pad, pad))
        rows = torch.arange(h, device=x.device).view(1, h, 1) + pad + p["tx"].view(-1, 1, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w) + pad + p["ty"].view(-1, 1, 1)
        rows, cols = rows.expand(n, h, w), cols.expand(n, h, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
        return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def _cutout(self, x, p):
        n, c, h, w = x.shape
        ch, cw = int(p["size"][0]), int(p["size"][1])
        r0 = (p["cy"] - ch // 2).view(-1, 1)
        c0 = (p["cx"] - cw // 2).view(-1, 1)
        r = torch.arange(h, device=x.device).view(1, h)
        cc = torch.arange(w, device=x.device).view(1, w)
        in_r = (r >= r0) & (r < r0 + ch)
        in_c = (cc >= c0) & (cc < c0 + cw)
        mask = ~(in_r.unsqueeze(2) & in_c.unsqueeze(1))
        return x * mask.unsqueeze(1).to(x.dtype)

    def _brightness(self, x, p):
        return x + p["b"].view(-1, 1, 1, 1).to(x.dtype)

    def _saturation(self, x, p):
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * p["s"].view(-1, 1, 1, 1).to(x.dtype) + mean

    def _contrast(self, x, p):
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - mean) * p["c"].view(-1, 1, 1, 1).to(x.dtype) + mean


class PlainAugment:
    """The evaluation augmentation used when DSA is off: random translation by up to 4 px (zero pad) and, for
    natural images, a horizontal flip; per-sample parameters."""

    def __init__(self, flip: bool = True, pad: int = 4):
        self.flip, self.pad = flip, pad
        self._dsa = DSA("crop")

    def __call__(self, x: torch.Tensor, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
        n = 1 if siamese else x.shape[0]
        prm = {"tx": torch.randint(-self.pad, self.pad + 1, (n,), generator=generator),
               "ty": torch.randint(-self.pad, self.pad + 1, (n,), generator=generator)}
        x = self._dsa._crop(x, {k: v.to(x.device) for k, v in prm.items()})
        if self.flip:
            x = self._dsa._flip(x, {"flip": (torch.rand(n, generator=generator) < 0.5).to(x.device)})
        return x


class DCAugment:
    """The DC reference code's evaluation augmentation ("crop_scale_rotate", used there for MNIST only): every
    image gets ONE transform, drawn uniformly from the strategy's list, with the reference parameters:

    - crop: move the content by (crop - r, crop - c) pixels, r, c uniform in [0, 2 crop), filling with the
      batch's per-channel mean;
    - scale: resize each axis by an independent factor U(1 - scale, 1 + scale) with nearest-neighbour sampling
      about the centre, zero fill;
    - rotate: an integer angle uniform in [-rotate, rotate) degrees about the centre, bicubic, filling with the
      mean of the channel means;
    - noise: add noise * N(0, 1).

    Batched (one resampling per transform family, not one per image) and drawn from an explicit generator.
    """

    OPS = ("crop", "scale", "rotate", "noise")

    def __init__(self, strategy: str = "crop_scale_rotate", crop: int = 4, scale: float = 0.2, rotate: int = 45,
                 noise: float = 0.001):
        self.ops = [s for s in strategy.split("_") if s]
        unknown = [s for s in self.ops if s not in self.OPS]
        if unknown or not self.ops:
            raise ValueError(f"unknown DC augmentation(s) {unknown or strategy!r}; choose from {self.OPS}")
        self.crop, self.scale, self.rotate, self.noise = crop, scale, rotate, noise

    def __repr__(self):
        return f"DCAugment({'_'.join(self.ops)!r})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
        if siamese:
            raise ValueError("DCAugment draws one transform per image; it has no siamese mode")
        n, c, h, w = x.shape
        g = generator
        choice = torch.randint(len(self.ops), (n,), generator=g)
        # all parameters are drawn for every image, whichever transform it gets: the draws do not depend on x
        shift = torch.randint(2 * self.crop, (2, n), generator=g) - self.crop
        factor = _u((2, n), g, 1 - self.scale, 1 + self.scale)
        angle = torch.randint(-self.rotate, self.rotate, (n,), generator=g).float() * (math.pi / 180)
        noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        out = x.clone()
        for k, op in enumerate(self.ops):
            idx = (choice == k).nonzero().flatten().to(x.device)
            if idx.numel() == 0:
                continue
            xi, ic = x[idx], idx.cpu()
            if op == "crop":
                y = DSA._crop(xi - mean, {"tx": shift[0, ic].to(x.device), "ty": shift[1, ic].to(x.device)})
                y = y + mean
            elif op == "scale":  # output pixel u samples the input at u * side / int(factor * side)
                sy = h / (factor[0, ic] * h).floor().clamp(min=1)
                sx = w / (factor[1, ic] * w).floor().clamp(min=1)
                z = torch.zeros_like(sx)
                theta = torch.stack([torch.stack([sx, z, z], 1), torch.stack([z, sy, z], 1)], 1)
                y = self._sample(xi, theta, "nearest")
            elif op == "rotate":
                t, z = angle[ic], torch.zeros_like(angle[ic])
                theta = torch.stack([torch.stack([t.cos(), -t.sin(), z], 1), torch.stack([t.sin(), t.cos(), z], 1)], 1)
                fill = mean.mean()
                y = self._sample(xi - fill, theta, "bicubic") + fill
            else:
                y = xi + self.noise * noise[idx]
            out[idx] = y
        return out

    @staticmethod
    def _sample(x, theta, mode):
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
