"""A catalogue of wrong and hostile inputs, each through the real entry point (``easydd.cli.main``): every one ends
in exit code 2 and ONE line that says what is wrong and how to fix it, no traceback, and nothing half-written (no
run directory appears, an existing one is byte-for-byte unchanged, and no file carrying code ever runs)."""
import gzip
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from easydd.cli import main
from easydd.distilled import Distilled
from easydd.errors import UserError


class Evil:
    """Unpickling this runs code (creates a marker file): it must never happen."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with the hash of its bytes ({} if root does not exist)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files of every kind the project reads, plus one finished run directory (DM on digits, 2 iterations)."""
    d = tmp_path_factory.mktemp("bad")
    from easydd.data import load_dataset
    ds = load_dataset("digits")
    imgs, labels = ds.x_train[:10].clone(), torch.arange(10)
    meta = {"dataset": "digits", "ipc": 1}
    Distilled(imgs, labels, None, meta).save(d / "good.safetensors")
    Distilled(imgs, labels + 5, None, meta).save(d / "labels.safetensors")
    Distilled(imgs, labels, float("nan"), meta).save(d / "nanlr.safetensors")
    from safetensors.torch import save_file
    header = {"easydd": json.dumps(meta)}
    save_file({"images": imgs.double(), "labels": labels}, str(d / "f64.safetensors"), metadata=header)
    save_file({"images": imgs[:0], "labels": labels[:0]}, str(d / "empty.safetensors"), metadata=header)
    good = (d / "good.safetensors").read_bytes()
    (d / "trunc.safetensors").write_bytes(good[:len(good) // 2])
    (d / "garbage.safetensors").write_bytes(bytes(range(256)) * 3)
    marker = d / "PWNED"
    (d / "evil.safetensors").write_bytes(pickle.dumps(Evil(marker)))
    # your own data
    rng = np.random.default_rng(0)
    x0 = np.zeros((0, 8, 8), np.uint8)
    np.savez(d / "zero.npz", x_train=x0, y_train=np.zeros(0, np.int64), x_test=x0, y_test=np.zeros(0, np.int64))
    x = rng.integers(0, 255, (20, 8, 8), dtype=np.uint8)
    np.savez(d / "oneclass.npz", x_train=x, y_train=np.zeros(20, np.int64), x_test=x, y_test=np.zeros(20, np.int64))
    xf = rng.random((20, 8, 8))
    xf[3, 2, 1] = np.nan
    y2 = np.arange(20) % 2
    np.savez(d / "nanpix.npz", x_train=xf, y_train=y2, x_test=xf, y_test=y2)
    np.savez(d / "ok.npz", x_train=x, y_train=y2, x_test=x, y_test=y2)
    np.savez(d / "notest.npz", x_train=x, y_train=y2, x_test=x0, y_test=np.zeros(0, np.int64))
    save_file({"images": imgs.clone().index_fill_(0, torch.tensor([3]), float("nan")), "labels": labels},
              str(d / "nanpix.safetensors"), metadata=header)
    (d / "trunc.npz").write_bytes((d / "ok.npz").read_bytes()[:300])
    np.savez(d / "objects.npz", x_train=np.array([Evil(marker)], dtype=object), y_train=y2, x_test=x, y_test=y2)
    folder = d / "imgs"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (folder / split / c).mkdir(parents=True)
            (folder / split / c / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    # built-in datasets' files, corrupt, in a data root of their own (and an empty cache, so they are read)
    root = d / "root"
    (root / "MNIST" / "raw").mkdir(parents=True)
    for base in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (root / "MNIST" / "raw" / (base + ".gz")).write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x01" * 40))
    (root / "cifar-10-batches-py").mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (root / "cifar-10-batches-py" / f).write_bytes(pickle.dumps(Evil(marker)))
    (root / "svhn").mkdir()
    for f in ("train_32x32.mat", "test_32x32.mat"):
        (root / "svhn" / f).write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    # results files for `easydd report`
    rec = {"dataset": "mnist", "ipc": 1, "method": "dsa", "accs": [0.5]}
    (d / "types.jsonl").write_text(json.dumps(dict(rec, ipc="one")) + "\n")
    (d / "accs.jsonl").write_text(json.dumps(dict(rec, accs=[87.5])) + "\n")
    (d / "accstr.jsonl").write_text(json.dumps(dict(rec, accs=["high"])) + "\n")
    (d / "binary.jsonl").write_bytes(b"\x00\xff\xfe\x80 garbage\n")
    (d / "lists.json").write_text(json.dumps([[1, 2], [3]]))
    rd = d / "yamlrun"
    rd.mkdir()
    (rd / "config.yaml").write_text("dataset: [mnist\nipc: {\n")
    (rd / "metrics.json").write_text(json.dumps({"last": {"models": {"ConvNet": {"accs": [0.5]}}}}))
    rd = d / "metricsrun"
    rd.mkdir()
    (rd / "metrics.json").write_text("[1, 2, 3]")
    # a finished run to damage
    run_args = ["distill", "method=dm", "dataset=digits", "model=ConvNetD2W16", "iterations=2", "checkpoint_every=1",
                "--no-eval", "--quiet"]
    assert main(run_args + ["--out", str(d / "runs")]) == 0
    return {"dir": d, "marker": marker, "run_args": run_args, "run": d / "runs" / "dm-digits-ipc1-s0",
            "root": root}


D = ["distill", "method=dsa", "dataset=digits", "iterations=1", "eval_num_models=1", "eval_epochs=1",
     "eval_models=[MLP]"]

# (id, argv (F = the bad-files folder), what the message says is wrong, the fix it names)
CASES = [
    # distill: values of the wrong type or out of range, NaN/inf, unknown and misspelled names
    ("ipc-bool", D + ["ipc=true"], "ipc must be a positive integer", "(got True)"),
    ("seed-text", D + ["seed=abc"], "seed must be an integer >= 0", "got 'abc'"),
    ("val-size-text", D + ["val_size=abc"], "val_size must be a number of images", "fraction in (0, 1)"),
    ("checkpoint-every-text", D + ["checkpoint_every=abc"], "checkpoint_every must be an integer >= 0", "0: off"),
    ("batch-real-0", D + ["batch_real=0"], "batch_real must be an integer >= 1", "got 0"),
    ("lr-img-negative", D + ["lr_img=-1"], "lr_img must be a finite number > 0", "got -1.0"),
    ("lr-img-nan", D + ["lr_img=.nan"], "lr_img must be a finite number", "got nan"),
    ("dis-metric-unknown", D + ["dis_metric=foo"], "dis_metric", "one of ours, mse, cos"),
    ("dsa-strategy-unknown", D + ["dsa_strategy=foo"], "unknown DSA transform", "'' takes the reference strategy"),
    ("lambda-inf", D + ["lambda_sdc=.inf"], "lambda_sdc must be a finite number >= 0", "0 turns SDC off"),
    ("lambda-nan", D + ["lambda_sdc=.nan"], "lambda_sdc must be a finite number >= 0", "0 turns SDC off"),
    ("outer-loop-negative", D + ["outer_loop=-1"], "outer_loop must be an integer >= 0", "0: the reference"),
    ("eval-epochs-setting-negative", D + ["eval_epochs=-5"], "eval_epochs must be an integer >= 1", "or null"),
    ("iterations-float", D + ["iterations=1.5"], "iterations must be a non-negative integer", "got 1.5"),
    ("misspelled-key", D + ["lr_imgg=1"], "unknown setting", "did you mean 'lr_img'"),
    ("zca-maybe", D + ["zca=maybe"], "zca must be true or false", "got 'maybe'"),
    ("eval-models-string", D + ["eval_models=MLP"], "eval_models must be a non-empty list", "e.g. [ConvNet]"),
    ("yaml-garbage-value", D + ["ipc=[1"], "ipc must be a positive integer", "got '[1'"),
    ("threads-negative", ["--threads", "-1"] + D, "--threads must be >= 1", "leave it out to use every core"),
    ("threads-zero", ["--threads", "0"] + D, "--threads must be >= 1", "leave it out to use every core"),
    ("not-key-value", D + ["ipc"], "is not key=value", "e.g. ipc=10"),
    ("validation-without-a-split", D + ["eval_every=1", "val_size=0"], "validates on the validation split",
     "set val_size > 0 or eval_every=0"),
    ("name-escapes-out-dir", D + ["name=../../.."], "would write outside out_dir", "plain run name"),
    ("unknown-method", D + ["method=nope"], "unknown method", "choose one of"),
    ("unknown-model", D + ["model=ConvNot"], "unknown model", "choose one of"),
    # distill on your own data: empty, one class, NaN pixels, truncated, pickled objects, unreadable images
    ("npz-no-images", D + ["dataset={F}/zero.npz"], "the train split holds no images", "fix your data"),
    ("npz-no-test-images", D + ["dataset={F}/notest.npz"], "the test split holds no images", "fix your data"),
    ("npz-one-class", D + ["dataset={F}/oneclass.npz"], "has only class [0]", "at least two classes"),
    ("npz-nan-pixels", D + ["dataset={F}/nanpix.npz"], "are NaN or inf", "nan_to_num"),
    ("npz-truncated", D + ["dataset={F}/trunc.npz"], "cannot read it as an .npz", "numpy.savez"),
    ("npz-pickled-objects", D + ["dataset={F}/objects.npz"], "cannot read it as an .npz", "numpy.savez"),
    ("image-folder-corrupt", D + ["dataset={F}/imgs"], "not a readable image", "remove or replace it"),
    # built-in datasets whose files are corrupt (a data root of our own, an empty cache)
    ("mnist-idx-corrupt", ["select", "--dataset", "mnist", "--data-root", "{F}/root", "--no-eval"],
     "train-images-idx3-ubyte.gz: checksum mismatch", "delete it and load again (with EASYDD_DOWNLOAD=1"),
    ("cifar-pickle-carries-code", ["select", "--dataset", "cifar10", "--data-root", "{F}/root", "--no-eval"],
     "cifar-10-batches-py", "delete it"),
    ("svhn-mat-truncated", ["select", "--dataset", "svhn", "--data-root", "{F}/root", "--no-eval"],
     "train_32x32.mat: checksum mismatch", "delete it and load again"),
    # eval: impossible settings and bad sets
    ("eval-epochs-negative", ["eval", "{F}/good.safetensors", "--epochs", "-1"], "--epochs must be >= 1",
     "leave it out"),
    ("eval-aug-unknown", ["eval", "{F}/good.safetensors", "--aug", "autoaug"], "--aug must be one of",
     "dsa, dc, crop, none"),
    ("eval-aug-contradicts-no-dsa", ["eval", "{F}/good.safetensors", "--aug", "dc", "--no-dsa"],
     "--no-dsa means --aug crop", "give only one of them"),
    ("eval-num-models-0", ["eval", "{F}/good.safetensors", "--num-models", "0"], "--num-models must be >= 1",
     "got 0"),
    ("eval-lr-nan", ["eval", "{F}/good.safetensors", "--lr", "nan"], "--lr must be a finite number > 0",
     "leave it out"),
    ("eval-labels-out-of-range", ["eval", "{F}/labels.safetensors"], "labels range over 5..14", "--dataset NAME"),
    ("eval-float64-images", ["eval", "{F}/f64.safetensors"], "not float32", "re-create it"),
    ("eval-nan-pixels", ["eval", "{F}/nanpix.safetensors"], "contain NaN or inf", "re-create it"),
    ("eval-empty-set", ["eval", "{F}/empty.safetensors"], "holds no images", "re-create it"),
    ("eval-nan-learned-lr", ["eval", "{F}/nanlr.safetensors", "--epochs", "1", "--num-models", "1"],
     "learned learning rate is nan", "--lr VALUE"),
    ("eval-truncated-set", ["eval", "{F}/trunc.safetensors"], "not a readable safetensors file", "re-create it"),
    ("eval-garbage-set", ["eval", "{F}/garbage.safetensors"], "not a readable safetensors file", "re-create it"),
    ("eval-pickle-as-set", ["eval", "{F}/evil.safetensors"], "not a readable safetensors file", "re-create it"),
    ("eval-diverges", ["eval", "{F}/good.safetensors", "--lr", "1e30", "--epochs", "3", "--num-models", "1",
                       "--models", "MLP", "--no-dsa"], "training diverged",
     "Lower the learning rate (now 1e+30, e.g. --lr) and rerun the same command."),
    ("eval-out-under-a-file", ["eval", "{F}/good.safetensors", "--epochs", "1", "--out", "{F}/good.safetensors/x"],
     "cannot write to the output directory", "choose another with --out DIR"),
    ("eval-missing-file", ["eval", "{F}/nothing.safetensors"], "no such file", "nothing.safetensors"),
    # select
    ("select-num-models-0", ["select", "--dataset", "digits", "--method", "random", "--ipc", "1", "--num-models",
                             "0"], "--num-models must be >= 1", "got 0"),
    ("select-unknown-model", ["select", "--dataset", "digits", "--method", "random", "--ipc", "1", "--models",
                              "ConvNot"], "unknown model", "choose one of"),
    ("select-name-escapes", ["select", "--dataset", "digits", "--method", "random", "--ipc", "1", "--no-eval",
                             "--name", "../x"], "would write outside out_dir", "plain run name"),
    ("select-ipc-0", ["select", "--dataset", "digits", "--method", "random", "--ipc", "0", "--no-eval"],
     "ipc must be at least 1", "got 0"),
    # experts
    ("experts-negative-lr", ["experts", "--dataset", "digits", "--num-experts", "1", "--epochs", "1", "--lr", "-1"],
     "--lr must be a finite number > 0", "got -1.0"),
    ("experts-nproc-0", ["experts", "--dataset", "digits", "--num-experts", "1", "--epochs", "1", "--nproc", "0"],
     "--nproc must be >= 1", "number of local processes"),
    ("experts-subset-0", ["experts", "--dataset", "digits", "--num-experts", "1", "--epochs", "1", "--subset",
                          "0"], "--subset must be a number of images >= 1", "leave it out"),
    ("experts-batch-0", ["experts", "--dataset", "digits", "--num-experts", "1", "--epochs", "1", "--batch-size",
                         "0"], "--batch-size must be >= 1", "got 0"),
    # difficulty
    ("difficulty-truncated-set", ["difficulty", "{F}/trunc.safetensors"], "not a readable safetensors", "re-create"),
    ("difficulty-truncated-npz-dataset", ["difficulty", "{F}/trunc.npz"], "cannot read it as an .npz",
     "numpy.savez"),
    ("difficulty-max-samples-negative", ["difficulty", "digits", "--max-samples", "-5"], "--max-samples must be >= 1",
     "leave it out"),
    ("difficulty-num-models-0", ["difficulty", "digits", "--num-models", "0"], "--num-models must be >= 1",
     "--epochs >= 0"),
    # report
    ("report-wrong-types", ["report", "{F}/types.jsonl"], "ipc must be an integer", "fix the record"),
    ("report-percent-accuracies", ["report", "{F}/accs.jsonl"], "accuracies must be fractions in [0, 1]",
     "fix the record"),
    ("report-text-accuracies", ["report", "{F}/accstr.jsonl"], "accuracies numbers", "fix the record"),
    ("report-binary-garbage", ["report", "{F}/binary.jsonl"], "is not a text file", "pass a run directory"),
    ("report-list-not-object", ["report", "{F}/lists.json"], "record 1 is a JSON list", "fix or remove it"),
    ("report-yaml-garbage", ["report", "{F}/yamlrun"], "config.yaml is not valid YAML", "yamlrun"),
    ("report-metrics-not-object", ["report", "{F}/metricsrun"], "is not a metrics object", "rerun the evaluation"),
]

OUT_FLAG = {"distill": "--out", "select": "--out", "eval": "--out", "experts": "--out", "report": "--out",
            "difficulty": "--out"}


def command_of(argv):
    return argv[2] if argv[0] == "--threads" else argv[0]


def run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.err


def assert_one_line_error(code, err, what, fix):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("easydd: error: ") and "Traceback" not in err
    assert what in lines[0], lines[0]
    assert fix in lines[0], lines[0]


@pytest.mark.parametrize("argv,what,fix", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, monkeypatch, files, argv, what, fix):
    monkeypatch.setenv("EASYDD_CACHE", str(tmp_path / "cache"))  # built-in datasets: read the corrupt files
    monkeypatch.setenv("EASYDD_DOWNLOAD", "0")
    argv = [a.replace("{F}", str(files["dir"])) for a in argv]
    out = tmp_path / "out"
    cmd = command_of(argv)
    if OUT_FLAG[cmd] not in argv:
        argv = argv + [OUT_FLAG[cmd], str(out / ("x.md" if cmd == "report" else "")).rstrip("/")]
    if cmd in ("distill", "select", "eval"):
        argv.append("--quiet")
    elif cmd == "experts":
        argv.append("--no-progress")
    before = snapshot(files["dir"])
    code, err = run(capsys, argv)
    assert_one_line_error(code, err, what, fix)
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))  # nothing half-written
    assert snapshot(files["dir"]) == before  # no input was touched
    assert not files["marker"].exists()  # no file that carries code ever ran it


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)
    assert {command_of(c[1]) for c in CASES} >= {"distill", "eval", "select", "experts", "difficulty", "report"}


