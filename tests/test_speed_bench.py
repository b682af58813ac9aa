"""benchmarks/speed.py's scaled IPC-10 timing: an iteration of k outer steps scaled to the reference schedule."""
import importlib.util
import time
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("speed_bench", Path(__file__).parents[1] / "benchmarks" / "speed.py")
speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speed)


class FakeGradientMethod:
    """k outer steps of `match` seconds with an inner loop of `inner` seconds between consecutive ones."""
    def __init__(self, k, match, inner):
        self.ipc, self.outer, self.match, self.inner = 10, k, match, inner

    def _train_net(self, *args):
        time.sleep(self.inner)

    def step(self, it):
        for ol in range(self.outer):
            time.sleep(self.match)
            if ol < self.outer - 1:
                self._train_net(None, None, None)


def test_scaled_outer_steps_recovers_the_whole_schedule():
    m = FakeGradientMethod(k=2, match=0.02, inner=0.05)
    row = speed.scaled_outer_steps(m, n=2, fast=True)
    # the reference IPC 10 schedule: 10 matches and 9 inner loops
    assert row["outer_loop"] == 10 and row["outer_steps_timed"] == 2
    assert row["s_per_it"] == pytest.approx(10 * 0.02 + 9 * 0.05, rel=0.25)


def test_scaled_outer_steps_needs_at_least_two_outer_steps():
    with pytest.raises(SystemExit, match="between 2 and 9"):
        speed.scaled_outer_steps(FakeGradientMethod(k=1, match=0.0, inner=0.0), n=1, fast=True)


def test_out_name_is_a_bare_results_name():
    assert speed._out_name("speed-epyc") == "speed-epyc"
    for bad in ("", "../speed", "results/speed", "speed.json", ".hidden"):
        with pytest.raises(Exception, match="bare name"):
            speed._out_name(bad)


def test_reference_note_says_whether_the_ratio_compares_like_with_like():
    assert "like with like" in speed.reference_note("AMD EPYC")
    assert "mixes two CPUs" in speed.reference_note("Intel(R) Xeon(R) Processor")
