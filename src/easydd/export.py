"""``easydd export RUN --format ddranking --out DIR``: a distilled set in the files other tools take.

ddranking: ``images.pt`` (float (N, C, H, W), normalised with the dataset's mean/std: the space DD-Ranking's
evaluators train in), ``labels.pt`` (hard class indices, or soft-label logits (N, K)), ``lr.pt`` when the set
learned a step size, and ``ddranking.json`` saying all this. See :mod:`easydd.interop`.
"""
from __future__ import annotations

from .errors import UserError


def add_arguments(p) -> None:
    p.add_argument("run", help="a run directory or a distilled .safetensors file")
    p.add_argument("--format", default="ddranking", help="ddranking (images.pt, labels.pt, lr.pt)")
    p.add_argument("--out", required=True, help="the folder to create (must not exist or be empty)")


def run_from_args(a) -> int:
    from .interop import export_ddranking
    if a.format != "ddranking":
        raise UserError(f"unknown export --format {a.format!r}; easydd exports: ddranking")
    out = export_ddranking(a.run, a.out)
    print(f"wrote {out}/images.pt, labels.pt" + (", lr.pt" if (out / "lr.pt").exists() else "")
          + " and ddranking.json")
    return 0