# -- a damaged or foreign run directory: refused, and left exactly as it was ------------------------------------

def _bad_checkpoint(kind: str, ckpt: Path, marker: Path) -> None:
    if kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif kind == "garbage":
        ckpt.write_bytes(b"\x00" * 100 + bytes(range(256)))
    elif kind == "pickle-carries-code":
        ckpt.write_bytes(pickle.dumps({"iteration": Evil(marker)}))
    elif kind == "torch-pickle-carries-code":
        torch.save({"iteration": 1, "method": Evil(marker)}, ckpt)
    elif kind == "not-a-checkpoint":
        torch.save([1, 2, 3], ckpt)
    elif kind == "iteration-1e6":
        state = torch.load(ckpt, weights_only=True)
        torch.save(dict(state, iteration=10 ** 6), ckpt)
    elif kind == "iteration-negative":
        state = torch.load(ckpt, weights_only=True)
        torch.save(dict(state, iteration=-3), ckpt)


@pytest.mark.parametrize("kind,what,fix", [
    ("truncated", "cannot resume from", "delete it to start over, or pass --no-resume"),
    ("garbage", "cannot resume from", "delete it to start over, or pass --no-resume"),
    ("pickle-carries-code", "cannot resume from", "--no-resume"),
    ("torch-pickle-carries-code", "cannot resume from", "--no-resume"),
    ("not-a-checkpoint", "not an easydd checkpoint", "--no-resume"),
    ("iteration-1e6", "is at iteration 1000000, past this run's iterations=2", "raise iterations"),
    ("iteration-negative", "is not a count >= 0", "--no-resume"),
])
def test_damaged_checkpoint_is_refused_and_the_run_untouched(capsys, tmp_path, files, kind, what, fix):
    out = tmp_path / "runs"
    shutil.copytree(files["run"], out / files["run"].name)
    ckpt = out / files["run"].name / "checkpoint.pt"
    _bad_checkpoint(kind, ckpt, files["marker"])
    before = snapshot(out)
    code, err = run(capsys, files["run_args"] + ["--out", str(out)])
    assert_one_line_error(code, err, what, fix)
    assert snapshot(out) == before
    assert not files["marker"].exists()


