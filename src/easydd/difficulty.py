"""Sample difficulty: per-sample gradient norms (GraDN) and EL2N, measured on a fixed panel of reference networks.

Definitions (docs/difficulty.md). For a sample (x, y) and parameters theta of a network f:

    g(x, y; theta)   = || d/dtheta CE(f_theta(x), y) ||_2      (all trainable parameters as one flat vector)
    e(x, y; theta)   = || softmax(f_theta(x)) - onehot(y) ||_2  (for soft-label logits y: softmax(y) as the target)
    GraDN(x, y)      = mean of g over the members of a panel (several seeds and/or checkpoints)
    EL2N(x, y)       = mean of e over the same panel

Per-sample gradients come from ``torch.func``: ``vmap`` over ``grad`` of a ``functional_call`` loss, in chunks, so
there is no Python loop over samples. With ``create_graph=True`` the norms stay differentiable with respect to the
images (and soft labels), which is what the sample-difficulty penalty needs during distillation.

Networks are always evaluated in eval mode: BatchNorm uses its running statistics, so each sample's score does
not depend on which other samples share its chunk.

A :class:`Panel` is a list of state dicts (plain tensors) and one template module (on the ``meta`` device: it holds
the structure only). :func:`reference_panel` builds the panel for a dataset once and caches it on disk, so every
method and every run on that dataset is measured against the same networks.

This module is the library part. The command ``easydd difficulty`` lives in ``easydd.cli.difficulty`` and its
histograms in ``easydd.difficulty_plots``.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .errors import PanelError  # a UserError: the message names the fix; the CLI exits with code 2
from .nets import make_network
from .runtime import derive_seed, generator
from .train import Ensemble, TrainSpec, soft_cross_entropy

__all__ = ["per_sample_grad_norms", "el2n_scores", "Panel", "PanelError", "reference_panel", "default_panel_dir",
           "summarise", "PANEL_FORMAT", "PANEL_VERSION"]

PANEL_FORMAT = "easydd-panel"
PANEL_VERSION = 1


# ---------------------------------------------------------------------------------------------------------------
# per-sample scores
# ---------------------------------------------------------------------------------------------------------------

@contextmanager
def _eval_mode(model: nn.Module):
    """Put every submodule in eval mode (BatchNorm: running statistics) and restore the flags on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, t in modes:
            m.training = t


def _default_params(model: nn.Module, params, buffers):
    if params is None:
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if buffers is None:
        buffers = dict(model.named_buffers())
    if not params:
        raise ValueError("the network has no trainable parameters: per-sample gradient norms are all zero; pass "
                         "params=... or make some parameters require grad")
    return dict(params), dict(buffers)


def _check_xy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    if y.dim() == 1:
        return y.long()
    if y.dim() != 2:
        raise ValueError(f"labels must be (N,) class indices or (N, K) soft-label logits, got shape {tuple(y.shape)}")
    return y


