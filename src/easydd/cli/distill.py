"""``easydd distill [--preset P] key=value ...``: distil a dataset, evaluate, write runs/<name>/."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--preset", default=None, help="a preset name from `easydd info`")
    p.add_argument("overrides", nargs="*", help="key=value settings, e.g. method=dsa ipc=10 lambda_sdc=0.01")
    p.add_argument("--out", "--out-dir", default=None, help="output root (default runs/)")
    p.add_argument("--name", default=None, help="run name (default <method>-<dataset>-ipc<k>[-sdc<l>]-s<seed>)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--quiet", action="store_true")


def run_from_args(a) -> int:
    from ..config import build_config, parse_overrides
    from ..distill import distill
    from ..methods import method_params
    over = parse_overrides(a.overrides)
    if a.out:
        over["out_dir"] = a.out
    if a.name:
        over["name"] = a.name
    cfg = build_config(a.preset, over, method_params)
    res = distill(cfg, progress=not a.quiet, resume=not a.no_resume, final_eval=not a.no_eval)
    print(f"run directory: {res.run_dir}")
    if res.metrics.get("last"):
        from ..evaluate import format_result
        print(format_result(res.metrics["last"]))
    return 0
