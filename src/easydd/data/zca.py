"""ZCA whitening as used by MTT and its successors (kornia's ``ZCAWhitening(eps=0.1)``).

fit: centre the flattened images by their mean over samples, covariance C = Xc^T Xc / (N - 1) (unbiased, as kornia),
eigendecomposition C = U diag(S) U^T, whitening matrix W = U diag(1 / sqrt(S + eps)) U^T and its inverse
W^-1 = U diag(sqrt(S + eps)) U^T. transform(x) = (flat(x) - mean) W; inverse(z) = flat(z) W^-1 + mean.
The fit runs in float64 (accumulated in chunks, so memory stays O(D^2 + chunk * D)); the matrices are kept in
float32, on the device of the data they are applied to.
"""

from __future__ import annotations

import torch

__all__ = ["ZCA"]


class ZCA:
    """ZCA whitening of (N, C, H, W) tensors with an exact inverse (for showing whitened images)."""

    def __init__(self, eps: float = 0.1, chunk: int = 4096):
        self.eps = float(eps)
        self.chunk = int(chunk)
        self.mean: torch.Tensor | None = None   # (D,)
        self.W: torch.Tensor | None = None      # (D, D), symmetric
        self.W_inv: torch.Tensor | None = None  # (D, D)
        self.shape: tuple[int, ...] | None = None  # (C, H, W) of the images it was fitted on
        self._on: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, eps: float | None = None) -> "ZCA":
        """Fit on images ``x`` (N, C, H, W); returns self."""
        if eps is not None:
            self.eps = float(eps)
        if x.dim() < 2 or x.shape[0] < 2:
            raise ValueError(f"ZCA.fit needs a batch of at least 2 images, got shape {tuple(x.shape)}")
        n = x.shape[0]
        flat = x.detach().reshape(n, -1)
        d = flat.shape[1]
        mean = torch.zeros(d, dtype=torch.float64, device=x.device)
        for i in range(0, n, self.chunk):
            mean += flat[i:i + self.chunk].to(torch.float64).sum(0)
        mean /= n
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for i in range(0, n, self.chunk):
            xc = flat[i:i + self.chunk].to(torch.float64) - mean
            cov.addmm_(xc.T, xc)
        cov /= n - 1
        cov = (cov + cov.T) * 0.5  # exact symmetry for eigh
        s, u = torch.linalg.eigh(cov)
        s = s.clamp_min(0.0)  # round-off can make the smallest eigenvalues slightly negative
        self.W = ((u * torch.rsqrt(s + self.eps)) @ u.T).to(torch.float32)
        self.W_inv = ((u * torch.sqrt(s + self.eps)) @ u.T).to(torch.float32)
        self.mean = mean.to(torch.float32)
        self.shape = tuple(x.shape[1:])
        self._on = {}
        return self

    @property
    def fitted(self) -> bool:
        return self.W is not None

    def _mats(self, like: torch.Tensor):
        if self.W is None:
            raise RuntimeError("ZCA is not fitted: call fit(x) or from_state_dict(...) first")
        dtype = like.dtype if like.is_floating_point() else torch.float32
        key = (like.device, dtype)
        if key not in self._on:
            self._on[key] = (self.mean.to(like.device, dtype), self.W.to(like.device, dtype),
                             self.W_inv.to(like.device, dtype))
        return self._on[key]

    def _apply(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        single = x.dim() == len(self.shape or ()) and self.shape is not None and tuple(x.shape) == self.shape
        xb = x.unsqueeze(0) if single else x
        mean, w, w_inv = self._mats(xb)
        flat = xb.reshape(xb.shape[0], -1)
        if flat.shape[1] != mean.shape[0]:
            raise ValueError(f"ZCA was fitted on images of shape {self.shape}, got {tuple(x.shape)}")
        if not flat.is_floating_point():
            flat = flat.float()
        if inverse:
            out = torch.addmm(mean, flat, w_inv) if flat.shape[0] <= self.chunk else torch.cat(
                [torch.addmm(mean, flat[i:i + self.chunk], w_inv) for i in range(0, flat.shape[0], self.chunk)])
        else:
            out = (flat - mean) @ w if flat.shape[0] <= self.chunk else torch.cat(
                [(flat[i:i + self.chunk] - mean) @ w for i in range(0, flat.shape[0], self.chunk)])
        out = out.reshape(xb.shape)
        return out[0] if single else out

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten (N, C, H, W) or a single (C, H, W) image. Differentiable (no in-place ops on x)."""
        return self._apply(x, inverse=False)

    __call__ = transform

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo transform: back to the (normalised) pixel space."""
        return self._apply(x, inverse=True)

    # ------------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain CPU tensors only (safetensors-compatible)."""
        if self.W is None:
            raise RuntimeError("ZCA is not fitted")
        return {"mean": self.mean.detach().cpu().contiguous(), "W": self.W.detach().cpu().contiguous(),
                "W_inv": self.W_inv.detach().cpu().contiguous(),
                "eps": torch.tensor([self.eps], dtype=torch.float64),
                "shape": torch.tensor(list(self.shape), dtype=torch.int64)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "ZCA":
        z = cls(eps=float(torch.as_tensor(state["eps"]).reshape(-1)[0]))
        z.mean = torch.as_tensor(state["mean"]).to(torch.float32)
        z.W = torch.as_tensor(state["W"]).to(torch.float32)
        z.W_inv = torch.as_tensor(state["W_inv"]).to(torch.float32)
        z.shape = tuple(int(v) for v in torch.as_tensor(state["shape"]).reshape(-1).tolist())
        d = z.mean.numel()
        if z.W.shape != (d, d) or z.W_inv.shape != (d, d):
            raise ValueError(f"ZCA state: W {tuple(z.W.shape)} / W_inv {tuple(z.W_inv.shape)} do not match a "
                             f"mean of {d} features")
        return z

    def __repr__(self) -> str:
        return f"ZCA(eps={self.eps}, shape={self.shape}, fitted={self.fitted})"
