"""Sweeps over the simulation: pruning (easy / hard / random fractions) and distillation (budgets x variants x SDC
weights), and their seed averages, paired SDC effects and cross-overs."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .distillation import distill_linear, expert_trajectories, grad_norm_panel
from .model import margins, probe, prune, teacher_student, test_error, train_student


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
