"""Expert trajectories for trajectory matching (MTT, FTD, TESLA, DATM): training, storage, streaming, parallel runs.

An *expert* is a network trained on the real training set; its *trajectory* is its parameters after every epoch
(epoch 0 = the initialisation). Reference recipe (MTT's buffer.py): SGD lr 0.01, no momentum, no weight decay,
batch 256, per-sample DSA augmentation, optional ZCA; FTD trains "flat" experts with sharpness-aware minimisation
(SAM, or GSAM with its surrogate-gap term, optionally adaptive as ASAM).

Storage (``out_dir``):

- ``expert_0000.safetensors`` ... one file per expert: a single float32 tensor ``trajectory`` of shape
  (epochs + 1, num_params) (the parameters of ``model.named_parameters()`` flattened and concatenated in that
  order) and the settings, parameter names/shapes, training losses and final validation accuracy as JSON in the
  safetensors header. Written atomically (temp file + rename): a killed run loses at most the expert in progress.
- ``manifest.json``: dataset, model, settings, and for every expert its file name and sha256. Written last (by
  rank 0 after a barrier in parallel runs); readers (``ExpertBuffer``) require it.

Resuming: experts whose file exists with the same settings are skipped; a directory made with other settings is
refused with a message (never silently mixed). Parallel generation: ``torchrun --nproc-per-node P -m
easydd.cli.experts ...`` (or ``train_experts_parallel`` / ``--nproc P``, which spawns the processes itself) starts P
processes; rank r trains the experts i with i % P == r (gloo on CPU, nccl on GPU). Each expert's initial weights,
batch order and augmentation draws depend only on (seed, expert index), so the buffer does not depend on P.

Reading (``easydd.expert_buffer``, re-exported here): ``ExpertBuffer(path)`` opens one expert file at a time
(lazily, through safetensors' memory map) and reads only the epochs asked for, so the buffer is never in memory as
a whole.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .distilled import atomic_write
from .errors import DivergenceError, UserError, divergence_advice
# the on-disk format and its reader (ExpertBuffer) live in expert_buffer.py, re-exported here
from .expert_buffer import FORMAT, MANIFEST, ExpertBuffer, _read_header, expert_file  # noqa: F401
from .fastpass import RealPass, check_precision, passes_for
from .io import RunLock, file_sha256 as _sha256
from .nets import has_batchnorm, make_network
from .runtime import derive_seed, generator, share_cores


def default_buffer_dir(dataset: str, model: str = "ConvNet", zca: bool = False, sam: bool = False,
                       root: str = "buffers") -> str:
    """Where ``easydd experts`` writes by default and where trajectory methods look when ``buffer`` is empty."""
    return str(Path(root) / f"{dataset}_{model}{'_zca' if zca else ''}{'_sam' if sam else ''}")


@dataclass
class ExpertSettings:
    """Everything that determines a trajectory (apart from the expert index); stored in every file."""
    dataset: str
    model: str = "ConvNet"
    epochs: int = 50
    lr: float = 0.01
    batch_size: int = 256
    momentum: float = 0.0
    weight_decay: float = 0.0
    dsa: bool = True
    dsa_strategy: str = ""
    sam_rho: float = 0.0           # > 0: sharpness-aware minimisation (FTD's flat experts)
    gsam_alpha: float = 0.0        # GSAM's surrogate-gap weight (0: plain SAM)
    sam_adaptive: bool = False     # ASAM's element-wise |w| scaling of the perturbation
    zca: bool = False
    subset: int | None = None      # class-balanced training subset (CPU budgets); None: all
    seed: int = 0
    precision: str = "fp32"        # bf16: the training passes under bf16 autocast (docs/speed.md)
    compile: bool = False          # the training passes through torch.compile (one template per process)
    num_params: int = 0
    param_names: list = field(default_factory=list)
    param_shapes: list = field(default_factory=list)
    channel: int = 0
    num_classes: int = 0
    im_size: list = field(default_factory=list)

    def key(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------------

def flat_params(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).float().cpu().clone()


def _global_norm(tensors) -> torch.Tensor:
    return torch.sqrt(sum((t.float() ** 2).sum() for t in tensors))


def _sam_gradient(net, params, loss_fn, grads, rho: float, alpha: float, adaptive: bool, grad_fn=None):
    """The update direction of SAM / GSAM at the current parameters.

    SAM (Foret et al. 2021): perturb w by e = rho * g / ||g|| (ASAM: e = rho * w^2 g / ||w g||), return the
    gradient g_p at w + e. GSAM (Zhuang et al. 2022): additionally remove alpha times the component of g
    orthogonal to g_p: d = g_p - alpha * (g - (<g, g_p> / ||g_p||^2) g_p), which descends the surrogate gap
    without changing the perturbed loss to first order. ``grads`` is g at w; parameters are restored on exit.
    ``grad_fn`` (the fast path): computes the gradient at the current parameters instead of ``loss_fn``.
    """
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        scaled = [(p.abs() * g) if adaptive else g for p, g in zip(params, grads)]
        scale = rho / (_global_norm(scaled) + 1e-12)
        eps = [((p * p) if adaptive else 1.0) * g * scale for p, g in zip(params, grads)]
        for p, e in zip(params, eps):
            p.add_(e)
    g_p = grad_fn() if grad_fn is not None else torch.autograd.grad(loss_fn(), params)
    with torch.no_grad():
        for p, w in zip(params, saved):  # restore exactly (w + e - e is not w in floating point)
            p.copy_(w)
        if alpha == 0:
            return list(g_p)
        dot = sum((a * b).sum() for a, b in zip(grads, g_p))
        gp2 = sum((b * b).sum() for b in g_p) + 1e-12
        return [b - alpha * (a - (dot / gp2) * b) for a, b in zip(grads, g_p)]


def _batch_update(net, params, xb, yb, s: ExpertSettings, fast: RealPass | None):
    """(the batch's loss, a function giving the update direction: the gradient, or SAM's / GSAM's). Eager fp32
    when ``fast`` is None, in the order of the reference code; else the passes go through ``fast`` (bf16 autocast
    and/or compiled) while the parameters and the optimiser step stay fp32."""
    def loss_fn():
        return F.cross_entropy(net(xb), yb)
    if fast is None:
        loss, grad_fn = loss_fn(), None
        first = lambda: torch.autograd.grad(loss, params)  # noqa: E731
    else:
        def grad_fn():
            return fast.loss_and_grads(net, params, xb, yb)[1]
        loss, g0 = fast.loss_and_grads(net, params, xb, yb)
        first = lambda: g0  # noqa: E731

    def direction():
        grads = first()
        if s.sam_rho > 0:
            grads = _sam_gradient(net, params, loss_fn, grads, s.sam_rho, s.gsam_alpha, s.sam_adaptive, grad_fn)
        return grads
    return loss, direction


def train_one_expert(x: torch.Tensor, y: torch.Tensor, settings: ExpertSettings, index: int, aug=None,
                     x_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None, device="cpu",
                     progress=None, fast: RealPass | None = None) -> tuple[torch.Tensor, dict]:
    """Train expert ``index``; return its trajectory (epochs + 1, num_params) and a small record. ``fast``: the
    training passes on the fast path (``fastpass.passes_for``); None: eager fp32, the reference numerics."""
    s = settings
    net = make_network(s.model, s.channel, s.num_classes, tuple(s.im_size),
                       derive_seed(s.seed, "expert-init", index)).to(device)
    net.train()
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    g = generator(derive_seed(s.seed, "expert-train", index))
    traj = torch.empty((s.epochs + 1, s.num_params), dtype=torch.float32)
    traj[0] = flat_params(net)
    losses = []
    n = x.shape[0]
    for ep in range(s.epochs):
        perm = torch.randperm(n, generator=g)
        tot, cnt = 0.0, 0
        for i in range(0, n, s.batch_size):
            idx = perm[i:i + s.batch_size]
            xb, yb = x[idx.to(x.device)], y[idx.to(y.device)]
            if aug is not None:
                xb = aug(xb, g)
            loss, direction = _batch_update(net, params, xb, yb, s, fast)
            if not torch.isfinite(loss):
                raise DivergenceError(f"expert {index} diverged: the loss became {float(loss)} at epoch {ep}. "
                                      + divergence_advice(f"--lr (now {s.lr:g}) or --sam (now {s.sam_rho:g})"))
            grads = direction()
            for p, gr in zip(params, grads):
                p.grad = gr
            opt.step()
            tot += float(loss.detach()) * idx.numel()
            cnt += idx.numel()
        losses.append(tot / max(cnt, 1))
        traj[ep + 1] = flat_params(net)
        if progress is not None:
            progress.update(1)
    record = {"index": index, "train_loss": losses}
    if x_val is not None and len(x_val):
        net.eval()
        with torch.no_grad():
            correct = sum(int((net(x_val[i:i + 1000].to(device)).argmax(1).cpu() == y_val[i:i + 1000].cpu()).sum())
                          for i in range(0, len(x_val), 1000))
        record["val_acc"] = correct / len(x_val)
    return traj, record




# settings added after buffers were made: a header without them was made with these values
_LATER_DEFAULTS = {"precision": "fp32", "compile": False}


def _check_same(found: dict, want: dict, where: str) -> None:
    found = {**_LATER_DEFAULTS, **found}
    diff = [k for k in want if k not in ("created",) and found.get(k) != want[k]]
    if diff:
        details = ", ".join(f"{k}: {found.get(k)!r} there vs {want[k]!r} now" for k in diff[:4])
        raise UserError(f"{where} holds experts made with other settings ({details}); use another --out "
                        "directory, or delete it to start over")


def _subset_indices(y: torch.Tensor, num_classes: int, n: int, seed: int) -> torch.Tensor:
    """A class-balanced random subset of ``n`` training indices (seeded), ascending."""
    g = generator(derive_seed(seed, "expert-subset"))
    per, extra = divmod(n, num_classes)
    out = []
    for c in range(num_classes):
        idx = (y == c).nonzero().flatten()
        k = min(len(idx), per + (1 if c < extra else 0))
        out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.sort(torch.cat(out)).values


def _dist_info(rank, world_size):
    """(rank, world, owns_group): from arguments, an initialised process group, or torchrun's environment."""
    import torch.distributed as dist
    if rank is not None and world_size is not None:
        return int(rank), int(world_size), False
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if dist.is_available() and "RANK" in os.environ and "WORLD_SIZE" in os.environ and \
            int(os.environ["WORLD_SIZE"]) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":  # one GPU per local rank (also the device nccl's barrier uses)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=72))
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def _barrier():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _resolve_dataset(dataset, zca: bool, data_root=None):
    if isinstance(dataset, str):
        from .data import load_dataset
        return load_dataset(dataset, data_root, zca=zca, seed=0)
    return dataset


def check_recipe(num_experts=1, epochs=1, lr=0.01, batch_size=256, momentum=0.0, weight_decay=0.0, subset=None,
                 seed=0, nproc=1) -> None:
    """The numbers of an expert recipe, checked before any data is read or any file written."""
    import math

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    rules = [(is_int(num_experts) and num_experts >= 1, f"--num-experts must be >= 1 (got {num_experts!r})"),
             (is_int(epochs) and epochs >= 1, f"--epochs must be >= 1 (got {epochs!r})"),
             (is_num(lr) and lr > 0, f"--lr must be a finite number > 0 (got {lr!r})"),
             (is_int(batch_size) and batch_size >= 1, f"--batch-size must be >= 1 (got {batch_size!r})"),
             (is_num(momentum) and 0 <= momentum < 1, f"--momentum must be in [0, 1) (got {momentum!r})"),
             (is_num(weight_decay) and weight_decay >= 0, f"--weight-decay must be >= 0 (got {weight_decay!r})"),
             (subset is None or (is_int(subset) and subset >= 1),
              f"--subset must be a number of images >= 1 (got {subset!r}); leave it out to train on every image"),
             (is_int(seed) and seed >= 0, f"--seed must be an integer >= 0 (got {seed!r})"),
             (is_int(nproc) and nproc >= 1, f"--nproc must be >= 1 (got {nproc!r}): the number of local processes")]
    for ok, msg in rules:
        if not ok:
            raise UserError(msg)


def train_experts(dataset, out_dir: str | os.PathLike | None = None, num_experts: int = 10, epochs: int = 50,
                  model: str = "ConvNet", lr: float = 0.01, batch_size: int = 256, dsa: bool = True,
                  sam_rho: float = 0.0, gsam_alpha: float = 0.0, sam_adaptive: bool = False, seed: int = 0,
                  subset: int | None = None, momentum: float = 0.0, weight_decay: float = 0.0,
                  dsa_strategy: str = "", zca: bool = False, data_root=None, rank: int | None = None,
                  world_size: int | None = None, device: str | None = None, progress: bool = True,
                  precision: str = "fp32", compile: bool = False, log=print) -> Path:
    """Train experts 0..num_experts-1 (this process's share of them when run in parallel) into ``out_dir``.

    ``dataset``: a loaded Dataset, or a name (loaded with ``zca``). With ``rank``/``world_size`` (or an initialised
    torch.distributed group, or torchrun's environment) this process trains the experts i % world_size == rank;
    rank 0 writes the manifest after all ranks finish. ``precision="bf16"`` / ``compile=True``: the training
    passes on the fast path (bf16 autocast where the hardware has native bf16, torch.compile), recorded in every
    file's settings. Returns ``out_dir``.
    """
    from .augment import default_strategy
    check_recipe(num_experts=num_experts, epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum,
                 weight_decay=weight_decay, subset=subset, seed=seed)
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    check_precision(precision, torch.device(device))
    if not isinstance(compile, bool):
        raise UserError(f"compile must be true or false (got {compile!r})")
    ds = _resolve_dataset(dataset, zca, data_root)
    if subset is not None and subset < ds.num_classes:
        raise UserError(f"--subset {subset} is fewer images than {ds.name}'s {ds.num_classes} classes; give at "
                        "least one image per class, or leave --subset out to train on every image")
    if num_experts < 1 or epochs < 1:
        raise UserError(f"need at least one expert and one epoch (got --num-experts {num_experts}, "
                        f"--epochs {epochs})")
    if sam_rho < 0 or not 0 <= gsam_alpha <= 1:
        raise UserError(f"--sam must be >= 0 and --gsam-alpha in [0, 1] (got {sam_rho}, {gsam_alpha})")
    uses_zca = getattr(ds, "zca", None) is not None
    out = Path(out_dir or default_buffer_dir(ds.name, model, uses_zca, sam_rho > 0))
    rank, world, owns = _dist_info(rank, world_size)
    probe = make_network(model, ds.shape[0], ds.num_classes, ds.shape[1:], 0)
    if has_batchnorm(probe):
        raise UserError(f"{model} has BatchNorm; trajectory matching stores and replays parameters only, so use a "
                        "network without BatchNorm (the reference uses ConvNet with instance norm)")
    strategy = (dsa_strategy or default_strategy(ds.name)) if dsa else ""
    s = ExpertSettings(dataset=ds.name, model=model, epochs=int(epochs), lr=float(lr), batch_size=int(batch_size),
                       momentum=float(momentum), weight_decay=float(weight_decay), dsa=bool(dsa),
                       dsa_strategy=strategy, sam_rho=float(sam_rho), gsam_alpha=float(gsam_alpha),
                       sam_adaptive=bool(sam_adaptive), zca=uses_zca, subset=None if not subset else int(subset),
                       seed=int(seed), precision=precision, compile=compile,
                       num_params=sum(p.numel() for p in probe.parameters()),
                       param_names=[n for n, _ in probe.named_parameters()],
                       param_shapes=[list(p.shape) for p in probe.parameters()], channel=int(ds.shape[0]),
                       num_classes=int(ds.num_classes), im_size=list(ds.shape[1:]))
    want = s.key()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the expert directory {out} ({e.strerror}); choose another with --out") \
            from None
    # one process per buffer folder (a parallel run's ranks share it: they split the experts between them)
    with RunLock(out) if world == 1 else contextlib.nullcontext():
        return _train_into(out, ds, s, want, num_experts, rank, world, owns, dsa, strategy, device, progress, log)


def _train_into(out: Path, ds, s: ExpertSettings, want: dict, num_experts: int, rank: int, world: int, owns: bool,
                dsa: bool, strategy: str, device, progress: bool, log) -> Path:
    """The training part of ``train_experts``, in ``out`` (locked by the caller when it is the only process)."""
    from .augment import DSA
    if (out / MANIFEST).exists():
        _check_same(json.loads((out / MANIFEST).read_text())["settings"], want, str(out))
    x, y = ds.x_train, ds.y_train
    if s.subset:
        idx = _subset_indices(y, ds.num_classes, s.subset, s.seed)
        x, y = x[idx], y[idx]
    x, y = x.to(device), y.to(device)
    x_val, y_val = getattr(ds, "x_val", None), getattr(ds, "y_val", None)
    aug = DSA(strategy) if dsa else None
    mine = [i for i in range(num_experts) if i % world == rank]
    todo = []
    for i in mine:
        f = out / expert_file(i)
        if f.exists():
            try:
                _check_same(_read_header(f)["settings"], want, str(out))
                continue
            except UserError:
                raise
            except Exception:  # unreadable (e.g. a foreign file): train it again
                log(f"[rank {rank}] {f.name} is unreadable; training it again")
        todo.append(i)
    if len(todo) < len(mine):
        log(f"[rank {rank}] {len(mine) - len(todo)} of my {len(mine)} experts already exist in {out}; skipping them")
    from tqdm.auto import tqdm
    bar = tqdm(total=len(todo) * s.epochs, disable=not progress, desc=f"experts r{rank}" if world > 1 else "experts",
               position=rank, unit="ep", dynamic_ncols=True)
    from safetensors.torch import save_file
    fast = passes_for(s.precision, s.compile, device)  # one per process: its template serves every expert
    for i in todo:
        t0 = time.perf_counter()
        traj, rec = train_one_expert(x, y, s, i, aug, x_val, y_val, device, progress=bar, fast=fast)
        rec["seconds"] = time.perf_counter() - t0
        header = {"easydd_expert": json.dumps({"format": FORMAT, "settings": want, **rec})}
        atomic_write(out / expert_file(i), lambda tmp: save_file({"trajectory": traj.contiguous()}, tmp,
                                                                 metadata=header))
        acc = f", val acc {rec['val_acc']:.3f}" if "val_acc" in rec else ""
        log(f"[rank {rank}] expert {i}: {s.epochs} epochs in {rec['seconds']:.1f} s, final train loss "
            f"{rec['train_loss'][-1]:.3f}{acc}")
    bar.close()
    _barrier()
    if rank == 0:
        write_manifest(out, num_experts, want)
    _barrier()
    if owns:
        import torch.distributed as dist
        dist.destroy_process_group()
    return out


def write_manifest(out: Path, num_experts: int, settings: dict) -> Path:
    """manifest.json for experts 0..num_experts-1 (and any further ones with the same settings already there)."""
    experts = []
    i = 0
    while True:
        f = out / expert_file(i)
        if not f.exists():
            if i < num_experts:
                raise UserError(f"{f} is missing: a process did not finish; rerun the same command to complete "
                                "the buffer")
            break
        hdr = _read_header(f)
        _check_same(hdr["settings"], settings, str(out))
        experts.append({"file": f.name, "sha256": _sha256(f), "val_acc": hdr.get("val_acc"),
                        "seconds": hdr.get("seconds")})
        i += 1
    man = {"format": FORMAT, "dataset": settings["dataset"], "model": settings["model"], "zca": settings["zca"],
           "num_experts": len(experts), "epochs": settings["epochs"], "settings": settings, "experts": experts,
           "created": datetime.datetime.now().isoformat(timespec="seconds")}
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(man, indent=1)))
    return out / MANIFEST


