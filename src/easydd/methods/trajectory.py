"""Trajectory matching: MTT (Cazenavette et al. 2022), FTD (Du et al. 2023), TESLA (Cui et al. 2023) and DATM
(Guo et al. 2024), each with Sample Difficulty Correction.

One iteration (all four): draw an expert ``e`` and a start epoch ``t`` (MTT/FTD/TESLA: t ~ U[min_start_epoch,
max_start_epoch); DATM: the upper end widens linearly from ``current_max_start_epoch`` to ``max_start_epoch`` over
``expansion_end`` iterations). The student starts at the expert's parameters theta*_t and takes ``syn_steps`` SGD
steps on mini-batches (``batch_syn``, 0 = all) of the synthetic set, each batch with per-sample DSA, with the
learnable step size alpha:  theta_{k+1} = theta_k - alpha * g_k,  g_k = d/dtheta CE(f_theta_k(A(S_k)), Y_k).
The matching loss is  L = ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2  (M = ``expert_epochs``).
Images (SGD momentum 0.5, ``lr_img``), the step size (SGD momentum 0.5, ``lr_lr``) and, in DATM, the soft labels
(SGD momentum 0.9, ``lr_y``) each have their own optimiser. The student is called functionally
(``torch.func.functional_call``) on one flat parameter vector.

- MTT: the unroll is differentiated as a whole (``unroll=graph``, the reference; memory grows with syn_steps).
  ``unroll=adjoint`` (MTT, FTD, DATM) gives the same gradient up to rounding with memory flat in syn_steps: TESLA's
  exact two-pass backward (``easydd.methods.unroll``), which keeps theta_k (syn_steps x num_params floats) instead
  of every step's activations (benchmarks/trajectory/memory.md: MTT's added memory 1.2 -> 4.4 GiB from 10 to 40
  steps, the exact adjoint's 0.35 GiB at every length).
- FTD: MTT on flat experts (trained with SAM/GSAM: ``easydd experts --sam RHO``) plus an exponential moving average
  of the images (``ema_decay``); both sets are saved and evaluated (``extra_tensors()['ema']``).
- TESLA: constant memory (its two-pass gradient: ``easydd.methods.unroll.tesla_gradients``). Soft labels
  (``soft_labels=True``, TESLA's ``--teacher_label``): each iteration the synthetic images are labelled by the
  softmax of the expert at the target epoch t+M, and the latest labels are stored with the set. Off by default, as
  in the reference code, whose command lines turn it on for ImageNet-1K only: with short expert trajectories the
  labels are flat and follow the images' drift (measured here: MNIST IPC 1 67.7 % with soft labels vs 86.9 % with
  hard ones; Fashion-MNIST collapsed to one class, docs/trajectory.md).
- DATM: the widening start window, learnable soft labels initialised from expert logits averaged over the experts
  that classify the sample correctly, initialisation from real samples the (first) expert classifies correctly,
  and (as the reference) no update on iterations whose matching loss exceeds ``loss_threshold``.

SDC with ``sdc_net=trained`` (the default): R at a network of the trained pool (easydd.sdc), its gradient added
to the unroll's after the matching gradient is computed; ``sdc_ratio`` works as for every method.
SDC with ``sdc_net=expert``: the same, with R at the expert checkpoint theta*_t the student starts from (a
network trained on the real data, the one this iteration's match is about) instead of a pool network.
SDC with ``sdc_net=fresh`` (lambda = ``cfg.lambda_sdc``), R inside the unroll:
- batch mode: R = mean_k ||g_k||, the norms of the student's own step gradients, kept in the graph
  (create_graph), so lambda*R moves the images, the step size and learnable labels. In TESLA, R enters pass 2:
  step k back-propagates  -alpha <lambda, g_k> + (lambda_sdc / N) ||g_k||  (first-order mode: R's dependence
  through theta_k is dropped like the matching loss's; exact mode: it is carried by the adjoint, so the gradient
  equals the full unroll's of L + lambda R).
- sample mode: R = mean per-sample GraDN of the (unaugmented) synthetic images at the student's START parameters
  theta*_t (the expert checkpoint the iteration already uses); it does not depend on the unroll.
lambda = 0 computes R only for the log (from detached values, no random draws): the base method, bit for bit.

Divergence guard: a non-finite loss or gradient, a matching loss above ``max_loss`` or a learned step size whose
magnitude exceeds 1e3 raises ``easydd.errors.DivergedError`` naming the fix; the driver keeps the last good
checkpoint, and a rerun with lowered learning rates resumes from it (the optimisers take the new rates).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch.func import functional_call

from ..augment import DSA, default_strategy
from ..errors import DivergedError, UserError, divergence_advice
from ..experts import ExpertBuffer, default_buffer_dir, recipe_command
from ..nets import has_batchnorm, make_network
from ..train import soft_cross_entropy
from .base import Method, flat_norm
from .unroll import Step, matching_loss, tesla_gradients, unroll

MAX_SYN_LR = 1e3  # the driver's bound too


# ==============================================================================================================
# Methods
# ==============================================================================================================

@dataclass
class TMParams:
    sdc_nets: ClassVar[tuple] = ("trained", "fresh", "expert")  # where R may be measured (easydd.sdc)
    buffer: str = ""               # expert directory (`easydd experts`); '' = buffers/<dataset>_<model>[_zca][_sam]
    syn_steps: int = 20            # N: student steps per iteration
    expert_epochs: int = 2         # M: target = expert at start + M
    max_start_epoch: int = 20      # start epoch ~ U[min_start_epoch, max_start_epoch)
    min_start_epoch: int = 0
    lr_img: float = 1000.0         # SGD momentum 0.5
    lr_lr: float = 1e-5            # SGD momentum 0.5, on the learnable step size
    lr_teacher: float = 0.01       # initial learnable step size
    batch_syn: int = 0             # images per student step (0: the whole set)
    dsa: bool = True               # per-sample DSA on every student step
    dsa_strategy: str = ""         # '': the reference strategy for the dataset
    max_loss: float = 100.0        # divergence guard on the normalised matching loss
    verify_buffer: bool = True     # check each expert file's sha256 on first use
    expert_recipe: dict | None = None  # how the buffer is made (`easydd experts --preset NAME`); checked if given
    unroll: str = "graph"          # graph: autograd through the whole unroll (reference); adjoint: exact two-pass
    #                                backward, same gradient up to rounding, memory flat in syn_steps


@dataclass
class FTDParams(TMParams):
    ema_decay: float = 0.999       # EMA of the synthetic images
    require_flat: bool = True      # refuse experts trained without SAM


@dataclass
class TESLAParams(TMParams):
    soft_labels: bool = False      # True: label the images with the target expert's softmax each iteration
    #                                (the reference's --teacher_label, used there for ImageNet-1K only)
    exact: bool = False            # False: TESLA's published first-order gradient; True: exact adjoint
    unroll: str = "adjoint"        # TESLA is the two-pass backward; ``exact`` picks its adjoint


@dataclass
class DATMParams(TMParams):
    lr_y: float = 2.0              # SGD on the soft-label logits
    momentum_y: float = 0.9
    current_max_start_epoch: int = 0  # initial upper end of the start window (0: no widening)
    expansion_end: int = 0         # iteration at which the window reaches max_start_epoch
    label_epoch: int = -1          # expert epoch used for label init and sample selection (-1: last)
    init_correct: bool = True      # initialise from real images the first expert classifies correctly
    loss_threshold: float = 1.0    # skip the update when the matching loss exceeds this (0: never skip)


class MTT(Method):
    name = "mtt"
    family = "trajectory"
    Params = TMParams
    flat_experts = False   # default buffer directory: SAM experts?
    learn_labels = False
    unrolls = ("graph", "adjoint")  # backward modes this method offers (the ``unroll`` setting)
    unroll_hint = ""                # said after the choices when another mode is asked for

    def __init__(self, cfg, dataset, device="cpu"):
        super().__init__(cfg, dataset, device)
        p = self.p
        if p.syn_steps < 1 or p.expert_epochs < 1:
            raise UserError(f"syn_steps and expert_epochs must be >= 1 (got {p.syn_steps}, {p.expert_epochs})")
        if p.unroll not in self.unrolls:
            raise UserError(f"{self.name}: unroll={p.unroll!r} is not offered; choose {' or '.join(self.unrolls)}"
                            + self.unroll_hint)
        if not 0 <= p.min_start_epoch < p.max_start_epoch:
            raise UserError(f"need 0 <= min_start_epoch < max_start_epoch (got {p.min_start_epoch}, "
                            f"{p.max_start_epoch})")
        self.buffer = self._open_buffer()
        self.buffer.check(dataset, cfg.model)
        last = p.max_start_epoch - 1 + p.expert_epochs
        if last > self.buffer.epochs:
            raise UserError(f"max_start_epoch={p.max_start_epoch} with expert_epochs={p.expert_epochs} needs "
                            f"experts of at least {last} epochs; {self.buffer.path} has {self.buffer.epochs}. Lower "
                            "max_start_epoch or train longer experts")
        self.net = make_network(cfg.model, self.shape[0], self.num_classes, self.shape[1:], 0).to(self.device)
        if has_batchnorm(self.net):
            raise UserError(f"{cfg.model} has BatchNorm; trajectory matching needs a network without it "
                            "(e.g. ConvNet, instance norm)")
        self.net.train()
        names = [n for n, _ in self.net.named_parameters()]
        shapes = [tuple(q.shape) for q in self.net.parameters()]
        if names != self.buffer.names or shapes != self.buffer.shapes:
            raise UserError(f"the experts in {self.buffer.path} do not fit {cfg.model} on {dataset.name} "
                            "(different parameters); make experts with the same --model")
        self._numels = [int(math.prod(s)) for s in shapes]
        self._shapes, self._names = shapes, names
        self.aug = DSA(p.dsa_strategy or default_strategy(dataset.name)) if p.dsa else None

    # -- experts -------------------------------------------------------------------------------------------
    def _open_buffer(self) -> ExpertBuffer:
        p = self.p
        uses_zca = getattr(self.data, "zca", None) is not None
        path = p.buffer or default_buffer_dir(self.data.name, self.cfg.model, uses_zca, self.flat_experts)
        if not (Path(path) / "manifest.json").exists():
            how = (f"`{recipe_command(p.expert_recipe, path)}`" if p.expert_recipe else
                   f"`easydd experts --dataset {self.data.name} --model {self.cfg.model} --num-experts N --epochs E"
                   f"{' --zca' if uses_zca else ''}{' --sam 0.01' if self.flat_experts else ''} --out {path}`")
            raise UserError(f"{self.name}: no expert trajectories at {path}. Make them first with {how} "
                            "(the same command resumes an interrupted run), or set buffer=DIR")
        buf = ExpertBuffer(path, verify=p.verify_buffer)
        if p.expert_recipe:
            s = buf.settings
            for k, v in p.expert_recipe.items():
                key = {"num_experts": None}.get(k, k)
                if key and key in s and s[key] != v and not (isinstance(v, float) and
                                                             math.isclose(s[key], v)):
                    raise UserError(f"{path} was made with {k}={s[key]!r} but this preset's recipe says {v!r}; "
                                    f"remake it with `{recipe_command(p.expert_recipe, path)}` into a fresh "
                                    "directory or point buffer= elsewhere")
        return buf

    def _unflat(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self._names, torch.split(flat, self._numels), self._shapes)}

    def fwd(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The student: logits of the network with flat parameters ``flat``."""
        return functional_call(self.net, self._unflat(flat), (x,))

    @torch.no_grad()
    def expert_logits(self, flat: torch.Tensor, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        return torch.cat([self.fwd(flat, x[i:i + batch].to(self.device)) for i in range(0, x.shape[0], batch)])

    def window(self, it: int) -> tuple[int, int]:
        """Start epochs are drawn from [lo, hi)."""
        return self.p.min_start_epoch, self.p.max_start_epoch

    # -- setup ---------------------------------------------------------------------------------------------
    def setup(self) -> None:
        p = self.p
        self.lr = torch.tensor(float(p.lr_teacher), device=self.device).requires_grad_(True)
        self._opt_lrs = {"img": p.lr_img, "lr": p.lr_lr}
        self.optimizers = {"img": torch.optim.SGD([self.images], lr=p.lr_img, momentum=0.5),
                           "lr": torch.optim.SGD([self.lr], lr=p.lr_lr, momentum=0.5)}

    def load_state_dict(self, s: dict) -> None:
        super().load_state_dict(s)
        # a rerun after a divergence resumes from the last checkpoint with the learning rates it is given now
        for k, o in self.optimizers.items():
            for grp in o.param_groups:
                grp["lr"] = self._opt_lrs[k]

    # -- one iteration -------------------------------------------------------------------------------------
    def plan(self, g: torch.Generator) -> list[Step]:
        n = self.images.shape[0]
        bs = min(self.p.batch_syn or n, n)
        chunks: list[torch.Tensor] = []
        steps = []
        for _ in range(self.p.syn_steps):
            if not chunks:
                chunks = list(torch.split(torch.randperm(n, generator=g), bs))
            idx = chunks.pop(0)
            plan = self.aug.sample(len(idx), tuple(self.shape[1:]), g) if self.aug is not None else None
            steps.append(Step(idx.to(self.device), plan))
        return steps

    def draw(self, it: int, g: torch.Generator) -> tuple[int, int]:
        lo, hi = self.window(it)
        e = int(torch.randint(len(self.buffer), (1,), generator=g))
        t = int(torch.randint(lo, hi, (1,), generator=g))
        return e, t

    def step_labels(self, target: torch.Tensor) -> torch.Tensor:
        return self.labels

    def fresh_lambda(self) -> float:
        """lambda of the SDC term inside the unroll (sdc_net=fresh); 0 when R is taken at the trained pool."""
        if self.sdc.fresh and self.sdc.ratio > 0:
            raise UserError("sdc_ratio needs sdc_net=trained for trajectory matching (the unrolled R has no "
                            "separate gradient to compare with); use lambda_sdc with sdc_net=fresh")
        return self.sdc.lam if self.sdc.fresh else 0.0

    def learnables(self) -> list[torch.Tensor]:
        return [self.images, self.lr] + ([self.labels] if self.learn_labels else [])

    def sample_sdc(self, start: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """SDC sample mode: mean per-sample GraDN of the synthetic images at the start parameters."""
        from ..difficulty import per_sample_grad_norms
        return per_sample_grad_norms(self.net, self.images, labels, params=self._unflat(start.detach()),
                                     create_graph=True).mean()

    def add_expert_sdc(self, start: torch.Tensor) -> dict:
        """sdc_net=expert: add lambda * dR/d(.) with R at the start checkpoint (per-class gradient norms in batch
        mode, per-sample GraDN in sample mode); a no-op returning {} otherwise."""
        if not self.sdc.expert:
            return {}
        if self.cfg.sdc_mode == "sample":
            r = self.sample_sdc(start, self.labels)
        else:
            flat = start.detach().requires_grad_(True)
            norms = []
            for c in range(self.num_classes):
                s = self.class_slice(c)
                loss = soft_cross_entropy(self.fwd(flat, self.images[s]), self.labels[s])
                norms.append(flat_norm(torch.autograd.grad(loss, [flat], create_graph=True)))
            r = torch.stack(norms).mean()
        ins = self.learnables()
        return self._add_sdc(ins, [t.grad for t in ins], r)

    def gradients(self, start, target, steps, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """Sets .grad on every learnable; returns (matching loss, R) as detached tensors."""
        if self.p.unroll == "adjoint":
            return self.adjoint_gradients(start, target, steps, labels, exact=True)
        lam, mode = self.fresh_lambda(), self.cfg.sdc_mode
        theta_n, norms = unroll(self.fwd, start, steps, self.images, labels, self.lr, self.aug,
                                sdc_graph=(lam > 0 and mode == "batch"))
        loss = matching_loss(theta_n, start, target)
        sdc = torch.stack(norms).mean()
        total = loss
        if lam > 0:
            if mode == "sample":
                sdc = self.sample_sdc(start, labels)
            total = loss + lam * sdc
        ins = self.learnables()
        for t, gr in zip(ins, torch.autograd.grad(total, ins)):
            t.grad = gr
        return loss.detach(), sdc.detach()

    def adjoint_gradients(self, start, target, steps, labels, exact: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The same contract as ``gradients`` through ``tesla_gradients`` (two passes, one step's graph alive)."""
        lam, mode = self.fresh_lambda(), self.cfg.sdc_mode
        r = tesla_gradients(self.fwd, start, target, steps, self.images, labels, self.lr, self.aug,
                            lam_sdc=lam if mode == "batch" else 0.0, exact=exact, learn_labels=self.learn_labels)
        img_grad, sdc = r["images"], r["sdc"]
        lab_grad = r["labels"]
        if lam > 0 and mode == "sample":
            sdc = self.sample_sdc(start, labels)
            extra = torch.autograd.grad(lam * sdc, [self.images] + ([self.labels] if self.learn_labels else []))
            img_grad = img_grad + extra[0]
            if self.learn_labels:
                lab_grad = lab_grad + extra[1]
        self.images.grad = img_grad
        self.lr.grad = r["lr"].reshape(self.lr.shape)
        if self.learn_labels:
            self.labels.grad = lab_grad
        return r["loss"].detach(), sdc.detach()

    def step(self, it: int) -> dict[str, float]:
        g = self.rng(it)
        e, t0 = self.draw(it, g)
        start, target = self.buffer.get(e, t0, self.p.expert_epochs, self.device)
        labels = self.step_labels(target)
        steps = self.plan(g)
        loss, sdc = self.gradients(start, target, steps, labels)
        self.guard(it, loss)
        logs = {"loss": float(loss), "sdc": float(sdc), "start_epoch": t0, "expert": e}
        logs.update(self.add_trained_sdc(it))  # sdc_net=trained: R at a pool network, with rho and lambda
        logs.update(self.add_expert_sdc(start))  # sdc_net=expert: R at the start checkpoint
        if self.skip(loss):
            logs["skipped"] = 1
        else:
            for o in self.optimizers.values():
                o.step()
            self.after_update()
        logs["syn_lr"] = float(self.lr.detach())
        if not math.isfinite(logs["syn_lr"]) or abs(logs["syn_lr"]) > MAX_SYN_LR:
            self.diverged(it, f"the learned step size syn_lr became {logs['syn_lr']:.4g}", logs)
        return logs

    def skip(self, loss: torch.Tensor) -> bool:
        return False

    def after_update(self) -> None:
        pass

    # -- divergence guard ----------------------------------------------------------------------------------
    def guard(self, it: int, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            self.diverged(it, f"the matching loss is {float(loss)}")
        for name, t in zip(("images", "step size", "labels"), self.learnables()):
            if t.grad is not None and not torch.isfinite(t.grad).all():
                self.diverged(it, f"the gradient of the {name} is not finite")
        if float(loss) > self.p.max_loss:
            self.diverged(it, f"the matching loss {float(loss):.4g} exceeds max_loss={self.p.max_loss:g} (the "
                              "student ends far further from the expert than it started)")

    def diverged(self, it: int, reason: str, logs: dict | None = None) -> None:
        p = self.p
        fixes = [f"lr_lr (now {p.lr_lr:g}, try {p.lr_lr / 10:g})", f"lr_img (now {p.lr_img:g})"]
        if self.learn_labels:
            fixes.append(f"lr_y (now {p.lr_y:g})")
        if self.cfg.lambda_sdc > 0 or self.cfg.sdc_ratio > 0:
            fixes.append(f"lambda_sdc / sdc_ratio (now {self.cfg.lambda_sdc:g} / {self.cfg.sdc_ratio:g})")
        raise DivergedError(
            f"{self.name} diverged at iteration {it}: {reason}. " + divergence_advice(
                f"{', '.join(fixes)} or lr_teacher (now {p.lr_teacher:g}) or syn_steps (now {p.syn_steps})",
                self.checkpoint_path, self.cfg.checkpoint_every))


class FTD(MTT):
    name = "ftd"
    Params = FTDParams
    flat_experts = True

    def __init__(self, cfg, dataset, device="cpu"):
        super().__init__(cfg, dataset, device)
        if self.p.require_flat and not self.buffer.settings.get("sam_rho", 0) > 0:
            raise UserError(f"ftd expects flat experts trained with sharpness-aware minimisation, but the experts "
                            f"in {self.buffer.path} were trained with plain SGD; make them with `easydd experts "
                            f"... --sam 0.01` (optionally --gsam-alpha 0.4) or set require_flat=false")
        if not 0 <= self.p.ema_decay < 1:
            raise UserError(f"ema_decay must be in [0, 1) (got {self.p.ema_decay})")
        self.ema: torch.Tensor | None = None

    def setup(self) -> None:
        super().setup()
        self.ema = self.images.detach().clone()

    def after_update(self) -> None:
        with torch.no_grad():
            self.ema.mul_(self.p.ema_decay).add_(self.images.detach(), alpha=1 - self.p.ema_decay)

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"ema": self.ema} if self.ema is not None else {}

    def load_extra(self, extra: dict) -> None:
        if "ema" in extra:
            self.ema = extra["ema"].to(self.device).clone()


class TESLA(MTT):
    name = "tesla"
    Params = TESLAParams
    unrolls = ("adjoint",)
    unroll_hint = " (TESLA always recomputes one step at a time; exact=true gives the full unroll's gradient)"

    def init_synthetic(self) -> None:
        super().init_synthetic()
        if self.p.soft_labels:  # until the first iteration: the first expert's final epoch
            self.labels = self.expert_logits(self.buffer.params(0, -1, self.device), self.images.detach())

    def step_labels(self, target: torch.Tensor) -> torch.Tensor:
        if self.p.soft_labels:
            self.labels = self.expert_logits(target, self.images.detach())
        return self.labels

    def gradients(self, start, target, steps, labels):
        return self.adjoint_gradients(start, target, steps, labels, exact=self.p.exact)


class DATM(MTT):
    name = "datm"
    Params = DATMParams
    flat_experts = True
    learn_labels = True

    def window(self, it: int) -> tuple[int, int]:
        p = self.p
        hi = p.max_start_epoch
        if p.current_max_start_epoch and p.expansion_end:
            grow = int((p.max_start_epoch - p.current_max_start_epoch) * it / p.expansion_end)
            hi = min(p.current_max_start_epoch + grow, p.max_start_epoch)
        elif p.current_max_start_epoch:
            hi = p.current_max_start_epoch
        return p.min_start_epoch, max(hi, p.min_start_epoch + 1)

    def init_synthetic(self) -> None:
        p = self.p
        g = self.rng(0, "init")
        label_epoch = p.label_epoch
        first = self.buffer.params(0, label_epoch, self.device)
        self.init_short_classes: list[int] = []
        if self.cfg.init == "real" and p.init_correct:
            picked, short = [], []
            for c in range(self.num_classes):
                idx = self.data.class_indices(c)
                idx = idx[torch.randperm(len(idx), generator=g)]
                got = []
                for i in range(0, len(idx), 256):  # scan the class in random order until ipc are found
                    chunk = idx[i:i + 256]
                    pred = self.expert_logits(first, self.data.x_train[chunk]).argmax(1).cpu()
                    got.extend(chunk[pred == c].tolist()[: self.ipc - len(got)])
                    if len(got) == self.ipc:
                        break
                if len(got) < self.ipc:  # not enough correct ones: fill with the others
                    short.append(c)
                    have = set(got)
                    rest = [j for j in idx.tolist() if j not in have]
                    got.extend(rest[: self.ipc - len(got)])
                picked.extend(got)
            self.init_short_classes = short
            self.images = self.data.x_train[torch.tensor(picked)].to(self.device).clone().requires_grad_(True)
        else:
            super().init_synthetic()
        hard = torch.arange(self.num_classes, device=self.device).repeat_interleave(self.ipc)
        x = self.images.detach()
        sum_ok = torch.zeros((x.shape[0], self.num_classes), device=self.device)
        sum_all = torch.zeros_like(sum_ok)
        n_ok = torch.zeros(x.shape[0], device=self.device)
        for e in range(len(self.buffer)):  # one expert file at a time
            lg = self.expert_logits(self.buffer.params(e, label_epoch, self.device), x)
            ok = (lg.argmax(1) == hard).float()
            sum_ok += lg * ok[:, None]
            n_ok += ok
            sum_all += lg
        labels = torch.where((n_ok > 0)[:, None], sum_ok / n_ok.clamp_min(1)[:, None], sum_all / len(self.buffer))
        self.labels = labels.detach().clone().requires_grad_(True)

    def setup(self) -> None:
        super().setup()
        self._opt_lrs["labels"] = self.p.lr_y
        self.optimizers["labels"] = torch.optim.SGD([self.labels], lr=self.p.lr_y, momentum=self.p.momentum_y)

    def step(self, it: int) -> dict[str, float]:
        logs = super().step(it)
        logs["window_hi"] = self.window(it)[1]
        return logs

    def skip(self, loss: torch.Tensor) -> bool:
        return self.p.loss_threshold > 0 and float(loss) > self.p.loss_threshold
