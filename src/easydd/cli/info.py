"""``easydd info``: datasets (and where each would be loaded from now), methods, models, presets."""
from __future__ import annotations


def add_arguments(p) -> None:
    """`info` takes no arguments."""


def run_from_args(a) -> int:
    from ..config import all_presets
    from ..methods import available_methods
    from ..nets import MODEL_NAMES
    print("datasets (where each would be loaded from now):")
    try:
        from ..data import find_sources
        for k, v in find_sources().items():
            print(f"  {k:15s} {v or 'not found locally (easydd can download it: set EASYDD_DOWNLOAD=1)'}")
    except ImportError as e:
        print(f"  (data module unavailable: {e})")
    methods = ", ".join(sorted(available_methods()))
    print(f"methods: {methods}; selection: random, herding, kcenter, easiest, hardest")
    print("models: " + ", ".join(MODEL_NAMES))
    presets = all_presets()
    print(f"presets ({len(presets)}):")
    for k, v in sorted(presets.items()):
        note = f"  [{v['note']}]" if v.get("note") else ""
        print(f"  {k:32s} {v['_file']}{note}")
    return 0
