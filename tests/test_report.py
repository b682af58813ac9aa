"""easydd report: a paper-style table from run directories and results files (no training, milliseconds)."""
from __future__ import annotations

import json

import pytest
import yaml

from easydd.paper import records, report
from easydd.cli import main as _main
from easydd.errors import UserError


@pytest.fixture(autouse=True)
def _no_reexec(monkeypatch):
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")  # the CLI must not re-execute the test process


def main(argv):
    return _main(["--threads", "1", *argv])


def _run(tmp_path, name, method="dsa", dataset="mnist", ipc=1, seed=0, lam=0.0, accs=(0.80, 0.84), epochs=300,
         with_config_in_metrics=True):
    d = tmp_path / name
    d.mkdir(parents=True)
    cfg = {"dataset": dataset, "ipc": ipc, "method": method, "seed": seed, "lambda_sdc": lam, "iterations": 100,
           "eval_models": ["ConvNet"], "note": "1000 -> 100 iterations"}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    ev = {"split": "test", "epochs": epochs, "models": {"ConvNet": {"accs": list(accs),
                                                                   "mean": sum(accs) / len(accs), "std": 0.0}}}
    metrics = {"last": ev}
    if with_config_in_metrics:
        metrics["config"] = cfg
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_two_fake_runs_render_a_table(tmp_path):
    a = _run(tmp_path, "a", seed=0, accs=(0.80, 0.84))
    b = _run(tmp_path, "b", seed=1, accs=(0.86, 0.90), with_config_in_metrics=False)  # settings from config.yaml
    recs, _ = report.load_records([a, b])
    md = report.render(recs, title="T")
    lines = md.splitlines()
    assert "| Method | MNIST 1 |" in lines
    row = next(line for line in lines if line.startswith("| DSA |"))
    # seeds' means 82 and 88 -> 85.00 +- 4.24, published DSA MNIST IPC1 88.7 beside it
    assert "85.00 ± 4.24" in row and "[88.7]" in row
    assert "1000 -> 100 iterations" in md


def test_sdc_rows_columns_and_single_run_marker(tmp_path):
    _run(tmp_path / "runs", "base", method="dc", ipc=10, accs=(0.95, 0.96))
    _run(tmp_path / "runs", "sdc", method="dc", ipc=10, lam=1.0, accs=(0.97, 0.97))
    _run(tmp_path / "runs", "fm", method="dc", dataset="fashion_mnist", ipc=1, accs=(0.70,))
    recs, _ = report.load_records([tmp_path / "runs"])  # a folder of runs is searched
    md = report.render(recs, title=None)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.index("MNIST 10") < header.index("FashionMNIST 1")
    base = next(line for line in md.splitlines() if line.startswith("| DC |"))
    sdc = next(line for line in md.splitlines() if line.startswith("| DC +SDC |"))
    assert "95.50 ± 0.71†" in base and "[97.4]" in base and "[70.5]" in base
    assert "97.00 ± 0.00† (λ=1)" in sdc and "[" not in sdc  # published numbers only beside the base method


def test_jsonl_results_best_lambda_on_validation(tmp_path):
    rows = [dict(dataset="mnist", ipc=1, method="dsa", lambda_sdc=0.0, seed=s, test_accs=[0.8 + s / 100],
                 test_mean=0.8 + s / 100, val_mean=0.8) for s in (0, 1)]
    rows += [dict(dataset="mnist", ipc=1, method="dsa", lambda_sdc=10.0, seed=0, test_accs=[0.99], val_mean=0.70),
             dict(dataset="mnist", ipc=1, method="dsa", lambda_sdc=1.0, seed=0, test_accs=[0.85], val_mean=0.90),
             dict(dataset="mnist", ipc=1, method="dsa", lambda_sdc=1.0, seed=1, test_accs=[0.87], val_mean=0.91)]
    f = tmp_path / "results.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "gradn_curves.png").write_bytes(b"\x89PNG")
    out = tmp_path / "out" / "results.md"
    assert main(["report", str(f), "--out", str(out)]) == 0
    md = out.read_text()
    sdc = next(line for line in md.splitlines() if line.startswith("| DSA +SDC |"))
    assert "86.00 ± 1.41 (λ=1)" in sdc  # lambda=1 wins on validation although lambda=10 is better on test
    assert "../gradn_curves.png" in md  # figure beside the JSONL, linked relative to --out
    md_all = report.render(report.load_records([f])[0], sdc="all")
    assert "DSA +SDC λ=10" in md_all and "DSA +SDC λ=1 " in md_all