def _spawn_worker(rank: int, world: int, init_file: str, kwargs: dict) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(hours=72))
    share_cores(world, kwargs.get("device"))  # this is a fresh process's entry point: its threads are its own
    try:
        train_experts(**kwargs)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train_experts_parallel(nprocs: int, **kwargs) -> Path:
    """``train_experts`` in ``nprocs`` local processes (torch.multiprocessing spawn, gloo), disjoint experts each.
    ``kwargs['dataset']`` should be a name (each process loads it) or a picklable Dataset."""
    import tempfile
    import torch.multiprocessing as mp
    if nprocs <= 1:
        return train_experts(**kwargs)
    fd, init_file = tempfile.mkstemp(prefix="easydd-dist-")
    os.close(fd)
    os.unlink(init_file)  # the file store creates it
    kwargs = dict(kwargs, log=print)
    try:
        mp.spawn(_spawn_worker, args=(nprocs, init_file, kwargs), nprocs=nprocs, join=True)
    finally:
        if os.path.exists(init_file):
            os.unlink(init_file)
    if kwargs.get("out_dir"):
        return Path(kwargs["out_dir"])
    ds = kwargs["dataset"]
    if isinstance(ds, str):
        from .data import canonical_name
        name, zca = canonical_name(ds), bool(kwargs.get("zca", False))
    else:
        name, zca = ds.name, getattr(ds, "zca", None) is not None
    return Path(default_buffer_dir(name, kwargs.get("model", "ConvNet"), zca, kwargs.get("sam_rho", 0) > 0))


