"""The teacher-student perceptron of Sorscher et al. 2022: data, a probe, margins, pruning, students, test error.

NumPy only; every random draw comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


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
