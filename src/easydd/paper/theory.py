"""Theory, simulated: data pruning and dataset distillation in the teacher-student perceptron.

The model is the one of Sorscher et al. 2022 ("Beyond neural scaling laws: beating power law scaling via data
pruning"):

* teacher ``T ~ N(0, I_N)``, inputs ``x ~ N(0, I_N)``, labels ``y = sign(T . x)``, ``P = alpha_total * N`` examples;
* a *probe* student ``J_p`` at angle ``theta_p`` from ``T`` scores every example by its margin ``|J_p . x|``
  (large margin = EASY, small margin = HARD);
* a fraction ``f`` of the examples is kept (the easiest, the hardest, or a random subset), ``alpha_prune = f *
  alpha_total``, and a student is trained on it (max-margin by default);
* the generalisation error of a student ``J`` is exactly ``arccos(cos(J, T)) / pi`` for Gaussian inputs.

The known result: when the kept budget is small, keeping the EASY examples is better; when it is large, keeping the
HARD examples is better (and beats the power law), and the cross-over moves with ``alpha_total``.

Distillation extension (our construction, documented in docs/theory.md): a synthetic set of ``M`` points with fixed,
balanced labels is learned for the same linear student with logistic loss, either by *gradient matching* (DC-style
``1 - cos`` between the synthetic and the full-data loss gradients, at students re-initialised at random and trained
on the synthetic set, as DC does; or at expert checkpoints / random directions as variants) or by *trajectory
matching* (MTT-style: unroll a few differentiable GD steps on the synthetic set from a checkpoint of an expert GD
trajectory on the full data and match the expert a few steps later). The SDC easiness penalty adds
``lambda * mean_i ||d/dw loss(w; x_i, y_i)||`` (the mean per-sample gradient norm of the synthetic points at the
same student weights) to the matching loss. Synthetic points are kept on the sphere ``||x|| = sqrt(N)`` (where real
Gaussian inputs live), so the penalty cannot be satisfied by shrinking the points; it can only move them away from the
decision boundaries of the students, i.e. make them easier (``lambda < 0`` makes them harder).

All randomness goes through explicit ``numpy.random.Generator`` / ``torch.Generator`` objects; no global RNG is used.
This module imports nothing else from easydd but ``easydd.io.atomic_write``. Command line: ``easydd theory ...``
(via :func:`add_arguments` and :func:`run_from_args`) or ``python -m easydd.paper.theory ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "teacher_student",
    "probe",
    "margins",
    "prune",
    "train_student",
    "test_error",
    "DistillResult",
    "expert_trajectories",
    "distill_linear",
    "grad_norm_panel",
    "run_pruning_sweep",
    "run_distillation_sweep",
    "MODES",
    "sdc_effects",
    "summarize",
    "crossovers",
    "write_outputs",
    "add_arguments",
    "run_from_args",
    "cli",
    "main",
]

# --------------------------------------------------------------------------------------------------------------------
# The teacher-student model
# --------------------------------------------------------------------------------------------------------------------


def teacher_student(N: int, P: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a teacher and a labelled data set.

    Returns ``(X, y, T)``: ``X`` of shape (P, N) with i.i.d. N(0, 1) entries, ``T`` of shape (N,) ~ N(0, I_N) and
    ``y = sign(X @ T)`` in {-1, +1} (a zero, which has probability 0, is mapped to +1).
    """
    T = rng.standard_normal(N)
    X = rng.standard_normal((int(P), int(N)))
    y = np.where(X @ T >= 0, 1.0, -1.0)
    return X, y, T


def probe(T: np.ndarray, theta_p: float, rng: np.random.Generator) -> np.ndarray:
    """A probe student at angle ``theta_p`` (radians) from the teacher, with the teacher's norm.

    ``J_p = ||T|| (cos(theta_p) T_hat + sin(theta_p) u)`` with ``u`` a random unit vector orthogonal to ``T``.
    ``theta_p = 0`` is the perfect probe (``J_p = T``).
    """
    T = np.asarray(T, dtype=float)
    norm = np.linalg.norm(T)
    t_hat = T / norm
    u = rng.standard_normal(T.shape[0])
    u -= (u @ t_hat) * t_hat
    u /= np.linalg.norm(u)
    return norm * (math.cos(theta_p) * t_hat + math.sin(theta_p) * u)


def margins(X: np.ndarray, J: np.ndarray) -> np.ndarray:
    """Difficulty scores: the unsigned margins ``|J . x| / ||J||`` (large = easy, small = hard)."""
    J = np.asarray(J, dtype=float)
    return np.abs(X @ J) / np.linalg.norm(J)


