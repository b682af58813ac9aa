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
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .nets import make_network
from .runtime import derive_seed, generator
from .train import Ensemble, TrainSpec, soft_cross_entropy

# the package-wide "error the user caused" class (message names the fix; the CLI exits with code 2)
from .errors import PanelError, UserError as _UserError

__all__ = ["per_sample_grad_norms", "el2n_scores", "Panel", "PanelError", "reference_panel", "default_panel_dir",
           "summarise", "add_arguments", "run_from_args", "measure_from_args", "PANEL_FORMAT", "PANEL_VERSION"]

PANEL_FORMAT = "easydd-panel"
PANEL_VERSION = 1


def _user_error(msg: str) -> Exception:
    return _UserError(msg)


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
        train on this many training images (a seeded random choice) instead of all. Networks without BatchNorm are
        trained together (stacked, one vmap); the learning rate drops x0.1 at half the epochs when epochs > 1,
        as in :class:`easydd.train.TrainSpec`. The panel has ``num_models x len(checkpoints)`` members.
        """
        x, y, k, shape, name = _as_training_data(data, num_classes)
        num_models, epochs = int(num_models), int(epochs)
        if num_models < 1:
            raise PanelError(f"num_models must be at least 1, got {num_models}")
        if epochs < 0:
            raise PanelError(f"epochs must be >= 0, got {epochs}")
        cps = sorted({int(c) for c in ((epochs,) if checkpoints is None else checkpoints)})
        if not cps or cps[0] < 0 or cps[-1] > epochs:
            raise PanelError(f"checkpoints {list(checkpoints or [])} must lie in 0..epochs ({epochs})")
        n_all = x.shape[0]
        if subset is not None and 0 < int(subset) < n_all:
            idx = torch.randperm(n_all, generator=generator(derive_seed(seed, "panel-subset")))[:int(subset)]
            idx = idx.sort().values
            x, y = x[idx], y[idx]
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
# summaries, command line
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


def add_arguments(parser) -> None:
    """Arguments of ``easydd difficulty TARGET``."""
    parser.add_argument("target", metavar="TARGET",
                        help="a run directory, a distilled .safetensors file, or a dataset name (e.g. mnist)")
    parser.add_argument("--model", default="ConvNet", help="architecture of the reference panel (default ConvNet)")
    parser.add_argument("--num-models", "--panel-models", type=int, default=4, help="networks (seeds) in the panel (default 4)")
    parser.add_argument("--epochs", "--panel-epochs", type=int, default=1,
                        help="training epochs of the panel networks (default 1)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=None, metavar="EPOCH",
                        help="epochs at which panel members are kept (default: the last; e.g. 0 1 adds the "
                             "initialisation)")
    parser.add_argument("--split", choices=("train", "val", "test", "distilled"), default=None,
                        help="what to measure (default: 'distilled' for a distilled set, 'train' for a dataset)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="measure at most N samples (a seeded random choice; default 2000 for real data, all "
                             "of a distilled set)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: the run directory, or runs/difficulty-<dataset>)")
    parser.add_argument("--seed", type=int, default=0, help="panel seed (also picks the measured subsample)")
    parser.add_argument("--dataset", default=None,
                        help="dataset of a distilled set whose metadata does not name it")
    parser.add_argument("--cache-dir", default=None, help="where reference panels are cached "
                                                          "(default $EASYDD_CACHE/panels or ~/.cache/easydd/panels)")
    parser.add_argument("--panel-subset", type=int, default=10000,
                        help="training images used to train the panel (default 10000; 0 = all)")


def _load_dataset(name: str, zca: bool = False):
    """easydd.data.load_dataset with user errors turned into UserError (tests replace this function)."""
    try:
        from .data import load_dataset
    except ImportError as e:  # pragma: no cover
        raise _user_error(f"cannot load datasets: easydd.data is unavailable ({e})") from None
    try:
        return load_dataset(name, zca=zca)
    except _UserError:  # DataError and every other user error: its message already names the fix
        raise
    except (KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise _user_error(f"cannot load dataset {name!r}: {msg}") from None


def _resolve_target(target: str):
    """(distilled or None, path or None, dataset name or None)."""
    p = Path(target).expanduser()
    if p.exists():
        from .distilled import Distilled
        return Distilled.load(p), p, None  # a DistilledFileError is a UserError naming the fix
    if target.endswith(".safetensors") or os.sep in target or target.startswith("."):
        raise _user_error(f"no such file or directory: {target}; pass a run directory, a distilled .safetensors "
                          "file, or a dataset name such as mnist")
    return None, None, target


def _subsample(n: int, max_samples: int | None, seed: int) -> torch.Tensor:
    if max_samples is None or max_samples <= 0 or max_samples >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator(derive_seed(seed, "difficulty-sample")))[:max_samples].sort().values


def _write_csv(path: Path, index: torch.Tensor, labels: torch.Tensor, gradn: torch.Tensor, el2n: torch.Tensor):
    from .distilled import atomic_write
    labels = labels.argmax(1) if labels.dim() == 2 else labels
    lines = ["index,label,gradn,el2n"]
    for i, c, g, e in zip(index.tolist(), labels.tolist(), gradn.tolist(), el2n.tolist()):
        lines.append(f"{i},{c},{g:.6g},{e:.6g}")
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def _plot(path: Path, title: str, scores: dict[str, tuple[torch.Tensor, torch.Tensor]]):
    """Histograms of GraDN and EL2N, one series per entry of ``scores`` (label -> (gradn, el2n))."""
    from .plots import subplots
    from .distilled import atomic_write

    fig, axes = subplots(1, 2, figsize=(9, 3.4))
    for ax, j, name in ((axes[0], 0, "GraDN"), (axes[1], 1, "EL2N")):
        allv = torch.cat([v[j].detach().cpu().float() for v in scores.values()])
        lo, hi = float(allv.min()), float(allv.max())
        if not math.isfinite(lo) or hi <= lo:
            hi = lo + 1e-6
        for label, v in scores.items():
            vals = v[j].detach().cpu().float().numpy()
            ax.hist(vals, bins=30, range=(lo, hi), density=True, alpha=0.55,
                    label=f"{label} (n={len(vals)}, mean {vals.mean():.3g})")
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))


def _format_summary(label: str, s: dict) -> str:
    lines = [f"{label}: {s['n']} samples"]
    for key, name in (("gradn", "GraDN"), ("el2n", "EL2N")):
        d = s[key]
        if d:
            lines.append(f"  {name:5s} mean {d['mean']:.4g}  median {d['median']:.4g}  quartiles "
                         f"[{d['q1']:.4g}, {d['q3']:.4g}]  range [{d['min']:.4g}, {d['max']:.4g}]")
    lines.append("  per class (n, GraDN, EL2N): " + "; ".join(
        f"{c}: {v['n']}, {v['gradn']:.4g}, {v['el2n']:.4g}" for c, v in s["per_class"].items()))
    return "\n".join(lines)


def run_from_args(args) -> int:
    """``easydd difficulty``: measure GraDN and EL2N of a distilled set or a dataset split on the reference panel,
    print a summary, write difficulty.csv/.png/.json. Returns the exit code (0)."""
    measure_from_args(args)
    return 0


def measure_from_args(args) -> dict:
    """The work of :func:`run_from_args`; returns the summary (also written to difficulty.json)."""
    distilled, path, ds_name = _resolve_target(args.target)
    split = args.split or ("distilled" if distilled is not None else "train")
    seed = int(getattr(args, "seed", 0) or 0)
    if distilled is None and split == "distilled":
        raise _user_error(f"{args.target!r} is a dataset name: --split distilled needs a run directory or a "
                          "distilled .safetensors file; use --split train, val or test")
    if int(args.num_models) < 1 or int(args.epochs) < 0:
        raise _user_error("--num-models must be >= 1 and --epochs >= 0")
    if args.max_samples is not None and int(args.max_samples) < 1:
        raise _user_error(f"--max-samples must be >= 1 (got {args.max_samples}); leave it out for the default")
    if distilled is not None:
        ds_name = getattr(args, "dataset", None) or distilled.meta.get("dataset")
        if not ds_name:
            raise _user_error(f"{path} does not say which dataset it was distilled from; pass --dataset NAME")
    ds = _load_dataset(ds_name, zca=bool(distilled.meta.get("zca", False)) if distilled is not None else False)
    if distilled is not None:
        if tuple(distilled.images.shape[1:]) != tuple(ds.shape):
            raise _user_error(f"distilled images have shape {tuple(distilled.images.shape[1:])} but {ds.name} "
                              f"images are {tuple(ds.shape)}; pass the right --dataset")
        if distilled.soft and distilled.labels.shape[1] != ds.num_classes:
            raise _user_error(f"the distilled set has {distilled.labels.shape[1]} classes, {ds.name} "
                              f"{ds.num_classes}; pass the right --dataset")

    log = print
    panel_subset = getattr(args, "panel_subset", 10000)
    panel = reference_panel(ds, model=args.model, num_models=args.num_models, epochs=args.epochs, seed=seed,
                            cache_dir=getattr(args, "cache_dir", None), checkpoints=getattr(args, "checkpoints", None),
                            subset=None if not panel_subset else panel_subset, log=log)
    log(f"panel: {panel}")

    def real_split(name: str, cap: int | None):
        x, y = {"train": (ds.x_train, ds.y_train), "val": (ds.x_val, ds.y_val),
                "test": (ds.x_test, ds.y_test)}[name]
        if x.shape[0] == 0:
            raise _user_error(f"{ds.name} has no {name} split; choose another --split")
        idx = _subsample(x.shape[0], cap, seed)
        return idx, x[idx], y[idx]

    max_samples = args.max_samples
    if split == "distilled":
        idx = _subsample(len(distilled), max_samples, seed)
        x, y = distilled.images[idx].float(), distilled.labels[idx]
        what = f"distilled set {path}"
    else:
        idx, x, y = real_split(split, max_samples if max_samples is not None else 2000)
        what = f"{ds.name} {split} split"

    gradn, el2n = panel.gradn(x, y), panel.el2n(x, y)
    summary = {"target": str(args.target), "dataset": ds.name, "split": split, "panel": panel.manifest()["meta"],
               "panel_members": len(panel), "scores": summarise(gradn, el2n, y)}
    log(_format_summary(what, summary["scores"]))
    series = {split: (gradn, el2n)}
    if split == "distilled":  # the real data for comparison
        ridx, rx, ry = real_split("train", max_samples if max_samples is not None else 1000)
        rg, re_ = panel.gradn(rx, ry), panel.el2n(rx, ry)
        summary["real_train"] = summarise(rg, re_, ry)
        log(_format_summary(f"{ds.name} train split (for comparison)", summary["real_train"]))
        series["real train"] = (rg, re_)

    if args.out:
        out = Path(args.out)
    elif path is not None:
        out = path if path.is_dir() else path.parent
    else:
        out = Path("runs") / (f"difficulty-{_slug(ds.name)}" + ("" if split == "train" else f"-{split}"))
    # a real split measured beside a distilled set must not overwrite the distilled set's files
    stem = "difficulty" if (split == "distilled" or distilled is None) else f"difficulty-{split}"
    from .distilled import atomic_write
    _write_csv(out / f"{stem}.csv", idx, y, gradn, el2n)
    _plot(out / f"{stem}.png", f"difficulty of the {what} on {len(panel)} {panel.model} panel networks", series)
    atomic_write(out / f"{stem}.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str)))
    log(f"wrote {out / (stem + '.csv')}, {out / (stem + '.png')}, {out / (stem + '.json')}")
    summary["out"] = str(out)
    return summary