# --------------------------------------------------------------------------------------------------------------
# recipes (the command `easydd experts` is easydd.cli.experts)
# --------------------------------------------------------------------------------------------------------------

RECIPE_KEYS = ("dataset", "num_experts", "epochs", "model", "lr", "batch_size", "momentum", "weight_decay",
               "sam_rho", "gsam_alpha", "sam_adaptive", "dsa", "zca", "subset", "seed", "precision", "compile")


def recipe_from_preset(name: str) -> tuple[dict, str | None]:
    """(expert recipe, buffer directory) of a trajectory preset."""
    from .config import load_preset
    cfg = load_preset(name)
    margs = cfg.get("method_args", {}) or {}
    recipe = dict(margs.get("expert_recipe") or {})
    if not recipe:
        raise UserError(f"preset {name!r} has no expert_recipe; pass --dataset/--num-experts/--epochs explicitly")
    recipe.setdefault("dataset", cfg.get("dataset"))
    recipe.setdefault("model", cfg.get("model", "ConvNet"))
    recipe.setdefault("zca", cfg.get("zca", False))
    bad = set(recipe) - set(RECIPE_KEYS)
    if bad:
        raise UserError(f"preset {name!r}: unknown expert_recipe key(s) {sorted(bad)}; valid: {RECIPE_KEYS}")
    return recipe, margs.get("buffer") or None


