"""The simulation's figure (theory.png): pruning panels, the cross-over summary, distillation panels, GraDN.

Drawn on an explicit ``matplotlib.figure.Figure`` with its own Agg canvas: pyplot's global state and the caller's
backend are never touched.
"""

from __future__ import annotations

import numpy as np


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
    """theory.png: a pruning panel per alpha_total on top; below, the cross-over summary, a distillation panel per
    mode and the sets' GraDN."""
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
    _plot_pruning(top, alphas, prune_sum, xover)
    if alphas and bottom:
        _plot_crossovers(bottom[0], alphas, xover)
    _plot_distillation(slots, modes, distill_sum)
    if modes:
        _plot_gradn(slots[len(modes)], modes, distill_sum)
    if title:
        fig.suptitle(title, fontsize=9)
    from ...io import atomic_write
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


def _plot_pruning(top, alphas, prune_sum, xover) -> None:
    """One panel per alpha_total: test error of keep easy / hard / random against alpha_prune."""
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


def _plot_crossovers(ax, alphas, xover) -> None:
    """Cross-over summary: where keep-hard starts to beat keep-easy (or a lower bound)."""
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


def _plot_distillation(slots, modes, distill_sum) -> None:
    """One panel per mode: test error of the distilled sets (one curve per lambda) and of real subsets."""
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


def _plot_gradn(ax, modes, distill_sum) -> None:
    """GraDN of the sets against the budget: distilled (lambda = 0, one line per mode) and real subsets."""
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