def test_best_lambda_ignores_seeds_without_a_validation_score():
    rec = report.Record
    # the benchmark scores validation only on the seed that chose lambda; later seeds carry val_mean=None
    by_lam = {1.0: [rec(dataset="mnist", ipc=1, method="dm", lambda_sdc=1.0, seed=0, accs=[0.9], val_mean=0.6),
                    rec(dataset="mnist", ipc=1, method="dm", lambda_sdc=1.0, seed=1, accs=[0.9], val_mean=None)],
              10.0: [rec(dataset="mnist", ipc=1, method="dm", lambda_sdc=10.0, seed=0, accs=[0.9],
                         val_mean=0.5)]}
    assert report._best_on_val(by_lam) == 1.0
    by_lam[10.0][0].val_mean = None  # a weight with no score at all: no choice can be made
    assert report._best_on_val(by_lam) is None


def test_study_json_and_readme_splice(tmp_path):
    study = {"records": [dict(dataset="mnist", ipc=500, method="hardest", seed=0, accs=[0.97, 0.98],
                              eval_epochs=15)], "figure": "selection.png"}
    (tmp_path / "selection.png").write_bytes(b"\x89PNG")
    f = tmp_path / "sel.json"
    f.write_text(json.dumps(study))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results\n\nRESULTS_PLACEHOLDER\n\n## After\n")
    assert main(["report", str(f), "--readme", str(readme), "--title", "Selection"]) == 0
    text = readme.read_text()
    assert "| Hardest (GraDN) | 97.50 ± 0.71† |" in text  # ConvNet by default: no model in the label and "(selection.png)" in text and "## After" in text
    assert main(["report", str(f), "--readme", str(readme)]) == 0  # regenerated in place between the markers
    text2 = readme.read_text()
    assert text2.count(report.START) == 1 and "## Results\n\n" in text2 and "## After" in text2


def test_user_errors(tmp_path, capsys):
    with pytest.raises(UserError):
        report.load_records([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    d = tmp_path / "noeval"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump({"dataset": "mnist", "ipc": 1, "method": "dc"}))
    (d / "metrics.json").write_text(json.dumps({"last": {}}))
    with pytest.raises(UserError, match="easydd eval"):
        records.record_from_run_dir(d)


def test_published_table():
    assert report.published("dc", "mnist", 50) == 98.8
    assert report.published("DSA", "fashion_mnist", 10) == 84.6
    assert report.published("datm", "cifar100", 50) == 55.0
    assert report.published("dc", "cifar100", 50) is None


def test_a_run_met_twice_counts_once(tmp_path):
    d = _run(tmp_path / "runs", "dsa-mnist-ipc1-s0", accs=(0.80, 0.84))
    f = tmp_path / "results.jsonl"
    f.write_text(json.dumps(dict(dataset="mnist", ipc=1, method="dsa", lambda_sdc=0.0, seed=0, test_accs=[0.80, 0.84],
                                 iterations=100, eval_epochs=300, run_dir=str(d))) + "\n")
    recs, _ = report.load_records([f, tmp_path / "runs"])
    assert len(recs) == 1


def test_other_architecture_is_labelled_and_a_lone_network_has_no_spread(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps([dict(dataset="mnist", ipc=1, method="random", seed=0, accs=[0.5], model="ConvNetW32")]))
    md = report.render(report.load_records([f])[0])
    assert "| Random (ConvNetW32) | 50.00 |" in md and "without ±" in md
