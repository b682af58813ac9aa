"""logger=tensorboard: the same scalars as curves.csv and the synthetic images every k iterations, as events beside
curves.csv; an unknown logger or a missing tensorboard package is one clear error."""
import csv
import importlib.util

import pytest

from easydd.config import build_config
from easydd.errors import UserError
from easydd.methods import method_params

TINY = dict(method="dsa", dataset="digits", ipc=1, iterations=4, checkpoint_every=0, batch_real=8)


def test_tensorboard_events_hold_the_curves_and_the_images(tmp_path, digits):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from easydd.distill import distill
    cfg = build_config(None, dict(TINY, logger="tensorboard", log_images_every=2, out_dir=str(tmp_path)),
                       method_params)
    res = distill(cfg, digits, progress=False, final_eval=False)
    events = list(res.run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1 and (res.run_dir / "curves.csv").exists() and (res.run_dir / "curves.png").exists()
    acc = EventAccumulator(str(res.run_dir), size_guidance={"images": 0, "scalars": 0}).Reload()
    with open(res.run_dir / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    csv_loss = [(int(r["iteration"]), float(r["loss"])) for r in rows if r.get("loss")]
    tb_loss = [(e.step, e.value) for e in acc.Scalars("curves/loss")]
    assert [s for s, _ in tb_loss] == [s for s, _ in csv_loss] == [1, 2, 3, 4]
    assert all(v == pytest.approx(c, rel=1e-6) for (_, v), (_, c) in zip(tb_loss, csv_loss))
    steps = [e.step for e in acc.Images("synthetic")]
    assert steps[:2] == [2, 4] and steps[-1] == 4  # every 2 iterations, and the final set
    assert acc.Images("synthetic")[0].width > 8  # a grid of the 10 images, not one


def test_unknown_logger_is_a_user_error():
    with pytest.raises(UserError, match="logger must be one of csv, tensorboard"):
        build_config(None, dict(TINY, logger="wandb"), method_params)
    with pytest.raises(UserError, match="log_images_every"):
        build_config(None, dict(TINY, logger="csv", log_images_every=-1), method_params)


def test_missing_tensorboard_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else
                        real(name, *a))
    with pytest.raises(UserError, match=r"pip install easydd\[tensorboard\]"):
        build_config(None, dict(TINY, logger="tensorboard"), method_params)
    assert build_config(None, dict(TINY), method_params).logger == "csv"  # the default needs nothing
