"""`easydd import` / `easydd export`: the reference layouts in, DD-Ranking's files out, pickles carrying code refused
without running them, mismatches one line with exit 2, nothing half-written."""
import hashlib
import json
import pickle

import pytest
import torch

from easydd.distilled import Distilled


from conftest import run_cli as run  # noqa: E402  (one copy of the in-process CLI call)


def one_error(code, err, needle):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("easydd: error:") and needle in lines[0], err


def tiny_set(n_per_class=1, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_per_class * classes, 1, 8, 8, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return x, y


class Evil:
    """Unpickling this would create a file."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_dc_result_file_imports_with_provenance_and_picks_the_experiment(capsys, tmp_path):
    x0, y0 = tiny_set(seed=0)
    x1, y1 = tiny_set(seed=1)
    src = tmp_path / "res_DSA_digits_ConvNet_1ipc.pt"
    torch.save({"data": [[x0, y0], [x1, y1]], "accs_all_exps": {"ConvNet": [0.5, 0.6]}}, src)
    out = tmp_path / "imp"
    code, stdout, err = run(capsys, "import", src, "--dataset", "digits", "--ipc-index", 1, "--out", out)
    assert code == 0, err
    d = Distilled.load(out)
    assert torch.equal(d.images, x1) and torch.equal(d.labels, y1)  # same statistics: no conversion
    imp = d.meta["imported"]
    assert imp["format"] == "dc" and imp["index"] == 1 and imp["experiments"] == 2
    assert imp["files"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert json.loads((out / "import.json").read_text())["format"] == "dc"
    assert (out / "grid.png").exists() and d.meta["dataset"] == "digits" and d.ipc == 1
    # out of range: one line, nothing written
    code, _, err = run(capsys, "import", src, "--dataset", "digits", "--ipc-index", 2, "--out", tmp_path / "no")
    one_error(code, err, "out of range")
    assert not (tmp_path / "no").exists()
    # the imported set is evaluated like any other
    code, stdout, err = run(capsys, "eval", out, "--models", "MLP", "--num-models", 1, "--epochs", 1, "--quiet")
    assert code == 0, err
    assert "MLP" in stdout and (out / "eval.json").exists()
    code, stdout, err = run(capsys, "report", out)  # its evaluation is its result
    assert code == 0, err
    assert "IMPORTED-DC (MLP)" in stdout


def test_mtt_folder_with_soft_labels_and_lr(capsys, tmp_path):
    x, _ = tiny_set(n_per_class=2)
    logits = torch.randn(20, 10)
    folder = tmp_path / "logged_files"
    folder.mkdir()
    torch.save(x, folder / "images_best.pt")
    torch.save(logits, folder / "labels_best.pt")
    torch.save(torch.tensor(0.0123), folder / "lr_best.pt")
    torch.save(x + 1, folder / "images_500.pt")  # an older iteration, ignored when best exists
    code, _, err = run(capsys, "import", folder, "--dataset", "digits", "--out", tmp_path / "m")
    assert code == 0, err
    d = Distilled.load(tmp_path / "m")
    assert d.meta["imported"]["format"] == "mtt" and d.meta["imported"]["iteration"] == "best"
    assert torch.equal(d.images, x) and d.soft and torch.allclose(d.labels, logits)
    assert d.lr == pytest.approx(0.0123, rel=1e-6) and d.ipc == 2
    # one iteration's images without labels: labels rebuilt in the reference code's class-major order
    code, _, err = run(capsys, "import", folder / "images_500.pt", "--dataset", "digits", "--out", tmp_path / "it")
    assert code == 0, err
    d = Distilled.load(tmp_path / "it")
    assert torch.equal(d.labels, torch.arange(10).repeat_interleave(2)) and d.lr is None
    assert "class-major" in d.meta["imported"]["label_kind"]


def test_pixels_and_other_statistics_are_converted_to_easydds_space(capsys, tmp_path, digits):
    x = torch.rand(10, 1, 8, 8)
    y = torch.arange(10)
    torch.save({"data": [[x, y]]}, tmp_path / "res_DC_digits_ConvNet_1ipc.pt")
    code, _, err = run(capsys, "import", tmp_path / "res_DC_digits_ConvNet_1ipc.pt", "--dataset", "digits",
                       "--pixels", "--out", tmp_path / "p")
    assert code == 0, err
    d = Distilled.load(tmp_path / "p")
    m, s = digits.mean[0], digits.std[0]
    assert torch.allclose(d.images, (x - m) / s, atol=1e-5)
    assert d.meta["imported"]["converted"] is True and d.meta["imported"]["source_mean"] == [0.0]
    # normalised with other statistics: back to pixels, then easydd's normalisation
    xs = (x - 0.5) / 0.25
    torch.save({"data": [[xs, y]]}, tmp_path / "res_DC_digits_ConvNet_1ipc.pt")
    code, _, err = run(capsys, "import", tmp_path / "res_DC_digits_ConvNet_1ipc.pt", "--dataset", "digits",
                       "--source-mean", "0.5", "--source-std", "0.25", "--out", tmp_path / "q")
    assert code == 0, err
    assert torch.allclose(Distilled.load(tmp_path / "q").images, (x - m) / s, atol=1e-5)


def test_export_ddranking_then_import_round_trips(capsys, tmp_path):
    x, y = tiny_set(n_per_class=2)
    Distilled(x, y, 0.02, {"dataset": "digits", "ipc": 2, "mean": [0.3], "std": [0.4]}).save(
        tmp_path / "run" / "distilled.safetensors")
    code, stdout, err = run(capsys, "export", tmp_path / "run", "--format", "ddranking", "--out", tmp_path / "dd")
    assert code == 0, err
    assert torch.equal(torch.load(tmp_path / "dd" / "images.pt", weights_only=True), x)
    assert torch.equal(torch.load(tmp_path / "dd" / "labels.pt", weights_only=True), y)
    assert float(torch.load(tmp_path / "dd" / "lr.pt", weights_only=True)) == pytest.approx(0.02)
    assert json.loads((tmp_path / "dd" / "ddranking.json").read_text())["labels"].startswith("hard")
    code, _, err = run(capsys, "import", tmp_path / "dd", "--dataset", "digits", "--out", tmp_path / "back")
    assert code == 0, err
    d = Distilled.load(tmp_path / "back")
    assert d.meta["imported"]["format"] == "ddranking"  # detected from the file names
    assert torch.equal(d.images, x) and torch.equal(d.labels, y) and d.lr == pytest.approx(0.02, rel=1e-6)
    # exporting onto a non-empty folder is refused
    code, _, err = run(capsys, "export", tmp_path / "run", "--out", tmp_path / "dd")
    one_error(code, err, "not empty")


@pytest.mark.parametrize("how", ["torch.save", "pickle", "pickle5"])
def test_a_pickle_carrying_code_is_refused_and_never_run(capsys, tmp_path, how):
    marker = tmp_path / "pwned"
    src = tmp_path / "res_DC_digits_ConvNet_1ipc.pt"
    payload = {"data": [[Evil(marker), torch.arange(10)]]}
    if how == "torch.save":
        torch.save(payload, src)
    elif how == "pickle5":
        src.write_bytes(pickle.dumps(payload, protocol=5))
    else:
        src.write_bytes(pickle.dumps(payload, protocol=2))  # a plain pickle, as torch.save's legacy format
    assert not marker.exists()
    code, _, err = run(capsys, "import", src, "--dataset", "digits", "--out", tmp_path / "evil")
    one_error(code, err, "weights_only=True")
    assert not marker.exists() and not (tmp_path / "evil").exists()
    assert [p.name for p in tmp_path.iterdir()] == [src.name]  # no temporary folder left either


@pytest.mark.parametrize("make,argv,needle", [
    (lambda p: torch.save({"data": [[torch.randn(10, 3, 8, 8), torch.arange(10)]]}, p / "res_x.pt"),
     ["res_x.pt"], "is --dataset right?"),
    (lambda p: torch.save({"data": [[torch.randn(10, 1, 8, 8), torch.arange(10) + 5]]}, p / "res_x.pt"),
     ["res_x.pt"], "labels run 5..14"),
    (lambda p: torch.save({"data": [[torch.randn(10, 1, 8, 8), torch.randn(10, 7)]]}, p / "res_x.pt"),
     ["res_x.pt"], "7 columns"),
    (lambda p: torch.save({"data": [[torch.randn(10, 1, 8, 8), torch.arange(9)]]}, p / "res_x.pt"),
     ["res_x.pt"], "10 images but 9 labels"),
    (lambda p: torch.save([1, 2, 3], p / "thing.pt"), ["thing.pt"], "cannot tell the layout"),
    (lambda p: torch.save([1, 2, 3], p / "thing.pt"), ["thing.pt", "--format", "dc"], "not a DC/DSA/DM result"),
    (lambda p: (p / "res_x.pt").write_text("not a pickle"), ["res_x.pt"], "not a file torch.save wrote"),
    (lambda p: None, ["missing.pt"], "no such file"),
    (lambda p: (p / "empty").mkdir(), ["empty", "--format", "dc"], "holds 0 res_*.pt files"),
    (lambda p: (p / "empty").mkdir(), ["empty", "--format", "mtt"], "neither images_best.pt"),
    (lambda p: (p / "empty").mkdir(), ["empty"], "cannot tell the layout"),
    (lambda p: torch.save({"data": []}, p / "res_x.pt"), ["res_x.pt"], "'data' is empty"),
    (lambda p: torch.save({"data": [[torch.randn(10, 1, 8, 8), torch.arange(10)]]}, p / "res_x.pt"),
     ["res_x.pt", "--format", "tiff"], "unknown --format"),
])
def test_bad_inputs_are_one_line_exit_2(capsys, tmp_path, make, argv, needle):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(capsys, "import", tmp_path / argv[0], *argv[1:], "--dataset", "digits",
                       "--out", tmp_path / "out")
    one_error(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