def recipe_command(recipe: dict, out: str | None) -> str:
    """The `easydd experts` command line that makes the buffer described by ``recipe``."""
    flags = {"dataset": "--dataset", "num_experts": "--num-experts", "epochs": "--epochs", "model": "--model",
             "lr": "--lr", "batch_size": "--batch-size", "momentum": "--momentum", "weight_decay": "--weight-decay",
             "sam_rho": "--sam", "gsam_alpha": "--gsam-alpha", "subset": "--subset", "seed": "--seed",
             "precision": "--precision"}
    parts = ["easydd experts"]
    for k, fl in flags.items():
        if recipe.get(k) not in (None, ""):
            parts.append(f"{fl} {recipe[k]}")
    for k, fl in (("sam_adaptive", "--sam-adaptive"), ("zca", "--zca"), ("compile", "--compile")):
        if recipe.get(k):
            parts.append(fl)
    if recipe.get("dsa") is False:
        parts.append("--no-dsa")
    if out:
        parts.append(f"--out {out}")
    return " ".join(parts)


if __name__ == "__main__":  # the old entry point: say where the command went rather than exit silently
    raise SystemExit("python -m easydd.experts moved: run `python -m easydd.cli.experts ...` (torchrun: "
                     "`torchrun ... -m easydd.cli.experts ...`) or `easydd experts ...`")
