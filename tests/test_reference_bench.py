"""benchmarks/reference/sdc_pair.py: SDC arms paired with the reference base runs of the same seed."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from easydd.distilled import Distilled

HERE = Path(__file__).parents[1] / "benchmarks" / "reference"
sys.path.insert(0, str(HERE))  # the script imports its neighbour table.py
spec = importlib.util.spec_from_file_location("sdc_pair", HERE / "sdc_pair.py")
sdc_pair = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sdc_pair)


class ScalePanel:
    """GraDN of a set = the mean absolute pixel, so an arm's difficulty is whatever its images say."""
    def gradn(self, x, y):
        return x.abs().flatten(1).mean(1)


def fake_run(root: Path, name: str, acc: float | None, scale: float) -> None:
    d = root / name
    Distilled(torch.full((2, 1, 4, 4), scale), torch.arange(2), None, {"dataset": "toy", "ipc": 1}).save(
        d / "distilled.safetensors")
    if acc is not None:
        (d / "metrics.json").write_text(json.dumps({"last": {"models": {"ConvNet": {"mean": acc}}}}))


def test_pairs_finished_seeds_only_and_reports_the_paired_interval(tmp_path):
    for s, (base, sdc) in enumerate([(0.70, 0.72), (0.71, 0.725), (0.69, 0.705)]):
        fake_run(tmp_path, f"dsa-toy-ipc1-s{s}-fast", base, 2.0)
        fake_run(tmp_path, f"dsa-toy-ipc1-s{s}-fast-sdc1", sdc, 0.5)
    fake_run(tmp_path, "dsa-toy-ipc1-s3-fast", 0.70, 2.0)
    fake_run(tmp_path, "dsa-toy-ipc1-s3-fast-sdc1", None, 0.5)  # still running: not paired
    fake_run(tmp_path, "dsa-toy-ipc1-s0-fast-other", 0.10, 1.0)  # not an SDC arm: ignored
    [rec] = sdc_pair.collect(tmp_path, panel_for=lambda name: ScalePanel())
    assert rec["weight"] == 1.0 and [p["seed"] for p in rec["seeds"]] == [0, 1, 2]
    assert rec["unfinished_seeds"] == [3] and rec["seeds_up"] == 3 and rec["seeds_down"] == 0
    assert rec["paired_diff_mean"] == pytest.approx(5 / 3)  # +2.0, +1.5, +1.5 points
    lo, hi = rec["paired_diff_ci95"]
    assert 0 < lo < 5 / 3 < hi
    assert rec["seeds"][0]["panel_gradn_base"] == pytest.approx(2.0)
    assert rec["seeds"][0]["panel_gradn_sdc"] == pytest.approx(0.5)
    md = sdc_pair.table([rec])
    assert "+1.67 [" in md and "3 up / 0 down" in md and "unfinished: 3" in md and "-75 %" in md


def test_a_cell_with_no_finished_pair_is_listed_without_numbers(tmp_path):
    fake_run(tmp_path, "dc-toy-ipc1-s0-fast", 0.70, 2.0)
    fake_run(tmp_path, "dc-toy-ipc1-s0-fast-sdc0.3", None, 0.5)
    [rec] = sdc_pair.collect(tmp_path, panel_for=lambda name: pytest.fail("no pair needs a panel"))
    assert rec["weight"] == 0.3 and rec["seeds"] == [] and rec["unfinished_seeds"] == [0]
    assert rec["paired_diff_mean"] is None and rec["paired_diff_ci95"] == [None, None]
    assert "NaN" not in json.dumps(rec) and "unfinished: 0" in sdc_pair.table([rec])