def per_sample_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          params: dict[str, torch.Tensor] | None = None,
                          buffers: dict[str, torch.Tensor] | None = None,
                          chunk: int = 256, create_graph: bool = False) -> torch.Tensor:
    """g(x_i, y_i; theta) = ||d/dtheta CE(f_theta(x_i), y_i)||_2 for every sample, shape (N,).

    ``model`` supplies the structure (it may sit on the ``meta`` device when ``params`` and ``buffers`` cover all
    its tensors); ``params`` (default: the model's parameters that require grad) are the tensors differentiated,
    as one flat vector; ``buffers`` (default: the model's) are held fixed. ``y``: int labels (N,) or soft-label
    logits (N, K) (target softmax(y), as :func:`easydd.train.soft_cross_entropy`). The network runs in eval mode.
    Per-sample gradients are computed by ``vmap(grad(loss))`` over chunks of ``chunk`` samples; memory is about
    ``chunk x num_params`` floats.

    ``create_graph=False``: a detached result (nothing is recorded for autograd). ``create_graph=True``: the result
    is differentiable w.r.t. ``x`` and soft ``y`` (double backward through the per-sample gradients), for use as
    a penalty; also w.r.t. tensors passed explicitly in ``params`` that require grad (the model's own parameters,
    used when ``params`` is None, are treated as constants and never receive ``.grad``).
    """
    y = _check_xy(x, y)
    own_params = params is None
    params, buffers = _default_params(model, params, buffers)
    if not create_graph or own_params:
        # the model's own parameters are constants here: a penalty moves the data, and must not leave .grad
        # on the network that the caller trains
        params = {k: v.detach() for k, v in params.items()}
    buffers = {k: v.detach() for k, v in buffers.items()}
    if not create_graph:
        x, y = x.detach(), y.detach()
    chunk = max(1, int(chunk))

    def loss(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return soft_cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    out = []
    with _eval_mode(model), torch.set_grad_enabled(create_graph):
        # (grad inside the transform is unaffected by the outer no_grad; the outer one only stops recording)
        for i in range(0, x.shape[0], chunk):
            gs = per_sample(params, x[i:i + chunk], y[i:i + chunk])
            sq = sum(g.pow(2).flatten(1).sum(1) for g in gs.values())
            # clamp: sqrt has an infinite derivative at 0 (a sample with an exactly zero gradient)
            out.append(sq.clamp_min(1e-30).sqrt() if create_graph else sq.sqrt())
    if not out:
        return x.new_zeros(0)
    return torch.cat(out)


def el2n_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                params: dict[str, torch.Tensor] | None = None,
                buffers: dict[str, torch.Tensor] | None = None,
                chunk: int = 1024, create_graph: bool = False) -> torch.Tensor:
    """e(x_i, y_i) = ||softmax(f(x_i)) - target_i||_2, shape (N,), in [0, sqrt(2)].

    target: one-hot of int labels (N,), or softmax of soft-label logits (N, K). Eval mode, chunked forward passes.
    """
    y = _check_xy(x, y)
    if params is None and buffers is None:
        params, buffers = dict(model.named_parameters()), dict(model.named_buffers())
    else:
        params, buffers = _default_params(model, params, buffers)
    out = []
    chunk = max(1, int(chunk))
    with _eval_mode(model), torch.set_grad_enabled(create_graph):
        for i in range(0, x.shape[0], chunk):
            logits = functional_call(model, (params, buffers), (x[i:i + chunk],))
            yb = y[i:i + chunk]
            target = (F.one_hot(yb, logits.shape[1]).to(logits.dtype) if yb.dim() == 1
                      else yb.to(logits.dtype).softmax(-1))
            out.append((logits.softmax(-1) - target).norm(dim=1))
    if not out:
        return x.new_zeros(0)
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------------
# panel of reference networks
# ---------------------------------------------------------------------------------------------------------------

