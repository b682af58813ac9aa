"""Distillation for the linear student (torch, autograd): expert trajectories, GraDN, :func:`distill_linear`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def _torch():
    import torch

    return torch


def _logistic_grads(W, X, y):
    """Mean logistic-loss gradients for a batch of weights (leading batch dimensions broadcast).

    ``W`` (..., B, N), ``X`` (..., M, N), ``y`` (M,). Loss ``l(w; x, y) = log(1 + exp(-y w . x))``; its gradient is
    ``-y sigmoid(-y w . x) x``. Returns ``(G, S)``: ``G`` (..., B, N) the mean gradients and ``S`` (..., M, B) the
    per-sample factors ``sigmoid(-y w . x)`` (the per-sample gradient norm is ``S * ||x||``).
    """
    torch = _torch()
    m = y[:, None] * (X @ W.transpose(-1, -2))  # (..., M, B) signed margins
    S = torch.sigmoid(-m)
    G = -((S * y[:, None]).transpose(-1, -2) @ X) / X.shape[-2]
    return G, S


def _per_sample_grad_norm(W, X, y):
    """Mean over weights and points of ``||d/dw l(w; x_i, y_i)|| = sigmoid(-y_i w . x_i) ||x_i||`` (differentiable)."""
    torch = _torch()
    _, S = _logistic_grads(W, X, y)
    return (S * torch.linalg.vector_norm(X, dim=-1)[..., :, None]).mean()


def expert_trajectories(
    X: np.ndarray,
    y: np.ndarray,
    n_experts: int = 8,
    steps: int = 40,
    lr: float = 1.0,
    init_scale: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Full-batch GD on the mean logistic loss of the full data, from ``n_experts`` random inits.

    Init ``w0 ~ N(0, init_scale^2 I / N)`` (so ``||w0|| ~ init_scale``) from a ``torch.Generator`` seeded with
    ``seed``. Returns an array of shape (n_experts, steps + 1, N) with every iterate (including w0).
    """
    torch = _torch()
    g = torch.Generator().manual_seed(int(seed))
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    N = Xt.shape[1]
    W = torch.randn(n_experts, N, generator=g, dtype=torch.float64) * (init_scale / math.sqrt(N))
    out = [W.clone()]
    for _ in range(steps):
        G, _ = _logistic_grads(W, Xt, yt)
        W = W - lr * G
        out.append(W.clone())
    return torch.stack(out, 1).numpy()


