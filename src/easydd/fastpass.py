"""The real-data passes of the matching methods, on the fast path when a run asks for it.

Gradient matching spends almost all of an IPC-1 iteration on one thing: the parameter gradient of the loss on a
real batch of each class (10 x 256 images against 10 x 1 synthetic ones); at IPC 10 and more, also the inner
loop that trains the network on the (detached) synthetic set. Distribution matching spends it on the real
batch's embeddings. None of these needs a graph back to the synthetic images, so all can run where the
synthetic side's double backward cannot:

- ``precision=bf16``: under bfloat16 autocast, i.e. on the CPU's AMX / AVX512-BF16 units (or a GPU's tensor
  cores). Refused where the hardware has no native bf16 (it would be a silent slowdown, not a speed-up).
- ``compile=true``: ``torch.compile`` of the network for these passes (the synthetic side's double backward is
  left eager: it does not compile). On a CPU this fuses the memory-bound norm / ReLU / pooling passes into the
  convolutions' neighbours, which is where fp32 time goes once the convolutions are fast.

A fresh network is drawn every iteration; recompiling for each would cost more than it saves, so the compiled
module is one *template* per architecture, and each pass copies the current network's parameters into it (a
few hundred thousand floats) before running. The gradients are those of the current network.

Off (``precision=fp32``, ``compile=false``, the default) every call is exactly the eager code the methods had
before, bit for bit. Networks with batch norm always take the eager path (their train/eval state would have to
be mirrored into the template); ``why_eager`` says so in the run log.
"""
from __future__ import annotations

import contextlib

import torch

from .errors import UserError
from .nets import has_batchnorm
from .train import soft_cross_entropy

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CPU: AMX tiles or AVX512-BF16; CUDA: compute capability 8+)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                    or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise UserError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not native_bf16(device):
        raise UserError(f"precision=bf16 but this {device.type} has no native bf16 units (no AMX / AVX512-BF16 "
                        "on a CPU, compute capability < 8 on a GPU): it would run slower, not faster. Use "
                        "precision=fp32")


class _Im2colConv2d(torch.nn.Conv2d):
    """The same convolution as a matrix product over unfolded patches. For a first layer with 1-3 input channels,
    oneDNN's bf16 weight gradient takes a slow generic path (measured: 233 ms for 64 MNIST images, more than the
    two 128-channel layers together); as a matmul it runs on the bf16 units like the rest."""

    def forward(self, x):
        n, _, h, w = x.shape
        cols = torch.nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = self.weight.flatten(1) @ cols  # (out, C*k*k) @ (n, C*k*k, L) -> (n, out, L)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return out.view(n, -1, ho, wo)


def _with_im2col_stem(net: torch.nn.Module) -> torch.nn.Module:
    for m in net.modules():
        if (type(m) is torch.nn.Conv2d and m.in_channels <= 3 and m.groups == 1
                and isinstance(m.padding, tuple) and m.padding_mode == "zeros"):
            m.__class__ = _Im2colConv2d
    return net


def _standard(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the standard contiguous strides. Augmentations return varied strides, even for a size-1 channel
    dimension that ``.contiguous()`` leaves alone, and each layout would be a compilation of its own."""
    if x.stride() == torch.empty(x.shape, device="meta").stride():
        return x
    return torch.empty(x.shape, dtype=x.dtype, device=x.device).copy_(x)


class RealPass:
    """Parameter gradients and embeddings of real batches, eager-fp32 or on the fast path."""

    def __init__(self, precision: str = "fp32", compile: bool = False, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        check_precision(precision, self.device)
        self.bf16, self.compile = precision == "bf16", bool(compile)
        self._templates: dict = {}
        self.why_eager: str | None = None

    @property
    def fast(self) -> bool:
        return self.bf16 or self.compile

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _runner(self, net: torch.nn.Module, what: str):
        """(module whose parameters hold the net's values, callable for ``what``: 'forward' or 'embed')."""
        if not self.compile:
            return net, getattr(net, what)
        if has_batchnorm(net):
            self.why_eager = "batch norm: the compiled template cannot mirror its train/eval state; eager"
            return net, getattr(net, what)
        key = (type(net).__name__, tuple((n, tuple(p.shape)) for n, p in net.named_parameters()))
        if key not in self._templates:
            import copy
            tmpl = _with_im2col_stem(copy.deepcopy(net))
            self._templates[key] = (tmpl, {"forward": torch.compile(tmpl), "embed": torch.compile(tmpl.embed)})
        tmpl, fns = self._templates[key]
        with torch.no_grad():
            for a, b in zip(tmpl.parameters(), net.parameters()):
                a.copy_(b)
        return tmpl, fns[what]

    def grads(self, net: torch.nn.Module, params: list[torch.Tensor], x: torch.Tensor,
              y: torch.Tensor) -> list[torch.Tensor]:
        """d CE(net(x), y) / d params, detached, in fp32."""
        if not self.fast:
            return [t.detach() for t in torch.autograd.grad(soft_cross_entropy(net(x), y), params)]
        return self.loss_and_grads(net, params, x, y)[1]

    def loss_and_grads(self, net: torch.nn.Module, params: list[torch.Tensor], x: torch.Tensor,
                       y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(CE(net(x), y) detached, its gradients with respect to ``params``, detached, fp32)."""
        module, fn = self._runner(net, "forward") if self.fast else (net, net.forward)
        if module is not net:  # the template: gradients with respect to its (copied) parameters
            params = list(module.parameters())
        with self._autocast():
            out = fn(_standard(x))
        loss = soft_cross_entropy(out.float(), y)
        g = torch.autograd.grad(loss, params)
        return loss.detach(), [t.detach().float() for t in g]

    @torch.no_grad()
    def logits(self, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """net(x) without a graph, in fp32 (the evaluation's test pass)."""
        module, fn = self._runner(net, "forward") if self.fast else (net, net.forward)
        with self._autocast():
            return fn(_standard(x)).float()

    @torch.no_grad()
    def class_means(self, net: torch.nn.Module, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mean embedding of each real batch in ``xs`` (no graph), in fp32. Eager: one pass per batch, exactly
        the reference order. Fast path: one pass over all batches together, which is the same function because
        nothing couples samples in a forward without batch norm (with batch norm: per batch, eager)."""
        if not self.fast or has_batchnorm(net):
            return [net.embed(x).mean(0) for x in xs]
        _, fn = self._runner(net, "embed")
        with self._autocast():
            e = fn(_standard(torch.cat(xs))).float()
        return [part.mean(0) for part in e.split([len(x) for x in xs])]


def passes_for(precision: str, compile: bool, device) -> RealPass | None:
    """A ``RealPass`` for these settings, or None for the default eager fp32 (the callers' own code, unchanged)."""
    if precision == "fp32" and not compile:
        return None
    return RealPass(precision, compile, device)


__all__ = ["RealPass", "native_bf16", "check_precision", "passes_for", "PRECISIONS"]