def prune(
    X: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    f: float,
    keep: str = "easy",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep a fraction ``f`` of the examples.

    ``keep='easy'`` keeps the ``round(f P)`` examples with the LARGEST scores (margins), ``'hard'`` the smallest,
    ``'random'`` a uniformly random subset (needs ``rng``). At least one example is kept. The kept indices are returned
    sorted, so ``f = 1`` returns the data set itself, in its order, whatever ``keep`` is.

    Returns ``(X_kept, y_kept, idx)``.
    """
    P = X.shape[0]
    if not 0.0 < f <= 1.0:
        raise ValueError(f"fraction f must be in (0, 1], got {f}")
    n = max(1, min(P, int(round(f * P))))
    if keep == "easy":
        idx = np.argsort(-scores, kind="stable")[:n]
    elif keep == "hard":
        idx = np.argsort(scores, kind="stable")[:n]
    elif keep == "random":
        if rng is None:
            raise ValueError("keep='random' needs an explicit numpy Generator rng")
        idx = rng.choice(P, size=n, replace=False)
    else:
        raise ValueError(f"keep must be 'easy', 'hard' or 'random', got {keep!r}")
    idx = np.sort(idx)
    return X[idx], y[idx], idx


# --------------------------------------------------------------------------------------------------------------------
# Students
# --------------------------------------------------------------------------------------------------------------------


def _max_margin_ldp(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Exact hard-margin SVM through the origin, or None when the data are not linearly separable.

    ``min ||w||^2  s.t.  y_i w . x_i >= 1`` is a least-distance program; Lawson & Hanson (Solving Least Squares
    Problems, ch. 23) reduce it to one non-negative least squares problem: with ``G = y[:, None] * X`` solve
    ``min_{u >= 0} ||E u - e||`` for ``E = [G^T; 1^T]``, ``e = (0, ..., 0, 1)``; then ``r = E u - e`` and
    ``w = -r[:N] / r[N]``. ``r[N] = 0`` means the constraints are infeasible (not separable).
    """
    from scipy.optimize import nnls

    G = y[:, None] * X
    m, n = G.shape
    E = np.vstack([G.T, np.ones((1, m))])
    e = np.zeros(n + 1)
    e[-1] = 1.0
    try:
        u, _ = nnls(E, e, maxiter=max(50 * m, 1000))
    except RuntimeError:  # iteration limit
        return None
    r = E @ u - e
    if abs(r[n]) < 1e-10:
        return None
    w = -r[:n] / r[n]
    if not np.all(np.isfinite(w)) or np.min(G @ w) < 1.0 - 1e-6:
        return None
    return w


def _perceptron(X: np.ndarray, y: np.ndarray, epochs: int = 100) -> np.ndarray:
    """Rosenblatt's perceptron from zero, examples in their given order, until an epoch without mistakes."""
    w = np.zeros(X.shape[1])
    for _ in range(epochs):
        mistakes = 0
        for xi, yi in zip(X, y):
            if yi * (xi @ w) <= 0:
                w += yi * xi
                mistakes += 1
        if mistakes == 0:
            break
    return w


def train_student(X: np.ndarray, y: np.ndarray, kind: str = "maxmargin") -> np.ndarray:
    """Train a linear student through the origin on ``(X, y)`` and return its weight vector ``J``.

    * ``'maxmargin'``: the exact hard-margin SVM (least-distance program solved by NNLS, see
      :func:`_max_margin_ldp`); if the set is not linearly separable (possible only for synthetic sets) it falls back
      to a soft-margin linear SVM (scikit-learn ``LinearSVC``, hinge loss, ``C = 10``).
    * ``'logistic'``: L2-regularised logistic regression (scikit-learn, ``C = 100``, no intercept).
    * ``'perceptron'``: Rosenblatt's perceptron (at most 100 epochs, deterministic order).

    Deterministic: no randomness is involved.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2 and kind != "perceptron":
        # One class only: the best linear rule through the origin is the class mean direction.
        return (y[:, None] * X).mean(0)
    if kind == "maxmargin":
        w = _max_margin_ldp(X, y)
        if w is not None:
            return w
        from sklearn.svm import LinearSVC

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LinearSVC(C=10.0, loss="hinge", fit_intercept=False, max_iter=100_000, tol=1e-4, random_state=0)
            m.fit(X, y)
        return m.coef_.ravel().copy()
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression(C=100.0, fit_intercept=False, max_iter=5000, tol=1e-8)
            m.fit(X, y)
        return m.coef_.ravel().copy()
    if kind == "perceptron":
        return _perceptron(X, y)
    raise ValueError(f"kind must be 'maxmargin', 'logistic' or 'perceptron', got {kind!r}")


def test_error(J: np.ndarray, T: np.ndarray) -> float:
    """Exact generalisation error for Gaussian inputs: ``arccos(cos(J, T)) / pi`` (0 for J = T, 1 for J = -T)."""
    J = np.asarray(J, dtype=float)
    T = np.asarray(T, dtype=float)
    nj, nt = np.linalg.norm(J), np.linalg.norm(T)
    if nj == 0.0 or nt == 0.0:
        return 0.5
    c = float(np.clip((J @ T) / (nj * nt), -1.0, 1.0))
    return math.acos(c) / math.pi


# --------------------------------------------------------------------------------------------------------------------
# Distillation for the linear student (torch, autograd)
# --------------------------------------------------------------------------------------------------------------------


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
    torch = _torch()
    if mode not in ("gradient", "trajectory"):
        raise ValueError(f"mode must be 'gradient' or 'trajectory', got {mode!r}")
    if weights is None:
        weights = "dc" if mode == "gradient" else "expert"
    if weights not in ("dc", "expert", "random"):
        raise ValueError(f"weights must be 'dc', 'expert' or 'random', got {weights!r}")
    if mode == "trajectory" and weights != "expert":
        raise ValueError("trajectory matching needs weights='expert'")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    P, N = X.shape
    M = int(M)
    if M < 1:
        raise ValueError("M must be >= 1")
    rng = np.random.default_rng([int(seed), 7])
    tgen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 11)

    # Fixed balanced labels; init from real points of the matching class (with replacement only if a class is short).
    y_syn = np.where(np.arange(M) % 2 == 0, 1.0, -1.0)
    X0 = np.empty((M, N))
    for c in (1.0, -1.0):
        pos = np.flatnonzero(y_syn == c)
        pool = np.flatnonzero(y == c)
        if len(pool) == 0:
            X0[pos] = rng.standard_normal((len(pos), N))
            continue
        X0[pos] = X[rng.choice(pool, size=len(pos), replace=len(pool) < len(pos))]

    if experts is None:
        experts = expert_trajectories(X, y, n_experts, expert_steps, expert_lr, init_scale, seed=int(seed) * 7 + 3)
    single = np.ndim(lambda_sdc) == 0
    lams = [float(lambda_sdc)] if single else [float(l) for l in lambda_sdc]
    with _torch_threads(1):
        out = _distill_loop(X, y, X0, y_syn, experts, mode, weights, lams, int(steps), tgen,
                            batch, inner_steps, syn_steps, expert_span, expert_lr, init_scale, opt_lr, lr_lr)
    return out[0] if single else out


def _distill_loop(X, y, X0, y_syn, experts, mode, weights, lams, steps, tgen, batch, inner_steps, syn_steps,
                  expert_span, expert_lr, init_scale, opt_lr, lr_lr) -> list[DistillResult]:
    """The optimisation of :func:`distill_linear` for L = len(lams) independent sets at once (leading dim L)."""
    torch = _torch()
    N = X.shape[1]
    L = len(lams)
    E, Tn, _ = experts.shape
    Wall = torch.as_tensor(experts, dtype=torch.float64)  # (E, Tn, N)
    flatW = Wall.reshape(-1, N)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    ys = torch.as_tensor(y_syn, dtype=torch.float64)
    lam = torch.tensor(lams, dtype=torch.float64)  # (L,)
    radius = math.sqrt(N)

    V = torch.tensor(np.broadcast_to(X0, (L,) + X0.shape).copy(), dtype=torch.float64, requires_grad=True)
    groups = [{"params": [V], "lr": opt_lr}]
    inner_lr = expert_lr * expert_span / syn_steps
    log_lr = None
    if mode == "trajectory":
        log_lr = torch.full((L,), math.log(inner_lr), dtype=torch.float64, requires_grad=True)
        groups.append({"params": [log_lr], "lr": lr_lr})
    opt = torch.optim.Adam(groups)

    def syn_points():  # (L, M, N) on the sphere of radius sqrt(N)
        return radius * V / torch.linalg.vector_norm(V, dim=-1, keepdim=True)

    def fresh_students():
        U = torch.randn(batch, N, generator=tgen, dtype=torch.float64)
        return (U * (init_scale / math.sqrt(N))).expand(L, batch, N).clone()

    with torch.no_grad():
        G_full_all = _logistic_grads(flatW, Xt, yt)[0] if weights == "expert" else None
        gradn_init = float(_per_sample_grad_norm(flatW, torch.as_tensor(X0, dtype=torch.float64) * radius
                                                 / torch.linalg.vector_norm(torch.as_tensor(X0), dim=-1,
                                                                            keepdim=True), ys))

    def cos_match(Gs, Gr):
        num = (Gs * Gr).sum(-1)
        den = torch.linalg.vector_norm(Gs, dim=-1) * torch.linalg.vector_norm(Gr, dim=-1) + 1e-12
        return (1.0 - num / den).mean(-1)  # (L,)

    W_dc = None
    hist_match, hist_R = [], []
    for it in range(steps):
        Xs = syn_points()
        xnorm = torch.linalg.vector_norm(Xs, dim=-1)[..., :, None]  # (L, M, 1)
        if mode == "gradient":
            if weights == "dc":
                if it % inner_steps == 0:
                    W_dc = fresh_students()
                W = W_dc  # (L, B, N)
                Gr = _logistic_grads(W, Xt, yt)[0]
            elif weights == "expert":
                k = torch.randint(0, flatW.shape[0], (batch,), generator=tgen)
                W, Gr = flatW[k], G_full_all[k]  # (B, N), shared by the L sets
            else:  # random directions with the norms of drawn checkpoints
                k = torch.randint(0, flatW.shape[0], (batch,), generator=tgen)
                U = torch.randn(batch, N, generator=tgen, dtype=torch.float64)
                W = U * (torch.linalg.vector_norm(flatW[k], dim=1) / torch.linalg.vector_norm(U, dim=1))[:, None]
                Gr = _logistic_grads(W, Xt, yt)[0]
            Gs, S = _logistic_grads(W, Xs, ys)  # (L, B, N), (L, M, B)
            match = cos_match(Gs, Gr)
            R = (S * xnorm).mean((-2, -1))  # (L,)
        else:
            e = torch.randint(0, E, (batch,), generator=tgen)
            t = torch.randint(0, Tn - expert_span, (batch,), generator=tgen)
            w0 = Wall[e, t]
            target = Wall[e, t + expert_span]
            eta = torch.exp(log_lr)[:, None, None]
            w = w0.expand(L, batch, N)
            Rs = []
            for _k in range(syn_steps):
                Gs, S = _logistic_grads(w, Xs, ys)
                Rs.append((S * xnorm).mean((-2, -1)))
                w = w - eta * Gs
            num = ((w - target) ** 2).sum(-1)  # (L, B)
            den = ((w0 - target) ** 2).sum(-1) + 1e-12  # (B,)
            match = (num / den).mean(-1)
            R = torch.stack(Rs).mean(0)
        loss = (match + lam * R).sum()  # independent sets: each gets exactly its own gradient
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if weights == "dc" and mode == "gradient":  # inner loop: train each set's students on that set
            with torch.no_grad():
                W_dc = W_dc - expert_lr * _logistic_grads(W_dc, syn_points(), ys)[0]
        hist_match.append(match.detach().numpy().copy())
        hist_R.append(R.detach().numpy().copy())

    hm, hr = np.array(hist_match), np.array(hist_R)  # (steps, L)
    out = []
    with torch.no_grad():
        Xs = syn_points()
        for i in range(L):
            if log_lr is not None:
                lr = float(torch.exp(log_lr[i]))
            else:
                lr = expert_lr if weights == "dc" else inner_lr
            out.append(DistillResult(
                X=Xs[i].numpy().copy(),
                y=y_syn,
                X_init=radius * X0 / np.linalg.norm(X0, axis=1, keepdims=True),
                lr=lr,
                experts=experts,
                gradn_init=gradn_init,
                gradn=float(_per_sample_grad_norm(flatW, Xs[i], ys)),
                history={"match": hm[:, i].tolist() if steps else [], "R": hr[:, i].tolist() if steps else []},
            ))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------------------------------


def _rng(*key) -> np.random.Generator:
    """A Generator keyed by integers (seed, experiment, ...), so every configuration has its own stream."""
    return np.random.default_rng([int(k) for k in key])


def run_pruning_sweep(
    N: int = 100,
    alpha_totals: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
    fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    theta_p: float = 0.0,
    seeds: int = 5,
    kind: str = "maxmargin",
    keeps: Sequence[str] = ("easy", "hard", "random"),
    seed: int = 0,
) -> list[dict]:
    """Test error of the student trained on easy / hard / random fractions of teacher-student data.

    ``theta_p`` is in radians. For every seed and ``alpha_total`` a fresh data set (``P = round(alpha_total N)``),
    teacher and probe are drawn; every fraction and keep rule is then applied to that same data. Returns one row per
    (seed, alpha_total, f, keep) with keys ``section, seed, alpha_total, f, alpha_prune, n, method, error``.
    """
    rows = []
    for s in range(int(seeds)):
        for ai, a in enumerate(alpha_totals):
            rng = _rng(seed, 1, s, ai)
            P = max(2, int(round(a * N)))
            X, y, T = teacher_student(N, P, rng)
            Jp = probe(T, theta_p, rng)
            sc = margins(X, Jp)
            for f in fractions:
                for keep in keeps:
                    Xk, yk, idx = prune(X, y, sc, f, keep, rng)
                    J = train_student(Xk, yk, kind)
                    rows.append(dict(section="pruning", seed=s, alpha_total=float(a), f=float(f),
                                     alpha_prune=len(idx) / N, n=len(idx), method=keep, error=test_error(J, T)))
    return rows


MODES = {
    "gradient": ("gradient", "dc"),
    "gradient-expert": ("gradient", "expert"),
    "gradient-random": ("gradient", "random"),
    "trajectory": ("trajectory", "expert"),
}
"""Distillation variants by name: (mode, weights) of :func:`distill_linear`."""


def run_distillation_sweep(
    N: int = 100,
    alpha_total: float = 4.0,
    budgets: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
    lambdas: Sequence[float] = (-0.1, 0.0, 0.1, 1.0),
    modes: Sequence[str] = ("gradient", "trajectory"),
    theta_p: float = 0.0,
    seeds: int = 5,
    kind: str = "maxmargin",
    steps: int = 200,
    seed: int = 0,
) -> list[dict]:
    """Distilled sets of ``M = round(alpha_syn N)`` points vs real subsets of the same size.

    ``modes`` are names from :data:`MODES` (``'gradient'`` = DC-style gradient matching at students re-initialised and
    trained on the synthetic set; ``'gradient-expert'`` / ``'gradient-random'`` = gradient matching at expert
    checkpoints / random directions; ``'trajectory'`` = MTT-style). For each seed: one full data set
    (``P = alpha_total N``), its teacher and probe (angle ``theta_p``, radians), and one set of expert trajectories
    shared by all budgets and variants; all variants of a seed start from the same real points (paired comparison).
    For each budget: the real-subset references (easy / hard / random by probe margin, ``f = M / P``) and, for each
    mode and ``lambda``, a distilled set; the student (``kind``) is trained on each and its test error recorded. Rows
    also carry ``gradn`` (GraDN over the expert panel, smaller = easier) and ``teacher_margin`` (mean ``y T_hat . x``
    of the set, larger = easier w.r.t. the teacher).
    """
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown distillation mode {m!r}; choose from {sorted(MODES)}")
    rows = []
    P = max(2, int(round(alpha_total * N)))
    for s in range(int(seeds)):
        rng = _rng(seed, 2, s)
        X, y, T = teacher_student(N, P, rng)
        Jp = probe(T, theta_p, rng)
        sc = margins(X, Jp)
        t_hat = T / np.linalg.norm(T)
        dseed = int(_rng(seed, 3, s).integers(2**31 - 1))
        experts = expert_trajectories(X, y, seed=dseed)
        full_err = test_error(train_student(X, y, kind), T)
        base = dict(section="distillation", seed=s, alpha_total=float(alpha_total), full_error=full_err)
        for b in budgets:
            M = max(1, int(round(b * N)))
            f = min(1.0, M / P)
            for keep in ("easy", "hard", "random"):
                Xk, yk, _ = prune(X, y, sc, f, keep, _rng(seed, 4, s, int(round(b * 1e6))))
                rows.append(dict(base, alpha_syn=M / N, M=M, method=f"real-{keep}", mode="", lambda_sdc=0.0,
                                 error=test_error(train_student(Xk, yk, kind), T),
                                 gradn=grad_norm_panel(Xk, yk, experts),
                                 teacher_margin=float(np.mean(yk * (Xk @ t_hat)))))
            for name in modes:
                mode, weights = MODES[name]
                res = distill_linear(X, y, M, mode=mode, lambda_sdc=[float(l) for l in lambdas], steps=steps,
                                     seed=dseed, experts=experts, weights=weights)
                for lam, r in zip(lambdas, res):
                    rows.append(dict(base, alpha_syn=M / N, M=M, method=f"distill-{name}", mode=name,
                                     lambda_sdc=float(lam), error=test_error(train_student(r.X, r.y, kind), T),
                                     gradn=r.gradn, gradn_init=r.gradn_init,
                                     teacher_margin=float(np.mean(r.y * (r.X @ t_hat))),
                                     label_agreement=float(np.mean(np.sign(r.X @ T) == r.y))))
    return rows


def sdc_effects(distill_rows: list[dict]) -> list[dict]:
    """Paired effect of the penalty: per mode, budget and ``lambda != 0``, the seed-mean of
    ``error(lambda) - error(0)`` (same data, same start, same student draws) with its s.e.m.; negative = SDC helps."""
    base = {(r["mode"], r["alpha_syn"], r["seed"]): r["error"] for r in distill_rows
            if r["mode"] and r["lambda_sdc"] == 0.0}
    diffs: dict[tuple, list[float]] = {}
    for r in distill_rows:
        if r["mode"] and r["lambda_sdc"] != 0.0:
            k0 = (r["mode"], r["alpha_syn"], r["seed"])
            if k0 in base:
                diffs.setdefault((r["mode"], r["alpha_syn"], r["lambda_sdc"]), []).append(r["error"] - base[k0])
    out = []
    for (mode, a, lam), v in sorted(diffs.items()):
        v = np.asarray(v)
        out.append(dict(mode=mode, alpha_syn=a, lambda_sdc=lam, diff=float(v.mean()),
                        sem=float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0, n=len(v)))
    return out


def summarize(rows: Iterable[dict], keys: Sequence[str], value: str = "error") -> list[dict]:
    """Average ``value`` over seeds for every distinct combination of ``keys``: mean, std, sem, n."""
    groups: dict[tuple, list[float]] = {}
    extra: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        k = tuple(r.get(kk) for kk in keys)
        groups.setdefault(k, []).append(r[value])
        for aux in ("gradn", "teacher_margin", "label_agreement", "full_error"):
            if aux in r and aux != value:
                extra.setdefault(k, {}).setdefault(aux, []).append(r[aux])
    out = []
    for k, v in groups.items():
        v = np.asarray(v, dtype=float)
        d = dict(zip(keys, k))
        d.update(mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                 sem=float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0, n=int(len(v)))
        for aux, vals in extra.get(k, {}).items():
            d[aux] = float(np.mean(vals))
        out.append(d)
    return out


def _interp_crossing(x: np.ndarray, d: np.ndarray) -> float | None:
    """First x where ``d`` (easy - hard) changes sign from < 0 to >= 0, linearly interpolated (log x); None if never."""
    for i in range(len(x) - 1):
        if d[i] < 0 <= d[i + 1]:
            lx0, lx1 = math.log(x[i]), math.log(x[i + 1])
            return float(math.exp(lx0 + (lx1 - lx0) * (-d[i]) / (d[i + 1] - d[i])))
    return None


def crossovers(pruning_summary: list[dict]) -> list[dict]:
    """Per ``alpha_total``: the ``alpha_prune`` (and ``f``) where keep-hard starts beating keep-easy (seed means)."""
    out = []
    for a in sorted({r["alpha_total"] for r in pruning_summary}):
        e = {r["f"]: r for r in pruning_summary if r["alpha_total"] == a and r["method"] == "easy"}
        h = {r["f"]: r for r in pruning_summary if r["alpha_total"] == a and r["method"] == "hard"}
        fs = np.array(sorted(set(e) & set(h) - {1.0}))
        if len(fs) == 0:
            continue
        d = np.array([e[f]["mean"] - h[f]["mean"] for f in fs])
        fx = _interp_crossing(fs, d)
        out.append(dict(alpha_total=a, f_cross=fx, alpha_prune_cross=None if fx is None else fx * a,
                        alpha_prune_max=float(fs.max() * a),
                        easy_better_everywhere=bool(np.all(d < 0)), hard_better_everywhere=bool(np.all(d >= 0))))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------

_COLORS = {"easy": "tab:blue", "hard": "tab:red", "random": "tab:gray"}


def _lam_style(lams):
    """Colour per lambda: negative (hard-pushing) reds, 0 black, positive (easy-pushing) blues/greens."""
    neg = sorted(l for l in lams if l < 0)
    pos = sorted(l for l in lams if l > 0)
    st = {0.0: "black"}
    for i, l in enumerate(reversed(neg)):
        st[l] = ["tab:red", "tab:orange", "tab:brown"][i % 3]
    for i, l in enumerate(pos):
        st[l] = ["tab:cyan", "tab:blue", "tab:green", "tab:purple"][i % 4]
    return st


def _lam_label(l):
    return "no SDC (lambda=0)" if l == 0 else (f"SDC lambda={l:g}" + (" (hard)" if l < 0 else ""))


_TICKS = [k * 10.0**e for e in range(-3, 4) for k in (1, 2, 3, 5)]
_YTICKS = [k * 10.0**e for e in range(-3, 4) for k in (1, 1.5, 2, 3, 5)]


def _log_axes(ax, x=True, y=True):
    """Log axes with plain-number ticks at 1-2-3-5 steps (no crowded 10^x minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    for on, axis, setter, ticks in ((x, ax.xaxis, ax.set_xscale, _TICKS), (y, ax.yaxis, ax.set_yscale, _YTICKS)):
        if on:
            setter("log")
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def _plot(prune_sum, distill_sum, xover, path, title=""):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    alphas = sorted({r["alpha_total"] for r in prune_sum})
    modes = list(dict.fromkeys(r["mode"] for r in distill_sum if r["mode"]))
    n_top = len(alphas)
    n_bottom = (1 if alphas else 0) + len(modes) + (1 if modes else 0)
    nrow = (1 if n_top else 0) + (1 if n_bottom else 0)
    ncol = max(n_top, n_bottom, 1)
    fig = Figure(figsize=(3.4 * ncol, 0.4 + 3.25 * nrow), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(nrow, 1), ncol, squeeze=False)
    top = axes[0] if n_top else []
    bottom = list(axes[-1]) if n_bottom else []
    for ax in list(top[n_top:]) + bottom[n_bottom:]:
        ax.set_visible(False)
    slots = bottom[1:] if alphas else bottom  # distillation panels, then the GraDN panel
    for ax, a in zip(top, alphas):
        for m in ("easy", "hard", "random"):
            rs = sorted((r for r in prune_sum if r["alpha_total"] == a and r["method"] == m), key=lambda r: r["f"])
            if rs:
                ax.errorbar([r["alpha_prune"] for r in rs], [r["mean"] for r in rs], yerr=[r["sem"] for r in rs],
                            marker="o", ms=3, capsize=2, color=_COLORS[m], label=f"keep {m}")
        c = next((c for c in xover if c["alpha_total"] == a), None)
        if c and c["alpha_prune_cross"]:
            ax.axvline(c["alpha_prune_cross"], color="k", ls=":", lw=1)
        _log_axes(ax)
        ax.set_title(f"pruning, alpha_total={a:g}", fontsize=9)
        ax.set_xlabel("alpha_prune = f * alpha_total")
        ax.grid(alpha=0.3, which="both")
    if alphas:
        top[0].set_ylabel("test error")
        top[0].legend(fontsize=7)
    if alphas and bottom:  # cross-over summary: where keep-hard starts to beat keep-easy (or a lower bound)
        ax = bottom[0]
        xs = [(c["alpha_total"], c["alpha_prune_cross"], c["f_cross"]) for c in xover if c["alpha_prune_cross"]]
        if xs:
            ax.plot([x[0] for x in xs], [x[1] for x in xs], "ko-", ms=5, label="alpha_prune at cross-over")
            ax.plot([x[0] for x in xs], [x[2] for x in xs], "s--", color="gray", ms=4, label="f at cross-over")
        lb = [(c["alpha_total"], c["alpha_prune_max"]) for c in xover
              if not c["alpha_prune_cross"] and c["easy_better_everywhere"]]
        if lb:
            ax.plot([x[0] for x in lb], [x[1] for x in lb], "k^", mfc="none", ms=7,
                    label="easy better at every f<1:\ncross-over above this alpha_prune")
        ax.plot(alphas, alphas, color="0.7", lw=0.8, label="alpha_prune = alpha_total")
        _log_axes(ax)
        ax.set_xlabel("alpha_total")
        ax.set_title("pruning: where keep-hard starts to win", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    lams = sorted({r["lambda_sdc"] for r in distill_sum if r["mode"]})
    st = _lam_style(lams)
    a = distill_sum[0]["alpha_total"] if distill_sum else float("nan")
    for ax, mode in zip(slots, modes):
        for m in ("easy", "hard", "random"):
            rs = sorted((r for r in distill_sum if r["method"] == f"real-{m}"), key=lambda r: r["alpha_syn"])
            ax.errorbar([r["alpha_syn"] for r in rs], [r["mean"] for r in rs], yerr=[r["sem"] for r in rs],
                        marker=".", ms=3, capsize=2, color=_COLORS[m], ls=":", alpha=0.8, label=f"real subset, {m}")
        for lam in lams:
            rs = sorted((r for r in distill_sum if r["mode"] == mode and r["lambda_sdc"] == lam),
                        key=lambda r: r["alpha_syn"])
            ax.errorbar([r["alpha_syn"] for r in rs], [r["mean"] for r in rs], yerr=[r["sem"] for r in rs],
                        marker="s", ms=3, capsize=2, color=st[lam], label=f"distilled, {_lam_label(lam)}")
        fe = np.mean([r["full_error"] for r in distill_sum])
        ax.axhline(fe, color="k", lw=0.8, ls="--", label="full data")
        _log_axes(ax)
        ax.set_title(f"distillation: {mode} matching (alpha_total={a:g})", fontsize=9)
        ax.set_xlabel("budget alpha_syn = M / N")
        ax.set_ylabel("test error")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=5.5)
    if modes:
        ax = slots[len(modes)]
        markers = ["s", "^", "v", "D"]
        for i, mode in enumerate(modes):
            rs = sorted((r for r in distill_sum if r["mode"] == mode and r["lambda_sdc"] == 0.0),
                        key=lambda r: r["alpha_syn"])
            ax.plot([r["alpha_syn"] for r in rs], [r["gradn"] for r in rs], marker=markers[i % 4], color="black",
                    ls="-" if i == 0 else "--", ms=4, label=f"distilled ({mode}), lambda=0")
        for m in ("easy", "hard", "random"):
            rs = sorted((r for r in distill_sum if r["method"] == f"real-{m}"), key=lambda r: r["alpha_syn"])
            ax.plot([r["alpha_syn"] for r in rs], [r["gradn"] for r in rs], ".:", color=_COLORS[m],
                    label=f"real subset, {m}")
        _log_axes(ax)
        ax.set_xlabel("budget alpha_syn = M / N")
        ax.set_ylabel("GraDN (expert panel)")
        ax.set_title("difficulty of the sets (lower = easier)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 4)
        ax.legend(fontsize=5.5, loc="upper center", ncol=2)
    if title:
        fig.suptitle(title, fontsize=9)
    from ..io import atomic_write
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


def _fmt(r):
    return f"{r['mean']:.3f} ± {r['sem']:.3f}" if r else ""


def _markdown_pruning(prune_sum, xover) -> list[str]:
    lines = ["## Pruning", "", "| alpha_total | f | alpha_prune | keep easy | keep hard | random | better |",
             "|---:|---:|---:|---:|---:|---:|:---|"]
    idx = {(r["alpha_total"], r["f"], r["method"]): r for r in prune_sum}
    for a in sorted({r["alpha_total"] for r in prune_sum}):
        for f in sorted({r["f"] for r in prune_sum if r["alpha_total"] == a}):
            e, h, rd = idx.get((a, f, "easy")), idx.get((a, f, "hard")), idx.get((a, f, "random"))
            better = "" if not (e and h) or f == 1.0 else ("easy" if e["mean"] < h["mean"] else "hard")
            ap = (e or h or rd)["alpha_prune"]
            lines.append(f"| {a:g} | {f:g} | {ap:.3g} | {_fmt(e)} | {_fmt(h)} | {_fmt(rd)} | {better} |")
    lines += ["", "Cross-over (keep-hard starts beating keep-easy; log-interpolated between fractions, seed means):", "",
              "| alpha_total | f at cross-over | alpha_prune at cross-over |", "|---:|---:|---:|"]
    for c in xover:
        if c["f_cross"] is None:
            txt = "easy better at all f < 1" if c["easy_better_everywhere"] else (
                "hard better at all f < 1" if c["hard_better_everywhere"] else "no clean crossing")
            lines.append(f"| {c['alpha_total']:g} | {txt} | |")
        else:
            lines.append(f"| {c['alpha_total']:g} | {c['f_cross']:.3g} | {c['alpha_prune_cross']:.3g} |")
    return lines


def _markdown(prune_sum, distill_sum, xover, effects, meta) -> str:
    lines = ["# Theory simulation (teacher-student perceptron)", "",
             f"N={meta['N']}, {meta['seeds']} seeds, theta_p={meta['theta_p_deg']:g} deg, student={meta['kind']}, "
             f"run time {meta['seconds']:.1f} s. Test error = arccos(cos(J, T))/pi, mean ± s.e.m. over seeds.", "",
             ]
    if prune_sum:
        lines += _markdown_pruning(prune_sum, xover)
    if distill_sum:
        modes = list(dict.fromkeys(r["mode"] for r in distill_sum if r["mode"]))
        lams = sorted({r["lambda_sdc"] for r in distill_sum if r["mode"]})
        cols = ["real-easy", "real-hard", "real-random"] + [f"{m} λ={l:g}" for m in modes for l in lams]

        def cell(b, c):
            if c.startswith("real-"):
                return next((r for r in distill_sum if r["alpha_syn"] == b and r["method"] == c), None)
            m, l = c.split(" λ=")
            return next((r for r in distill_sum if r["alpha_syn"] == b and r["mode"] == m
                         and abs(r["lambda_sdc"] - float(l)) < 1e-12), None)

        a = distill_sum[0]["alpha_total"]
        fe = np.mean([r["full_error"] for r in distill_sum])
        budgets = sorted({r["alpha_syn"] for r in distill_sum})
        lines += ["", f"## Distillation (alpha_total={a:g}, P={int(round(a * meta['N']))}; full-data error {fe:.3f})",
                  "", "Test error. `real-*`: real subsets of the same size M chosen by probe margin; "
                  "`<mode> λ=<lambda>`: distilled sets (λ = SDC weight; 0 = no penalty; < 0 pushes points harder).",
                  "", "| alpha_syn | M | " + " | ".join(cols) + " |", "|---:|---:|" + "---:|" * len(cols)]
        for b in budgets:
            M = next(r["M"] for r in distill_sum if r["alpha_syn"] == b)
            lines.append(f"| {b:g} | {M} | " + " | ".join(_fmt(cell(b, c)) for c in cols) + " |")
        if effects:
            elams = sorted({e["lambda_sdc"] for e in effects})
            ecols = [f"{m} λ={l:g}" for m in modes for l in elams]
            lines += ["", "Paired effect of the penalty, error(λ) − error(λ=0), mean ± s.e.m. over seeds "
                      "(negative = the penalty helps):", "",
                      "| alpha_syn | " + " | ".join(ecols) + " |", "|---:|" + "---:|" * len(ecols)]
            eidx = {(e["mode"], e["alpha_syn"], e["lambda_sdc"]): e for e in effects}
            for b in budgets:
                cells = []
                for m in modes:
                    for l in elams:
                        e = eidx.get((m, b, l))
                        cells.append(f"{e['diff']:+.3f} ± {e['sem']:.3f}" if e else "")
                lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
        lines += ["", "GraDN of the sets (mean per-sample logistic-loss gradient norm over the expert-trajectory "
                  "panel; lower = easier):", "", "| alpha_syn | " + " | ".join(cols) + " |",
                  "|---:|" + "---:|" * len(cols)]
        for b in budgets:
            cells = []
            for c in cols:
                r = cell(b, c)
                cells.append(f"{r['gradn']:.2f}" if r and "gradn" in r else "")
            lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: str, prune_rows: list[dict], distill_rows: list[dict], meta: dict) -> dict:
    """Write theory.png (figure), theory.csv (seed-averaged rows), theory.md (tables), theory.json (all, raw too)."""
    os.makedirs(out_dir, exist_ok=True)
    ps = summarize(prune_rows, ["section", "alpha_total", "f", "method"])
    for r in ps:
        r["alpha_prune"] = float(np.mean([x["alpha_prune"] for x in prune_rows
                                          if x["alpha_total"] == r["alpha_total"] and x["f"] == r["f"]]))
    ds = summarize(distill_rows, ["section", "alpha_total", "alpha_syn", "M", "method", "mode", "lambda_sdc"])
    xo = crossovers(ps)
    eff = sdc_effects(distill_rows)
    cols = ["section", "alpha_total", "f", "alpha_prune", "alpha_syn", "M", "method", "mode", "lambda_sdc",
            "mean", "std", "sem", "n", "gradn", "teacher_margin", "label_agreement"]
    from pathlib import Path

    from ..io import atomic_write  # every output appears whole or not at all

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in ps + ds:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write(os.path.join(out_dir, "theory.csv"), write_csv)
    md = _markdown(ps, ds, xo, eff, meta)
    atomic_write(os.path.join(out_dir, "theory.md"), lambda tmp: Path(tmp).write_text(md))
    rnd = lambda rows: [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    payload = json.dumps(dict(meta=meta, crossovers=xo, sdc_effects=rnd(eff), pruning=rnd(ps), distillation=rnd(ds),
                              raw=dict(pruning=rnd(prune_rows), distillation=rnd(distill_rows))),
                         separators=(",", ":"))
    atomic_write(os.path.join(out_dir, "theory.json"), lambda tmp: Path(tmp).write_text(payload))
    _plot(ps, ds, xo, os.path.join(out_dir, "theory.png"),
          title=f"Teacher-student perceptron, N={meta['N']}, {meta['seeds']} seeds, theta_p={meta['theta_p_deg']:g} deg, "
                f"student={meta['kind']}; error bars = s.e.m. over seeds")
    return dict(pruning=ps, distillation=ds, crossovers=xo, sdc_effects=eff, markdown=md)


# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``easydd theory`` options to ``parser`` (used by the package CLI and by :func:`main`)."""
    g = parser.add_argument_group("theory simulation (teacher-student perceptron)")
    g.add_argument("--N", type=int, default=100, help="input dimension (default 100)")
    g.add_argument("--alpha-total", type=float, nargs="*", default=[1.0, 2.0, 4.0, 8.0, 16.0],
                   help="P/N of the full data, one pruning panel each (default 1 2 4 8 16); "
                        "give none to skip pruning")
    g.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
                   help="kept fractions f (default 0.05 0.1 0.2 0.3 0.5 0.7 1)")
    g.add_argument("--theta-p", type=float, default=0.0,
                   help="probe angle from the teacher in degrees; 0 = perfect probe (default 0)")
    g.add_argument("--seeds", type=int, default=5, help="number of seeds averaged (default 5)")
    g.add_argument("--seed", type=int, default=0, help="base seed of all Generators (default 0)")
    g.add_argument("--kind", choices=["maxmargin", "logistic", "perceptron"], default="maxmargin",
                   help="student trained on the kept / distilled sets (default maxmargin)")
    g.add_argument("--budgets", type=float, nargs="*", default=[0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                   help="distillation budgets alpha_syn = M/N (default 0.05 0.1 0.2 0.5 1 2); "
                        "give none to skip distillation")
    g.add_argument("--distill-alpha-total", type=float, default=4.0,
                   help="P/N of the full data the sets are distilled from (default 4)")
    g.add_argument("--lambda-sdc", type=float, nargs="+", default=[-0.1, 0.0, 0.1, 1.0],
                   help="SDC weights; 0 (no penalty) is always added; < 0 pushes synthetic points harder "
                        "(default -0.1 0 0.1 1)")
    g.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["gradient", "trajectory"],
                   help="distillation variants (default gradient trajectory)")
    g.add_argument("--steps", type=int, default=200, help="distillation iterations (default 200)")
    g.add_argument("--out", default="runs/theory", help="output directory (default runs/theory)")
    return parser


def run_from_args(args: argparse.Namespace) -> dict:
    """Run both sweeps from parsed arguments, write the outputs in ``args.out`` and return their summaries."""
    t0 = time.time()
    theta = math.radians(args.theta_p)
    prune_rows = []
    if args.alpha_total:
        prune_rows = run_pruning_sweep(args.N, args.alpha_total, args.fractions, theta, args.seeds, args.kind,
                                       seed=args.seed)
    t1 = time.time()
    distill_rows = []
    lams = sorted(set([0.0] + [float(l) for l in args.lambda_sdc]))
    if args.budgets:
        distill_rows = run_distillation_sweep(args.N, args.distill_alpha_total, args.budgets, lams, args.modes,
                                              theta, args.seeds, args.kind, args.steps, seed=args.seed)
    t2 = time.time()
    meta = dict(N=args.N, alpha_total=list(args.alpha_total or []), fractions=list(args.fractions),
                theta_p_deg=args.theta_p, seeds=args.seeds, seed=args.seed, kind=args.kind,
                budgets=list(args.budgets or []), distill_alpha_total=args.distill_alpha_total,
                lambda_sdc=lams, modes=list(args.modes), steps=args.steps,
                seconds=round(t2 - t0, 2), seconds_pruning=round(t1 - t0, 2), seconds_distillation=round(t2 - t1, 2))
    res = write_outputs(args.out, prune_rows, distill_rows, meta)
    print(res["markdown"])
    print(f"wrote {os.path.join(args.out, 'theory')}.{{png,csv,md,json}} in {t2 - t0:.1f} s "
          f"(pruning {t1 - t0:.1f} s, distillation {t2 - t1:.1f} s)")
    res["meta"] = meta
    return res


def cli(args: argparse.Namespace) -> dict:
    """Alias of :func:`run_from_args`."""
    return run_from_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m easydd.paper.theory [options]``."""
    parser = argparse.ArgumentParser(prog="easydd theory", description="Teacher-student simulation of data pruning "
                                     "(Sorscher et al. 2022) and of dataset distillation with the SDC penalty.")
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
