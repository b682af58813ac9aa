"""Figures without pyplot: the library never switches the caller's matplotlib backend (a notebook keeps its own)
and never leaves figures in pyplot's global registry."""
from __future__ import annotations


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """(figure, axes) like ``plt.subplots``, on a figure that belongs to nobody; save it with ``fig.savefig``."""
    from matplotlib.figure import Figure
    figsize = kw.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)
