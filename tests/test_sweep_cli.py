"""`easydd sweep`: the grid runs, the weight is chosen on validation, a rerun runs only what is missing, parallel
jobs give the same records, bad grids are one line and exit 2."""
import json

import pytest


TINY = ["dataset=digits", "iterations=1", "eval_num_models=1", "eval_epochs=1", "val_epochs=1", "sdc_net=fresh",
        "batch_real=8", "checkpoint_every=0"]


from conftest import run_cli as run  # noqa: E402  (one copy of the in-process CLI call)


def sweep(capsys, out, *extra):
    return run(capsys, "sweep", "--preset", "dsa-mnist-ipc1-cpu", "--weights", "0", "0.1", "--seeds", "0", "1",
               "--val-models", "1", "--out", str(out), *extra, *TINY)


def records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_sweep_runs_the_grid_and_resumes_only_what_is_missing(capsys, tmp_path):
    out = tmp_path / "sw"
    code, stdout, err = sweep(capsys, out)
    assert code == 0, err
    recs = records(out)
    cell = json.loads((out / "cell.json").read_text())
    # seed 0 scores both weights on validation; seed 1 runs the base and (if chosen) the SDC weight
    assert {(r["weight"], r["seed"]) for r in recs if r["seed"] == 0} == {(0.0, 0), (0.1, 0)}
    assert all(r["val_mean"] is not None for r in recs if r["seed"] == 0)
    expected = 4 if cell["weight"] > 0 else 3
    assert len(recs) == expected
    assert cell["seeds"] == [0, 1] and set(cell["val_by_weight"]) == {"0", "0.1"}
    assert "validation chose sdc_ratio=" in stdout
    # a rerun of the same command runs nothing
    code, stdout, err = sweep(capsys, out)
    assert code == 0, err
    assert len(records(out)) == expected and "...\n" not in stdout
    assert json.loads((out / "cell.json").read_text())["acc_base"] == cell["acc_base"]
    # a sweep killed while writing its last record: the partial line is dropped and only that point reruns
    lines = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    code, stdout, err = sweep(capsys, out)
    assert code == 0, err
    assert stdout.count("...\n") == 1
    again = records(out)
    assert len(again) == expected and again[-1]["test_accs"] == recs[-1]["test_accs"]


def test_parallel_jobs_give_the_same_records(capsys, tmp_path):
    code, _, err = sweep(capsys, tmp_path / "one")
    assert code == 0, err
    code, _, err = sweep(capsys, tmp_path / "two", "--jobs", "2")
    assert code == 0, err
    one = {(r["weight"], r["seed"]): r for r in records(tmp_path / "one")}
    two = {(r["weight"], r["seed"]): r for r in records(tmp_path / "two")}
    assert one.keys() == two.keys()
    for k in one:
        assert set(one[k]) == set(two[k])
        assert one[k]["test_accs"] == two[k]["test_accs"] and one[k]["val_mean"] == two[k]["val_mean"]


@pytest.mark.parametrize("extra,needle", [
    (["--weights", "0", "-1"], "weights must be finite numbers >= 0"),
    (["--weights", "0", "1", "--seeds"], "at least one weight and one seed"),
    (["--weights", "0", "1", "--weight-key", "lambda"], "lambda_sdc or sdc_ratio"),
    (["--weights", "0.1", "1"], "must contain 0"),
    (["--weights", "0", "x"], "--weights takes numbers"),
    (["--weights", "0", "1", "--jobs", "0"], "--jobs must be >= 1"),
    ([], "give the weight grid"),
    (["--weights", "0", "1", "name=x"], "the sweep names its runs"),
    (["--weights", "0", "1", "seed=3"], "give it with --seeds"),
    (["--weights", "0", "0.1", "1", "--confirm"], "the one weight it confirms"),
    (["--weights", "0", "1", "--confirm", "--grid-only-if-zero"], "drop one of them"),
    (["--weights", "0", "1", "--confirm", "--val-models", "3"], "--val-models has no use there"),
])
def test_bad_grids_are_one_line_exit_2(capsys, tmp_path, extra, needle):
    code, _, err = run(capsys, "sweep", "--preset", "dsa-mnist-ipc1-cpu", "--out", str(tmp_path / "s"), *extra,
                       *TINY)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("easydd: error:") and needle in lines[0]
    assert not (tmp_path / "s").exists()


def test_one_rule_chooses_the_weight_everywhere():
    """Highest validation score, a tie to the smaller weight, unscored weights left out (sweep, report and the
    benchmark scripts all call this one function)."""
    from easydd.sweep import choose_on_validation
    assert choose_on_validation({0.0: 0.50, 0.1: 0.61, 1.0: 0.61}) == 0.1
    assert choose_on_validation({10.0: 0.2, 1.0: 0.2}) == 1.0
    assert choose_on_validation({0.0: None, 0.3: 0.4}) == 0.3
    assert choose_on_validation({}) is None