@pytest.mark.parametrize("change,what", [
    (["lambda_sdc=1"], "lambda_sdc: 0.0 -> 1.0"),
    (["seed=3", "--name", "dm-digits-ipc1-s0"], "seed: 0 -> 3"),
    (["lr_img=2", "--name", "dm-digits-ipc1-s0"], "method_args.lr_img: 1.0 -> 2.0"),
])
def test_rerun_under_other_settings_is_refused_and_the_run_untouched(capsys, tmp_path, files, change, what):
    out = tmp_path / "runs"
    shutil.copytree(files["run"], out / files["run"].name)
    before = snapshot(out)
    args = files["run_args"] + change + ["--out", str(out)]
    if "--name" not in change:
        args += ["--name", "dm-digits-ipc1-s0"]
    code, err = run(capsys, args)
    assert_one_line_error(code, err, what, "give this run another name")
    assert snapshot(out) == before


def test_output_path_that_is_a_file_is_refused(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(capsys, D + ["--out", str(blocker), "--quiet"])
    assert_one_line_error(code, err, "cannot write to the output directory", "choose another with --out DIR")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_read_only_output_path_is_refused(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, err = run(capsys, D + ["--out", str(ro), "--quiet"])
    finally:
        ro.chmod(0o700)
    assert_one_line_error(code, err, "cannot write to the output directory", "--out DIR")


def test_run_directory_held_by_a_live_process_is_refused(capsys, tmp_path, files):
    out = tmp_path / "runs"
    run_dir = out / files["run"].name
    shutil.copytree(files["run"], run_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from easydd.io import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(out)
        code, err = run(capsys, files["run_args"] + ["--out", str(out)])
        assert_one_line_error(code, err, f"is in use by process {holder.pid}", "give this run another name")
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()
    # its owner killed (as by kill -9), the lock is stale: the same command now runs, and says it took over
    code, err = run(capsys, files["run_args"] + ["--out", str(out)])
    assert code == 0, err
    assert f"took over the lock of process {holder.pid}" in (run_dir / "log.txt").read_text()
    assert not (run_dir / ".lock").exists()


# -- the Python API ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,what", [
    (dict(ipc=0), "ipc must be a positive integer"),
    (dict(method_args=[1]), "method_args must be a mapping"),
    (dict(lr_img=float("nan")), "lr_img must be a finite number"),
    (dict(batch_real=-1), "batch_real must be an integer >= 1"),
    (dict(seed="abc"), "seed must be an integer"),
    (dict(eval_epochs=0), "eval_epochs must be an integer >= 1"),
    (dict(name="/etc"), "would write outside out_dir"),
    (dict(sdc_net="elsewhere"), "sdc_net must be one of"),
    (dict(dis_metric="l3"), "dis_metric must be one of ours, mse, cos"),
    (dict(method="dm", outer_loop=1), "unknown setting"),
])
def test_make_config_refuses_with_one_line(kwargs, what):
    import easydd
    with pytest.raises(UserError, match=None) as e:
        easydd.make_config(**kwargs)
    assert what in str(e.value) and "\n" not in str(e.value)


def test_make_config_keeps_the_users_method_args():
    """The preset's method_args were popped and then overwritten: the user's dict was dropped without a word."""
    import easydd
    cfg = easydd.make_config("dsa-mnist-ipc1-cpu", method_args={"batch_real": 37})
    assert cfg.method_args["batch_real"] == 37
    preset = easydd.make_config("dsa-mnist-ipc1-cpu")
    assert preset.method_args["batch_real"] != 37
    assert {k: v for k, v in cfg.method_args.items() if k != "batch_real"} == \
        {k: v for k, v in preset.method_args.items() if k != "batch_real"}


def test_yaml_exponent_without_a_dot_is_a_number():
    from easydd.config import parse_overrides
    assert parse_overrides(["lr_img=1e-3", "name=abc"]) == {"lr_img": 0.001, "name": "abc"}


def test_distill_checks_a_hand_built_config(tmp_path):
    from easydd.config import RunConfig
    import easydd
    import easydd.distill  # noqa: F401  (binds the package attribute to the submodule: it must stay callable)
    import easydd.evaluate  # noqa: F401
    with pytest.raises(UserError, match="eval_epochs must be an integer >= 1"):
        easydd.distill(RunConfig(dataset="digits", iterations=1, eval_epochs=-5, out_dir=str(tmp_path)))
    with pytest.raises(UserError, match="--num-models must be >= 1"):
        easydd.evaluate(Distilled(torch.zeros(2, 1, 8, 8), torch.arange(2)), None, num_models=0)
    assert not any(tmp_path.iterdir())


def test_every_user_error_is_one_class_importable_where_it_was():
    """cli.main has one rule (except UserError): every error a user can cause must be a subclass of it."""
    from easydd import errors
    from easydd.data import DataError
    from easydd.data.formats import DataError as DataError2
    from easydd.difficulty import PanelError
    from easydd.distilled import DistilledFileError
    from easydd.nets import UnknownModel
    from easydd.train import DivergenceError
    for cls in (DataError, DataError2, PanelError, DistilledFileError, UnknownModel, DivergenceError,
                errors.DivergedError, errors.RunLocked, errors.WriteFailed):
        assert issubclass(cls, UserError) and getattr(errors, cls.__name__) is cls
    assert issubclass(DistilledFileError, ValueError) and issubclass(DivergenceError, RuntimeError)  # as before


def test_report_skips_a_cut_off_last_record_and_says_so(capsys, tmp_path):
    """A benchmark killed while appending leaves half a line: the records before it are still reported."""
    rec = {"dataset": "mnist", "ipc": 1, "method": "dsa", "accs": [0.5], "seed": 0}
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(rec) + "\n" + json.dumps(dict(rec, seed=1))[:25])
    code = main(["report", str(p)])
    out = capsys.readouterr()
    assert code == 0 and "r.jsonl:2 is cut off" in out.err and "50.00" in out.out
    p.write_text(json.dumps(rec) + "\n" + json.dumps(dict(rec, seed=1))[:25] + "\n")  # a bad line that is complete
    code, err = run(capsys, ["report", str(p)])
    assert_one_line_error(code, err, "r.jsonl:2 is not JSON", "pass a run directory")