def _as_training_data(data, num_classes: int | None):
    """(x, y, num_classes, shape, name) from a Dataset-like object or a tuple (x, y[, num_classes])."""
    if hasattr(data, "x_train"):
        x, y = data.x_train, data.y_train
        k = int(getattr(data, "num_classes", 0) or num_classes or int(y.max()) + 1)
        name = str(getattr(data, "name", "") or "")
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        x, y = data[0], data[1]
        k = int(data[2]) if len(data) == 3 else (num_classes or (y.shape[1] if y.dim() == 2 else int(y.max()) + 1))
        name = ""
    else:
        raise TypeError("Panel.train needs a Dataset (with x_train, y_train, num_classes) or a tuple (x, y) or "
                        "(x, y, num_classes)")
    if x.dim() != 4:
        raise ValueError(f"training images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x, y, k, tuple(x.shape[1:]), name


def _checked_checkpoints(num_models: int, epochs: int, checkpoints: Sequence[int] | None) -> list[int]:
    """The sorted epochs at which panel members are kept (default: the last), after checking the counts."""
    if num_models < 1:
        raise PanelError(f"num_models must be at least 1, got {num_models}")
    if epochs < 0:
        raise PanelError(f"epochs must be >= 0, got {epochs}")
    cps = sorted({int(c) for c in ((epochs,) if checkpoints is None else checkpoints)})
    if not cps or cps[0] < 0 or cps[-1] > epochs:
        raise PanelError(f"checkpoints {list(checkpoints or [])} must lie in 0..epochs ({epochs})")
    return cps


def _training_subset(x: torch.Tensor, y: torch.Tensor, subset: int | None, seed: int):
    """(x, y), or a seeded random ``subset`` of them (in their original order) when it is smaller than the set."""
    n_all = x.shape[0]
    if subset is not None and 0 < int(subset) < n_all:
        idx = torch.randperm(n_all, generator=generator(derive_seed(seed, "panel-subset")))[:int(subset)]
        idx = idx.sort().values
        x, y = x[idx], y[idx]
    return x, y


class Panel:
    """A fixed panel of reference networks (seeds x checkpoints) on which difficulty is measured.

    ``template``: one module of the architecture, on the ``meta`` device (structure only). ``states``: one state
    dict (plain tensors) per member. ``info``: per member ``{"seed": ..., "epoch": ...}``. ``meta``: architecture
    and provenance (model, channel, num_classes, im_size, net_kwargs, dataset, training settings).
    """

    def __init__(self, model: str, channel: int, num_classes: int, im_size: Sequence[int],
                 states: list[dict[str, torch.Tensor]], info: list[dict] | None = None, meta: dict | None = None,
                 net_kwargs: dict | None = None):
        self.model = str(model)
        self.channel, self.num_classes, self.im_size = int(channel), int(num_classes), tuple(int(s) for s in im_size)
        self.net_kwargs = dict(net_kwargs or {})
        if not states:
            raise PanelError("a panel needs at least one network")
        self.template = make_network(self.model, self.channel, self.num_classes, self.im_size, 0,
                                     **self.net_kwargs).to("meta").eval()
        self._param_names = [n for n, _ in self.template.named_parameters()]
        self._buffer_names = [n for n, _ in self.template.named_buffers()]
        expected = {k: tuple(v.shape) for k, v in self.template.state_dict().items()}
        for i, sd in enumerate(states):
            got = {k: tuple(v.shape) for k, v in sd.items()}
            if got != expected:
                missing = sorted(set(expected) - set(got))[:3]
                extra = sorted(set(got) - set(expected))[:3]
                bad = [k for k in expected if k in got and got[k] != expected[k]][:3]
                raise PanelError(f"panel member {i} does not fit a {self.model} for {self.channel}x"
                                 f"{'x'.join(map(str, self.im_size))} images and {self.num_classes} classes "
                                 f"(missing {missing}, unexpected {extra}, wrong shape {bad})")
        self.states = [{k: v.detach() for k, v in sd.items()} for sd in states]
        self.info = [dict(d) for d in (info or [{"index": i} for i in range(len(states))])]
        if len(self.info) != len(self.states):
            raise PanelError(f"{len(self.info)} member descriptions for {len(self.states)} networks")
        self.meta = dict(meta or {})

    # -- basics ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.states)

    def __repr__(self) -> str:
        return (f"Panel({self.model}, {len(self)} networks, {self.channel}x{'x'.join(map(str, self.im_size))} -> "
                f"{self.num_classes} classes, dataset={self.meta.get('dataset') or '?'})")

    @property
    def device(self) -> torch.device:
        return next(iter(self.states[0].values())).device

    def to(self, device: str | torch.device) -> "Panel":
        """Move the members' tensors (in place) and return self."""
        self.states = [{k: v.to(device) for k, v in sd.items()} for sd in self.states]
        return self

    def members(self) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """(params, buffers) of each member, ready for ``functional_call(panel.template, (params, buffers), ...)``."""
        for sd in self.states:
            yield {n: sd[n] for n in self._param_names}, {n: sd[n] for n in self._buffer_names}

    def network(self, i: int) -> nn.Module:
        """Member ``i`` as an ordinary module (eval mode) on the panel's device."""
        net = make_network(self.model, self.channel, self.num_classes, self.im_size, 0, **self.net_kwargs)
        net.load_state_dict(self.states[i])
        return net.to(self.device).eval()

    def _prepare(self, x: torch.Tensor, y: torch.Tensor):
        if tuple(x.shape[1:]) != (self.channel, *self.im_size):
            raise ValueError(f"images of shape {tuple(x.shape[1:])} do not fit this panel, which expects "
                             f"{(self.channel, *self.im_size)}")
        if y.dim() == 2 and y.shape[1] != self.num_classes:
            raise ValueError(f"soft labels have {y.shape[1]} classes, the panel {self.num_classes}")
        ref = self.states[0][self._param_names[0]]
        y = y.to(ref.device, ref.dtype) if y.is_floating_point() else y.to(ref.device)
        return x.to(ref.device, ref.dtype), y

    # -- scores ---------------------------------------------------------------------------------------------
    def gradn(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 256, per_member: bool = False) -> torch.Tensor:
        """GraDN: mean over members of :func:`per_sample_grad_norms` (N,), detached; (M, N) if ``per_member``."""
        xd, yd = self._prepare(x, y)
        s = torch.stack([per_sample_grad_norms(self.template, xd, yd, p, b, chunk=chunk) for p, b in self.members()])
        return (s if per_member else s.mean(0)).to(x.device)

    def el2n(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024, per_member: bool = False) -> torch.Tensor:
        """EL2N: mean over members of :func:`el2n_scores` (N,), detached; (M, N) if ``per_member``."""
        xd, yd = self._prepare(x, y)
        with torch.no_grad():
            s = torch.stack([el2n_scores(self.template, xd, yd, p, b, chunk=chunk) for p, b in self.members()])
        return (s if per_member else s.mean(0)).to(x.device)

    def gradn_differentiable(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """GraDN that stays differentiable w.r.t. ``x`` (and soft-label logits ``y``): a penalty for distillation.
        Costs a double backward per member; use on small synthetic sets."""
        xd, yd = self._prepare(x, y)
        total = None
        for p, b in self.members():
            s = per_sample_grad_norms(self.template, xd, yd, p, b, chunk=chunk, create_graph=True)
            total = s if total is None else total + s
        return (total / len(self)).to(x.device)

    # -- building -------------------------------------------------------------------------------------------
    @classmethod
    def train(cls, data, model: str = "ConvNet", num_models: int = 4, epochs: int = 1,
              checkpoints: Sequence[int] | None = None, seed: int = 0, subset: int | None = None, *,
              lr: float = 0.01, batch_size: int = 256, momentum: float = 0.9, weight_decay: float = 5e-4,
              num_classes: int | None = None, device: str | torch.device = "cpu", net_kwargs: dict | None = None,
              log=None) -> "Panel":
        """Train ``num_models`` networks (seeds derived from ``seed``) briefly on real training data and keep their
        parameters at the epochs in ``checkpoints`` (default ``(epochs,)``: the end of training; add 0 to keep
        the initialisation too, which carries little label information and doubles the cost).

        ``data``: a Dataset (x_train, y_train, num_classes, name) or a tuple (x, y[, num_classes]). ``subset``:
        train on this many training images (a seeded random choice) instead of all. The learning rate drops x0.1 at half the epochs when epochs > 1,
        as in :class:`easydd.train.TrainSpec`. The panel has ``num_models x len(checkpoints)`` members.
        """
        x, y, k, shape, name = _as_training_data(data, num_classes)
        num_models, epochs = int(num_models), int(epochs)
        cps = _checked_checkpoints(num_models, epochs, checkpoints)
        x, y = _training_subset(x, y, subset, seed)
        seeds = [derive_seed(seed, "panel-net", i) for i in range(num_models)]
        ens = Ensemble(model, shape[0], k, shape[1:], seeds, device=device, **(net_kwargs or {}))
        states: list[dict] = []
        info: list[dict] = []

        def record(epoch: int):
            for i, sd in enumerate(ens.state_dicts()):
                states.append({kk: v.detach().to("cpu").clone() for kk, v in sd.items()})
                info.append({"seed": seeds[i], "net": i, "epoch": epoch})

        # Train in segments between the recorded epochs (and the learning-rate drop), with the lr each epoch of
        # one continuous run would have. SGD momentum restarts at a segment boundary (a small difference).
        half = epochs // 2 if epochs > 1 else None
        bounds = sorted(set(cps) | ({half} if half else set()) | {0, epochs})
        done = 0
        if 0 in cps:
            record(0)
        for b in bounds[1:]:
            seg_lr = lr * (0.1 if half is not None and done >= half else 1.0)
            spec = TrainSpec(epochs=b - done, lr=seg_lr, batch_size=batch_size, momentum=momentum,
                             weight_decay=weight_decay, decay_at_half=False)
            if log is not None:
                log(f"panel: training {num_models} {model} on {x.shape[0]} images, epochs {done}->{b}")
            ens.train(x, y, spec, seed=derive_seed(seed, "panel-train", done))
            done = b
            if b in cps:
                record(b)
        # order members by checkpoint then network, so that info reads naturally
        order = sorted(range(len(states)), key=lambda j: (info[j]["epoch"], info[j]["net"]))
        meta = {"dataset": name, "model": model, "num_models": num_models, "epochs": epochs, "checkpoints": cps,
                "seed": int(seed), "subset": None if subset is None else int(subset), "train_size": int(x.shape[0]),
                "lr": lr, "batch_size": batch_size, "momentum": momentum, "weight_decay": weight_decay}
        return cls(model, shape[0], k, shape[1:], [states[j] for j in order], [info[j] for j in order], meta,
                   net_kwargs)

    # -- files ----------------------------------------------------------------------------------------------
    @staticmethod
    def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p / "panel.safetensors"
        return p, p.with_suffix(".json")

    def manifest(self) -> dict:
        return {"format": PANEL_FORMAT, "version": PANEL_VERSION, "model": self.model, "channel": self.channel,
                "num_classes": self.num_classes, "im_size": list(self.im_size), "net_kwargs": self.net_kwargs,
                "members": self.info, "meta": self.meta}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a .safetensors file, or a folder that gets panel.safetensors) and a JSON manifest beside
        it, each atomically. The manifest is also in the safetensors header, which is what :meth:`load` reads."""
        from safetensors.torch import save_file
        from .distilled import atomic_write

        file, manifest_file = self._paths(path)
        tensors = {f"m{i}.{k}": v.detach().to("cpu").contiguous().clone()
                   for i, sd in enumerate(self.states) for k, v in sd.items()}
        man = self.manifest()
        text = json.dumps(man, sort_keys=True, default=str)
        atomic_write(file, lambda tmp: save_file(tensors, tmp, metadata={"easydd_panel": text}))
        atomic_write(manifest_file, lambda tmp: Path(tmp).write_text(json.dumps(man, indent=2, sort_keys=True,
                                                                                default=str)))
        return file

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Panel":
        """Load a panel written by :meth:`save` (never unpickles)."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        file, _ = cls._paths(path)
        if not file.is_file():
            raise PanelError(f"no panel at {file}; build one with Panel.train(...).save(path) or "
                             "reference_panel(dataset)")
        try:
            tensors = load_file(str(file), device=str(device))
            with safe_open(str(file), framework="pt") as f:
                header = f.metadata() or {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise PanelError(f"{file} is not a readable safetensors file ({e}); delete it and rebuild the panel") \
                from None
        try:
            man = json.loads(header["easydd_panel"])
            if man.get("format") != PANEL_FORMAT:
                raise KeyError("format")
        except (KeyError, json.JSONDecodeError, AttributeError):
            raise PanelError(f"{file} is a safetensors file but not an easydd panel; delete it and rebuild the "
                             "panel") from None
        if int(man.get("version", 0)) > PANEL_VERSION:
            raise PanelError(f"{file} was written by a newer easydd (panel format {man.get('version')}); upgrade "
                             "easydd or rebuild the panel")
        members = man.get("members") or []
        states: list[dict[str, torch.Tensor]] = [{} for _ in members]
        for key, v in tensors.items():
            head, _, name = key.partition(".")
            try:
                states[int(head[1:])][name] = v
            except (ValueError, IndexError):
                raise PanelError(f"{file}: unexpected tensor {key!r}; delete it and rebuild the panel") from None
        return cls(man["model"], man["channel"], man["num_classes"], man["im_size"], states, members,
                   man.get("meta"), man.get("net_kwargs"))


# ---------------------------------------------------------------------------------------------------------------
# the cached reference panel of a dataset
# ---------------------------------------------------------------------------------------------------------------

def default_panel_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache_dir>/panels``; cache_dir defaults to $EASYDD_CACHE, else ~/.cache/easydd (as the data cache)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "panels"
    try:
        from .data.cache import default_cache_dir
        return default_cache_dir(None) / "panels"
    except ImportError:  # pragma: no cover - data package not installed yet
        env = os.environ.get("EASYDD_CACHE")
        base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "easydd"
        return base.expanduser() / "panels"


def _data_fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    """A cheap fingerprint of the training split: shapes, all labels, and a strided sample of the pixels.
    It tells apart normalisation, ZCA and validation-split choices that share a dataset name."""
    h = hashlib.sha256()
    h.update(repr((tuple(x.shape), str(x.dtype), tuple(y.shape))).encode())
    h.update(y.detach().to("cpu").contiguous().numpy().tobytes())
    step = max(1, x.shape[0] // 256)
    h.update(x[::step].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(s)) or "data"


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (so that concurrent runs build a panel once); a no-op where fcntl is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def reference_panel(dataset, model: str = "ConvNet", num_models: int = 4, epochs: int = 1, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None, subset: int | None = 10000,
                    checkpoints: Sequence[int] | None = None, *, lr: float = 0.01, batch_size: int = 256,
                    net_kwargs: dict | None = None, device: str | torch.device = "cpu", rebuild: bool = False,
                    log=None) -> Panel:
    """The panel on which a dataset's samples (real or synthetic) are measured: built once, then loaded.

    ``dataset``: duck-typed (.name, .x_train, .y_train, .num_classes, .shape). The cache file
    ``<cache_dir>/panels/<dataset>-<model>-k<K>-e<E>-c<checkpoints>-s<seed>-n<subset>-<fingerprint>.safetensors``
    is keyed by every setting and by a fingerprint of the training split (so ZCA or another validation split
    gives another panel). It is written atomically under a lock, and the panel returned is always the one read
    back from disk, so every method and every run on a dataset uses exactly the same networks.
    """
    for attr in ("name", "x_train", "y_train", "num_classes"):
        if not hasattr(dataset, attr):
            raise TypeError(f"reference_panel needs a Dataset (missing .{attr}); load one with "
                            "easydd.data.load_dataset(name)")
    n = dataset.x_train.shape[0]
    sub = None if subset is None or int(subset) <= 0 or int(subset) >= n else int(subset)
    cps = sorted({int(c) for c in ((int(epochs),) if checkpoints is None else checkpoints)})
    settings = {"lr": lr, "batch_size": batch_size, "net_kwargs": dict(sorted((net_kwargs or {}).items()))}
    extra = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:6]
    key = (f"{_slug(dataset.name)}-{_slug(model)}-k{int(num_models)}-e{int(epochs)}-c{'_'.join(map(str, cps))}"
           f"-s{int(seed)}-n{sub or 'all'}-{_data_fingerprint(dataset.x_train, dataset.y_train)}-{extra}")
    folder = default_panel_dir(cache_dir)
    file = folder / f"{key}.safetensors"
    if file.is_file() and not rebuild:
        try:
            return Panel.load(file, device=device)
        except PanelError:
            pass  # corrupt or foreign: rebuild below
    with _file_lock(folder / f".{key}.lock"):
        if file.is_file() and not rebuild:
            try:
                return Panel.load(file, device=device)
            except PanelError:
                pass
        if log is not None:
            log(f"building the reference panel for {dataset.name} ({num_models} x {model}, {epochs} epoch(s), "
                f"checkpoints {cps}); cached as {file}")
        panel = Panel.train(dataset, model=model, num_models=num_models, epochs=epochs, checkpoints=cps, seed=seed,
                            subset=sub, lr=lr, batch_size=batch_size, net_kwargs=net_kwargs, device=device, log=log)
        panel.meta["cache_key"] = key
        panel.save(file)
    return Panel.load(file, device=device)


# ---------------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------------

def summarise(gradn: torch.Tensor, el2n: torch.Tensor, labels: torch.Tensor) -> dict:
    """Mean, median, quartiles of both scores and their per-class means (labels: hard (N,) or soft (N, K))."""
    labels = labels.argmax(1) if labels.dim() == 2 else labels
    out: dict = {"n": int(gradn.numel())}
    for name, s in (("gradn", gradn), ("el2n", el2n)):
        s = s.detach().double().cpu()
        if s.numel() == 0:
            out[name] = {}
            continue
        q = torch.quantile(s, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        out[name] = {"mean": float(s.mean()), "std": float(s.std()) if s.numel() > 1 else 0.0,
                     "q1": float(q[0]), "median": float(q[1]), "q3": float(q[2]),
                     "min": float(s.min()), "max": float(s.max())}
    per_class = {}
    for c in sorted(set(labels.tolist())):
        m = labels.cpu() == c
        per_class[int(c)] = {"n": int(m.sum()), "gradn": float(gradn.detach().cpu()[m].double().mean()),
                             "el2n": float(el2n.detach().cpu()[m].double().mean())}
    out["per_class"] = per_class
    return out