def _fake_runs(monkeypatch, val_sdc: float) -> list:
    import easydd.sweep as sw
    calls = []

    def fake_run_one(preset, overrides, weight_key, w, seed, **kw):
        calls.append((w, seed, kw["val_models"]))
        return {"method": "dsa", "dataset": "mnist", "ipc": 1, "sdc_net": "trained", "weight": w, "seed": seed,
                "test_mean": 0.5 + 0.01 * seed + (0.02 if w else 0),
                "val_mean": (val_sdc if w else 0.5) if kw["val_models"] else None,
                "panel_gradn": 1.0 - 0.5 * bool(w), "rho_last20pct": None, "iterations": 1, "eval_epochs": 1,
                "eval_num_models": 1, "note": "", "device": "cpu"}
    monkeypatch.setattr(sw, "run_one", fake_run_one)
    return calls


def test_confirm_runs_the_pairs_of_a_given_weight_without_a_grid(monkeypatch, tmp_path):
    import easydd.sweep as sw
    from easydd.errors import UserError
    calls = _fake_runs(monkeypatch, val_sdc=0.1)  # validation would refuse this weight: confirm does not ask it
    cell = sw.sweep("dsa-mnist-ipc1-cpu", [0, 0.3], [5, 6], records=tmp_path / "r.jsonl", dataset=object(),
                    confirm=True, log=lambda m: None)
    assert sorted(calls) == [(0.0, 5, 0), (0.0, 6, 0), (0.3, 5, 0), (0.3, 6, 0)]
    assert cell["weight"] == 0.3 and cell["seeds"] == [5, 6] and cell["confirm"] and cell["seeds_up"] == 2
    with pytest.raises(UserError, match="e.g. --weights 0 0.3"):
        sw.sweep("dsa-mnist-ipc1-cpu", [0, 0.1, 0.3], [5], records=tmp_path / "r.jsonl", dataset=object(),
                 confirm=True)


@pytest.mark.parametrize("grid_only,val_sdc,ran", [
    (False, 0.40, {(0.0, 0), (0.3, 0), (0.0, 1), (0.0, 2)}),   # validation chose 0: base on every seed
    (True, 0.40, {(0.0, 0), (0.3, 0)}),                        # ... or the grid alone
    (True, 0.60, {(0.0, 0), (0.3, 0), (0.0, 1), (0.0, 2), (0.3, 1), (0.3, 2)}),  # a weight > 0: all pairs
])
def test_grid_only_if_zero_skips_only_identical_pairs(monkeypatch, tmp_path, grid_only, val_sdc, ran):
    import easydd.sweep as sw
    raw = _fake_runs(monkeypatch, val_sdc)
    cell = sw.sweep("dsa-mnist-ipc1-cpu", [0, 0.3], [0, 1, 2], records=tmp_path / "r.jsonl", dataset=object(),
                    grid_only_if_zero=grid_only, log=lambda m: None)
    calls = [(w, seed) for w, seed, _ in raw]
    assert set(calls) == ran and len(calls) == len(ran)
    if val_sdc < 0.5:
        assert cell["weight"] == 0 and cell["seeds"] == ([0] if grid_only else [0, 1, 2])
        assert sw.verdict(cell) == "validation chose 0"
        # one pair has no interval: null in the cell's JSON, never NaN (which strict JSON readers refuse)
        assert json.loads(json.dumps(cell, allow_nan=False))["paired_diff_ci95"] == ([None, None] if grid_only
                                                                                  else [0.0, 0.0])
    else:
        assert cell["weight"] == 0.3 and cell["seeds"] == [0, 1, 2] and cell["seeds_up"] == 3


def test_a_pair_equal_but_for_float_rounding_is_a_tie_not_a_seed_up():
    """Seen in a real cell: the same 22838 of 30000 test answers right with and without SDC, means differing by
    2e-8 in the last bits; that pair moved neither way."""
    from easydd.sweep import cell_record
    run_ = lambda seed, acc: {"seed": seed, "test_mean": acc, "panel_gradn": 1.0, "method": "dc",  # noqa: E731
                               "dataset": "mnist", "ipc": 10, "sdc_net": "trained", "iterations": 1,
                               "eval_epochs": 1, "eval_num_models": 3, "note": "", "device": "cpu",
                               "val_mean": 0.5, "rho_last20pct": 0.1}
    base = [run_(0, 0.7612666686375936), run_(1, 0.70), run_(2, 0.70)]
    sdc = [run_(0, 0.7612666885058085), run_(1, 0.71), run_(2, 0.69)]
    cell = cell_record(base, sdc, 0.1, "sdc_ratio", {0.0: base[0], 0.1: sdc[0]})
    assert (cell["seeds_up"], cell["seeds_down"]) == (1, 1)