def grad_norm_panel(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> float:
    """GraDN of a set for the linear logistic student: mean over the weight panel ``W`` (K, N) and the points of the
    per-sample gradient norm ``sigmoid(-y w . x) ||x||``."""
    torch = _torch()
    with torch.no_grad():
        v = _per_sample_grad_norm(
            torch.as_tensor(np.asarray(W).reshape(-1, X.shape[1]), dtype=torch.float64),
            torch.as_tensor(X, dtype=torch.float64),
            torch.as_tensor(y, dtype=torch.float64),
        )
    return float(v)


@dataclass
class DistillResult:
    """Output of :func:`distill_linear`.

    ``X``, ``y``: the synthetic set (M, N) and its fixed labels; ``X_init``: where it started (real points);
    ``lr``: the learned inner step size (trajectory mode; the fixed one otherwise); ``experts``: the expert trajectories
    (n_experts, steps + 1, N) used as the panel of student weights; ``gradn_init`` / ``gradn``: GraDN of the synthetic
    set over that panel before / after; ``history``: per-iteration match loss and penalty R.
    """

    X: np.ndarray
    y: np.ndarray
    X_init: np.ndarray
    lr: float
    experts: np.ndarray
    gradn_init: float
    gradn: float
    history: dict = field(default_factory=dict)


class _torch_threads:
    """Run tiny torch ops on one intra-op thread (2 threads were several times slower on (100 x 100) matmuls here);
    the previous setting is restored on exit."""

    def __init__(self, n: int = 1):
        self.n = n

    def __enter__(self):
        torch = _torch()
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        _torch().set_num_threads(self.prev)


# long: a one-parameter-per-line signature and the docstring that defines the construction; the body is 19 lines
def distill_linear(
    X: np.ndarray,
    y: np.ndarray,
    M: int,
    mode: str = "gradient",
    lambda_sdc: float | Sequence[float] = 0.0,
    steps: int = 200,
    seed: int = 0,
    *,
    weights: str | None = None,
    n_experts: int = 8,
    expert_steps: int = 40,
    expert_lr: float = 1.0,
    init_scale: float = 1.0,
    batch: int = 8,
    inner_steps: int = 10,
    syn_steps: int = 10,
    expert_span: int = 2,
    opt_lr: float = 0.05,
    lr_lr: float = 0.01,
    experts: np.ndarray | None = None,
) -> DistillResult | list[DistillResult]:
    """Learn ``M`` synthetic points (labels fixed, balanced +-1) for the linear logistic student.

    The student is ``w`` in R^N with loss ``l(w; x, y) = log(1 + exp(-y w . x))``. The synthetic set starts from a
    random class-balanced subset of the real data and is parametrised on the sphere, ``x_i = sqrt(N) v_i / ||v_i||``,
    so that neither the matching nor the penalty can act through the norm of the points. Adam (``opt_lr``) runs
    ``steps`` iterations on

        L(S) = L_match(S) + lambda_sdc * R(S),   R(S) = mean_w mean_i ||d/dw l(w; x_i, y_i)||

    where the mean over ``w`` is over the student weights the matching loss uses in that iteration (the SDC
    "sample" mode; for this student ``||d/dw l|| = sigmoid(-y w . x) ||x||``, so R falls only if the points move away
    from the students' decision boundaries, i.e. become easier). ``lambda_sdc = 0`` is the plain matching method,
    ``lambda_sdc < 0`` pushes the points to be harder.

    Expert trajectories: ``n_experts`` runs of full-batch GD (step ``expert_lr``, ``expert_steps`` steps) on the full
    data from ``w0 ~ N(0, init_scale^2 I / N)`` (logits of order ``init_scale`` at init, like a standard network init).

    * ``mode='gradient'`` (DC-style): ``L_match = mean_w [1 - cos(grad L_S(w), grad L_full(w))]`` over a batch of
      ``batch`` student weights chosen by ``weights``:

      - ``'dc'`` (default, as in DC): ``batch`` students initialised like the experts, matched, then moved by one GD
        step (``expert_lr``) on the current synthetic set; re-initialised every ``inner_steps`` iterations;
      - ``'expert'``: checkpoints drawn from the expert trajectories on the full data;
      - ``'random'``: random directions with the norms of drawn expert checkpoints.

    * ``mode='trajectory'`` (MTT-style; ``weights`` must be ``'expert'``): a batch of start checkpoints ``w_t``,
      ``syn_steps`` differentiable GD steps on the synthetic set with a learnable step size (init
      ``expert_lr * expert_span / syn_steps``, Adam ``lr_lr`` on its log), loss
      ``mean ||w_hat - w*_{t+span}||^2 / ||w_t - w*_{t+span}||^2``; ``R`` averages over every unrolled weight.

    Deterministic given ``seed`` (numpy and torch Generators; no global RNG). Returns a :class:`DistillResult` whose
    ``gradn`` is measured on a fixed panel (all expert checkpoints), comparable across variants.

    ``lambda_sdc`` may be a list: the sets for all its values are then optimised side by side in one batched loop
    (4 values cost about as much as 1 here) with the same start, the same random draws and their own students, and a
    list of results is returned; each equals the single-value run up to floating-point rounding.
    """
    weights = _check_variant(mode, weights)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    M = int(M)
    if M < 1:
        raise ValueError("M must be >= 1")
    rng = np.random.default_rng([int(seed), 7])
    tgen = _torch().Generator().manual_seed(int(seed) * 1_000_003 + 11)
    y_syn, X0 = _initial_set(X, y, M, rng)
    if experts is None:
        experts = expert_trajectories(X, y, n_experts, expert_steps, expert_lr, init_scale, seed=int(seed) * 7 + 3)
    single = np.ndim(lambda_sdc) == 0
    lams = [float(lambda_sdc)] if single else [float(l) for l in lambda_sdc]
    with _torch_threads(1):
        sets = _SyntheticSets(X, y, X0, y_syn, experts, mode, weights, lams, tgen, batch=batch,
                              inner_steps=inner_steps, syn_steps=syn_steps, expert_span=expert_span,
                              expert_lr=expert_lr, init_scale=init_scale, opt_lr=opt_lr, lr_lr=lr_lr)
        out = sets.run(int(steps))
    return out[0] if single else out


def _check_variant(mode: str, weights: str | None) -> str:
    """The student weights the matching uses (default: 'dc' for gradient matching, 'expert' for trajectories)."""
    if mode not in ("gradient", "trajectory"):
        raise ValueError(f"mode must be 'gradient' or 'trajectory', got {mode!r}")
    if weights is None:
        weights = "dc" if mode == "gradient" else "expert"
    if weights not in ("dc", "expert", "random"):
        raise ValueError(f"weights must be 'dc', 'expert' or 'random', got {weights!r}")
    if mode == "trajectory" and weights != "expert":
        raise ValueError("trajectory matching needs weights='expert'")
    return weights


def _initial_set(X: np.ndarray, y: np.ndarray, M: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(y_syn, X0): fixed balanced labels, and real points of the matching class to start from (drawn with
    replacement only if a class is short; Gaussian noise for a class with no point at all)."""
    N = X.shape[1]
    y_syn = np.where(np.arange(M) % 2 == 0, 1.0, -1.0)
    X0 = np.empty((M, N))
    for c in (1.0, -1.0):
        pos = np.flatnonzero(y_syn == c)
        pool = np.flatnonzero(y == c)
        if len(pool) == 0:
            X0[pos] = rng.standard_normal((len(pos), N))
            continue
        X0[pos] = X[rng.choice(pool, size=len(pos), replace=len(pool) < len(pos))]
    return y_syn, X0


def _cos_match(Gs, Gr):
    """Mean over the student batch of ``1 - cos(Gs, Gr)``, one value per set: (L,)."""
    torch = _torch()
    num = (Gs * Gr).sum(-1)
    den = torch.linalg.vector_norm(Gs, dim=-1) * torch.linalg.vector_norm(Gr, dim=-1) + 1e-12
    return (1.0 - num / den).mean(-1)  # (L,)


class _SyntheticSets:
    """The optimisation of :func:`distill_linear` for L = len(lams) independent sets at once (leading dim L): the
    parameters (points before their projection on the sphere, and the log step size of trajectory matching), Adam,
    the expert panel and the one random stream ``tgen`` every draw comes from, in a fixed order."""

    def __init__(self, X, y, X0, y_syn, experts, mode, weights, lams, tgen, *, batch, inner_steps, syn_steps,
                 expert_span, expert_lr, init_scale, opt_lr, lr_lr):
        torch = _torch()
        self.mode, self.weights, self.tgen, self.batch = mode, weights, tgen, batch
        self.inner_steps, self.syn_steps, self.expert_span = inner_steps, syn_steps, expert_span
        self.expert_lr, self.init_scale = expert_lr, init_scale
        self.X0, self.y_syn, self.experts = X0, y_syn, experts
        self.N = X.shape[1]
        self.L = len(lams)
        self.E, self.Tn, _ = experts.shape
        self.Wall = torch.as_tensor(experts, dtype=torch.float64)  # (E, Tn, N)
        self.flatW = self.Wall.reshape(-1, self.N)
        self.Xt = torch.as_tensor(X, dtype=torch.float64)
        self.yt = torch.as_tensor(y, dtype=torch.float64)
        self.ys = torch.as_tensor(y_syn, dtype=torch.float64)
        self.lam = torch.tensor(lams, dtype=torch.float64)  # (L,)
        self.radius = math.sqrt(self.N)
        self.V = torch.tensor(np.broadcast_to(X0, (self.L,) + X0.shape).copy(), dtype=torch.float64,
                              requires_grad=True)
        groups = [{"params": [self.V], "lr": opt_lr}]
        self.inner_lr = expert_lr * expert_span / syn_steps
        self.log_lr = None
        if mode == "trajectory":
            self.log_lr = torch.full((self.L,), math.log(self.inner_lr), dtype=torch.float64, requires_grad=True)
            groups.append({"params": [self.log_lr], "lr": lr_lr})
        self.opt = torch.optim.Adam(groups)
        with torch.no_grad():
            self.G_full_all = _logistic_grads(self.flatW, self.Xt, self.yt)[0] if weights == "expert" else None
            self.gradn_init = float(_per_sample_grad_norm(
                self.flatW, torch.as_tensor(X0, dtype=torch.float64) * self.radius
                / torch.linalg.vector_norm(torch.as_tensor(X0), dim=-1, keepdim=True), self.ys))
        self.W_dc = None

    def syn_points(self):  # (L, M, N) on the sphere of radius sqrt(N)
        torch = _torch()
        return self.radius * self.V / torch.linalg.vector_norm(self.V, dim=-1, keepdim=True)

    def fresh_students(self):
        torch = _torch()
        U = torch.randn(self.batch, self.N, generator=self.tgen, dtype=torch.float64)
        return (U * (self.init_scale / math.sqrt(self.N))).expand(self.L, self.batch, self.N).clone()

    def gradient_losses(self, it: int, Xs, xnorm):
        """(match, R) of gradient matching at this iteration's student weights."""
        torch = _torch()
        batch, N, flatW = self.batch, self.N, self.flatW
        if self.weights == "dc":
            if it % self.inner_steps == 0:
                self.W_dc = self.fresh_students()
            W = self.W_dc  # (L, B, N)
            Gr = _logistic_grads(W, self.Xt, self.yt)[0]
        elif self.weights == "expert":
            k = torch.randint(0, flatW.shape[0], (batch,), generator=self.tgen)
            W, Gr = flatW[k], self.G_full_all[k]  # (B, N), shared by the L sets
        else:  # random directions with the norms of drawn checkpoints
            k = torch.randint(0, flatW.shape[0], (batch,), generator=self.tgen)
            U = torch.randn(batch, N, generator=self.tgen, dtype=torch.float64)
            W = U * (torch.linalg.vector_norm(flatW[k], dim=1) / torch.linalg.vector_norm(U, dim=1))[:, None]
            Gr = _logistic_grads(W, self.Xt, self.yt)[0]
        Gs, S = _logistic_grads(W, Xs, self.ys)  # (L, B, N), (L, M, B)
        return _cos_match(Gs, Gr), (S * xnorm).mean((-2, -1))  # (L,), (L,)

    def trajectory_losses(self, Xs, xnorm):
        """(match, R) of trajectory matching: ``syn_steps`` differentiable GD steps from drawn expert checkpoints."""
        torch = _torch()
        batch, span = self.batch, self.expert_span
        e = torch.randint(0, self.E, (batch,), generator=self.tgen)
        t = torch.randint(0, self.Tn - span, (batch,), generator=self.tgen)
        w0 = self.Wall[e, t]
        target = self.Wall[e, t + span]
        eta = torch.exp(self.log_lr)[:, None, None]
        w = w0.expand(self.L, batch, self.N)
        Rs = []
        for _k in range(self.syn_steps):
            Gs, S = _logistic_grads(w, Xs, self.ys)
            Rs.append((S * xnorm).mean((-2, -1)))
            w = w - eta * Gs
        num = ((w - target) ** 2).sum(-1)  # (L, B)
        den = ((w0 - target) ** 2).sum(-1) + 1e-12  # (B,)
        return (num / den).mean(-1), torch.stack(Rs).mean(0)

    def step(self, it: int):
        """One Adam step on every set; returns its (match, R), each (L,)."""
        torch = _torch()
        Xs = self.syn_points()
        xnorm = torch.linalg.vector_norm(Xs, dim=-1)[..., :, None]  # (L, M, 1)
        if self.mode == "gradient":
            match, R = self.gradient_losses(it, Xs, xnorm)
        else:
            match, R = self.trajectory_losses(Xs, xnorm)
        loss = (match + self.lam * R).sum()  # independent sets: each gets exactly its own gradient
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.weights == "dc" and self.mode == "gradient":  # inner loop: train each set's students on that set
            with torch.no_grad():
                self.W_dc = self.W_dc - self.expert_lr * _logistic_grads(self.W_dc, self.syn_points(), self.ys)[0]
        return match, R

    def run(self, steps: int) -> list[DistillResult]:
        hist_match, hist_R = [], []
        for it in range(steps):
            match, R = self.step(it)
            hist_match.append(match.detach().numpy().copy())
            hist_R.append(R.detach().numpy().copy())
        return self.results(np.array(hist_match), np.array(hist_R), steps)  # (steps, L) each

    def results(self, hm: np.ndarray, hr: np.ndarray, steps: int) -> list[DistillResult]:
        torch = _torch()
        out = []
        X0 = self.X0
        with torch.no_grad():
            Xs = self.syn_points()
            for i in range(self.L):
                if self.log_lr is not None:
                    lr = float(torch.exp(self.log_lr[i]))
                else:
                    lr = self.expert_lr if self.weights == "dc" else self.inner_lr
                out.append(DistillResult(
                    X=Xs[i].numpy().copy(),
                    y=self.y_syn,
                    X_init=self.radius * X0 / np.linalg.norm(X0, axis=1, keepdims=True),
                    lr=lr,
                    experts=self.experts,
                    gradn_init=self.gradn_init,
                    gradn=float(_per_sample_grad_norm(self.flatW, Xs[i], self.ys)),
                    history={"match": hm[:, i].tolist() if steps else [], "R": hr[:, i].tolist() if steps else []},
                ))
        return out
