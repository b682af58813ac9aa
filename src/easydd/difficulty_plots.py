"""Figures of difficulty scores: histograms of GraDN and EL2N (``easydd difficulty`` writes difficulty.png).

Drawn on an explicit ``matplotlib.figure.Figure`` that belongs to nobody: the caller's backend and pyplot's figure
registry are never touched.
"""
from __future__ import annotations

import math
import os

import torch


def plot_score_histograms(path: str | os.PathLike, title: str,
                          scores: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Histograms of GraDN and EL2N side by side, one series per entry of ``scores`` (label -> (gradn, el2n)),
    written atomically to ``path`` as a PNG."""
    from matplotlib.figure import Figure

    from .io import atomic_write

    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
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
