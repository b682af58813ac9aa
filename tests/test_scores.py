"""DD-Ranking's scores: the formulas on known numbers, and `easydd eval --scores ddranking` end to end (tiny) with
the full-data and random baselines cached once."""
import json
import math

import pytest
import torch

from easydd.cli import main
from easydd.distilled import Distilled
from easydd.scores import augmentation_robust_score, ddranking_scores, hlr, ior, label_robust_score

NORM = math.e - math.exp(-1)


def test_hlr_and_ior_are_differences_of_fractions():
    assert hlr(0.99, 0.90) == pytest.approx(0.09)
    assert ior(0.90, 0.60) == pytest.approx(0.30)


def test_label_robust_score_on_known_numbers():
    # alpha = 0.5 * 0.3 - 0.5 * 0.09 = 0.105
    assert label_robust_score(0.09, 0.30) == pytest.approx((math.exp(0.105) - math.exp(-1)) / NORM)
    assert label_robust_score(0.0, 0.0) == pytest.approx((1 - math.exp(-1)) / NORM)  # 0.2689
    assert label_robust_score(0.0, 1.0, w=1.0) == pytest.approx(1.0)      # best possible
    assert label_robust_score(1.0, -1.0) == pytest.approx(0.0)            # worst possible
    assert label_robust_score(0.09, 0.30, w=0.0) == pytest.approx((math.exp(-0.09) - math.exp(-1)) / NORM)
    with pytest.raises(ValueError):
        label_robust_score(0.1, 0.1, w=1.5)


def test_augmentation_robust_score_on_known_numbers():
    # beta = 0.5 * (0.80 - 0.70) + 0.5 * (0.60 - 0.40) = 0.15
    assert augmentation_robust_score(0.80, 0.70, 0.60, 0.40) == pytest.approx((math.exp(0.15) - math.exp(-1)) / NORM)
    assert augmentation_robust_score(0.8, 0.7, 0.6, 0.4, gamma=1.0) == pytest.approx(
        (math.exp(0.1) - math.exp(-1)) / NORM)
    assert augmentation_robust_score(1, 0, 1, 0) == pytest.approx(1.0)
    assert augmentation_robust_score(0, 1, 0, 1) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="fraction, not a percentage"):
        augmentation_robust_score(80.0, 70.0, 60.0, 40.0)


def test_scores_bundle_stays_in_range():
    s = ddranking_scores({"real_hard": 0.99, "syn_hard": 0.85, "syn_aug": 0.88, "rdm_aug": 0.6,
                          "syn_naug": 0.8, "rdm_naug": 0.5})
    assert s["HLR"] == pytest.approx(0.14) and s["IOR"] == pytest.approx(0.28)
    assert 0 <= s["LRS"] <= 1 and 0 <= s["ARS"] <= 1


def test_eval_scores_ddranking_end_to_end_and_cached(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")
    monkeypatch.setenv("EASYDD_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    Distilled(torch.randn(20, 1, 8, 8, generator=g), torch.randn(20, 10, generator=g), None,
              {"dataset": "digits", "ipc": 2}).save(tmp_path / "run" / "distilled.safetensors")
    argv = ["eval", str(tmp_path / "run"), "--scores", "ddranking", "--models", "MLP", "--num-models", "1",
            "--epochs", "1", "--full-epochs", "1", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "HLR" in out and "ARS" in out
    r = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert 0 <= r["scores"]["LRS"] <= 1 and 0 <= r["scores"]["ARS"] <= 1
    assert all(0 <= v <= 1 for v in r["accuracies"].values())
    assert r["soft_labels"] is True and r["cache"]["full"] is None  # computed this time
    assert r["random_labels"].startswith("teacher logits (MLP, 1 epoch(s)")  # a soft set: soft random baseline
    assert len(list((tmp_path / "cache" / "panels").glob("*.safetensors"))) == 1  # the teacher, cached
    files = sorted(p.name for p in (tmp_path / "cache" / "scores").iterdir())
    assert len(files) == 3 and files[0].startswith("full-digits-MLP")
    # second run: the baselines come from the cache, with the same numbers
    assert main(argv) == 0
    capsys.readouterr()
    r2 = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert all(r2["cache"][k] for k in ("full", "random_aug", "random_naug"))
    for k in ("real_hard", "rdm_aug", "rdm_naug"):
        assert r2["accuracies"][k] == r["accuracies"][k]
    # a hard-label set of the same dataset and protocol reuses the full-data entry, its random baseline is hard
    Distilled(torch.randn(20, 1, 8, 8, generator=g), torch.arange(10).repeat_interleave(2), None,
              {"dataset": "digits", "ipc": 2}).save(tmp_path / "hard" / "distilled.safetensors")
    assert main([argv[0], str(tmp_path / "hard"), *argv[2:]]) == 0
    capsys.readouterr()
    r3 = json.loads((tmp_path / "hard" / "scores.json").read_text())
    assert r3["cache"]["full"] and r3["random_labels"] == "hard" and r3["cache"]["random_aug"] is None
    assert r3["accuracies"]["syn_hard"] == r3["accuracies"]["syn_aug"]
    assert main(["eval", str(tmp_path / "run"), "--scores", "nope", "--quiet"]) == 2
