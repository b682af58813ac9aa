"""easydd study: the selection-by-difficulty and difficulty-tracking plumbing on the tiny digits set."""
from __future__ import annotations

import json

import pytest
import torch

from easydd.paper import study
from easydd.cli import main as _main
from easydd.errors import UserError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")  # the CLI must not re-execute the test process
    monkeypatch.setenv("EASYDD_CACHE", str(tmp_path / "cache"))  # panels built here, not in the user's cache


def main(argv):
    return _main(["--threads", "1", *argv])


def test_step_budget():
    assert study.eval_epochs_for(10, 300, 300) == 300        # IPC 1 x 10 classes: one batch per epoch
    assert study.eval_epochs_for(500, 300, 300) == 150       # 2 batches per epoch
    assert study.eval_epochs_for(5000, 300, 300) == 15       # 20 batches per epoch
    assert study.eval_epochs_for(5000, 300, 0) == 300        # no budget
    assert study.eval_epochs_for(10 ** 6, 300, 300) == 1     # never zero epochs


def test_pick_by_rule_orders_by_score():
    pools = [torch.tensor([10, 11, 12, 13]), torch.tensor([20, 21, 22, 23])]
    scores = {0: torch.tensor([0.3, 0.1, 0.4, 0.2]), 1: torch.tensor([5.0, 1.0, 3.0, 2.0])}
    assert study.pick_by_rule(pools, scores, "easiest", 2, 0).tolist() == [11, 13, 21, 23]
    assert study.pick_by_rule(pools, scores, "hardest", 1, 0).tolist() == [12, 20]
    r0 = study.pick_by_rule(pools, scores, "random", 2, 0)
    assert r0.tolist() == study.pick_by_rule(pools, scores, "random", 2, 0).tolist()  # seeded, no global RNG
    assert set(r0[:2].tolist()) <= {10, 11, 12, 13} and set(r0[2:].tolist()) <= {20, 21, 22, 23}
    with pytest.raises(UserError):
        study.pick_by_rule(pools, scores, "easiest", 5, 0)


def test_crossover_sentence():
    summ = {"easiest": {1: {"mean": 60.0}, 10: {"mean": 80.0}, 100: {"mean": 90.0}},
            "hardest": {1: {"mean": 30.0}, 10: {"mean": 79.0}, 100: {"mean": 91.0}}}
    assert study.crossover(summ).startswith("cross-over between IPC 10 and IPC 100")
    summ["hardest"][100]["mean"] = 89.0
    assert study.crossover(summ).startswith("no cross-over: easiest beats hardest")


def test_selection_plumbing_on_digits(tmp_path):
    out = tmp_path / "study"
    argv = ["study", "selection", "--dataset", "digits", "--ipcs", "1", "3", "--seeds", "0", "--epochs", "3",
            "--max-steps", "2", "--eval-model", "ConvNetW32", "--panel-model", "ConvNetW32", "--panel-models", "1",
            "--panel-subset", "200", "--pool", "20", "--out", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "selection-digits.jsonl").read_text().splitlines()]
    assert {(r["ipc"], r["method"]) for r in rows} == {(i, m) for i in (1, 3) for m in study.RULES}
    assert all(r["eval_epochs"] == 2 for r in rows)  # 10-30 images: one batch per epoch, 2-step budget
    by = {(r["ipc"], r["method"]): r for r in rows}
    assert by[(3, "easiest")]["sel_gradn_mean"] < by[(3, "random")]["sel_gradn_mean"] \
        < by[(3, "hardest")]["sel_gradn_mean"]
    assert list((tmp_path / "cache" / "panels").glob("*-scores-*.safetensors"))  # pool scores cached
    for f in ("selection.md", "selection.png", "selection.json"):
        assert (out / f).is_file()
    md = (out / "selection.md").read_text()
    assert "| easiest |" in md and "IPC 3" in md and "digits:" in md
    # resumable: a second run finds everything done and trains nothing
    assert main(argv) == 0
    assert len((out / "selection-digits.jsonl").read_text().splitlines()) == 6
    # the report reads the study's JSON
    assert main(["report", str(out / "selection.json"), "--out", str(out / "r.md")]) == 0
    assert "Easiest (GraDN)" in (out / "r.md").read_text()


def test_selection_user_errors(tmp_path):
    assert main(["study", "selection", "--dataset", "digits", "--ipcs", "500", "--out", str(tmp_path)]) == 2
    assert main(["study", "selection", "--replot", "--out", str(tmp_path / "none")]) == 2


def test_difficulty_plumbing_on_digits(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "difficulty", "--dataset", "digits", "--ipc", "1", "--methods", "dm", "mtt",
                 "--iterations", "2", "--track-every", "1", "--model", "ConvNetW32", "--panel-models", "1",
                 "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    data = json.loads((out / "difficulty-digits.json").read_text())
    runs = {r["method"]: r for r in data["runs"]}
    assert runs["dm"]["status"] == "ok" and [p[0] for p in runs["dm"]["curve"]] == [0, 1, 2]
    assert runs["mtt"]["status"] == "failed" and runs["mtt"]["reason"]  # no expert buffer for digits
    md = (out / "difficulty-digits.md").read_text()
    assert "| 1 | DM | distribution | ConvNetW32 | shared |" in md and "not run" in md
    assert runs["dm"]["norm_ratio"] > 0 and runs["dm"]["hard_ratio"] > 0
    assert (out / "difficulty-digits.png").is_file()


def test_every_method_starts_from_the_same_images_at_one_seed(digits):
    # the difficulty study compares methods' GraDN curves from one start; base.Method draws it by seed alone
    from easydd.config import build_config
    from easydd.methods import get_method, method_params
    imgs = {}
    for m in ("dc", "dm"):
        cfg = build_config(None, {"dataset": "digits", "ipc": 2, "method": m, "model": "ConvNetW32"}, method_params)
        meth = get_method(m)(cfg, digits)
        meth.init_synthetic()
        imgs[m] = meth.images.detach()
    assert torch.equal(imgs["dc"], imgs["dm"])
