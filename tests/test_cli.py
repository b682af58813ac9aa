"""The command line: user mistakes give one line naming the fix and exit code 2; nothing half-written remains."""
import json

import pytest



from conftest import run_cli as run  # noqa: E402  (one copy of the in-process CLI call)


def test_info_lists_datasets_methods_presets(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and "digits" in out and "dsa" in out and "dsa-mnist-ipc1-cpu" in out


def test_python_dash_m_easydd_cli_is_the_command():
    """The fast-allocator re-execution runs `python -m easydd.cli ...` (easydd/cli/__main__.py)."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "easydd.cli", "--threads", "0", "info"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == ("easydd: error: --threads must be >= 1 (got 0); leave it out "
                                                      "to use every core")


@pytest.mark.parametrize("argv,needle", [
    (["distill", "method=nope"], "unknown method"),
    (["distill", "dataset=imagenet-9000", "iterations=1"], "dataset"),
    (["distill", "--preset", "dsa-mnst-ipc1"], "unknown preset"),
    (["distill", "method=dsa", "lr_imgg=1"], "did you mean"),
    (["distill", "method=dsa", "dataset=digits", "ipc=1000", "iterations=1"], "larger than class"),
    (["select", "--dataset", "digits", "--method", "magic"], "unknown selection method"),
    (["eval", "/nonexistent/file.safetensors"], "no such file"),
    (["distill", "method=dsa", "dataset=digits", "model=ConvNot", "iterations=1", "--no-eval"], "unknown model"),
    (["distill", "method=dsa", "dataset=digits", "device=tpu", "iterations=1"], "unknown device"),
    (["distill", "method=dsa", "dataset=nowhere", "sdc_net=somewhere"], "sdc_net must be one of"),
    (["distill", "method=dsa", "dataset=nowhere", "sdc_ratio=-1"], "sdc_ratio must be a finite number"),
    (["distill", "method=dsa", "dataset=nowhere", "sdc_ratio=.inf"], "sdc_ratio must be a finite number"),
    (["distill", "method=dsa", "dataset=nowhere", "lambda_sdc=.inf"], "lambda_sdc must be a finite number"),
    (["distill", "method=dsa", "dataset=nowhere", "lambda_sdc=1", "sdc_ratio=1"], "not both"),
    (["distill", "method=dsa", "dataset=digits", "sdc_ratio=0.3", "model=ConvNot"], "unknown model"),
])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, *argv, *([] if argv[0] != "distill" else ["--out", str(tmp_path)]))
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert needle in last and last.startswith("easydd: error:") and "Traceback" not in err


def test_unwritable_output_directory(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "select", "--dataset", "digits", "--method", "random", "--ipc", "1",
                       "--out", str(blocker / "sub"), "--no-eval")
    assert code == 2 and "output directory" in err


def test_select_then_eval_round_trip(capsys, tmp_path):
    code, out, err = run(capsys, "select", "--dataset", "digits", "--method", "herding", "--ipc", "2",
                         "--out", str(tmp_path), "--models", "MLP", "--num-models", "2", "--epochs", "5", "--quiet")
    assert code == 0, err
    run_dir = tmp_path / "herding-digits-ipc2-s0"
    assert (run_dir / "distilled.safetensors").exists() and (run_dir / "grid.png").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["last"]["models"]["MLP"]["accs"]
    code, out, err = run(capsys, "eval", str(run_dir), "--models", "MLP", "--num-models", "1", "--epochs", "3",
                         "--quiet")
    assert code == 0 and "MLP" in out
    # a set from another dataset is refused with the fix named
    code, _, err = run(capsys, "eval", str(run_dir), "--dataset", "mnist", "--epochs", "1", "--quiet")
    assert code == 2 and "made from 'digits'" in err


def test_distill_writes_the_run_directory_and_resumes(capsys, tmp_path):
    args = ["distill", "method=dm", "dataset=digits", "model=ConvNetD2W16", "iterations=4", "checkpoint_every=2",
            "eval_models=[MLP]", "eval_num_models=1", "eval_epochs=2", "--out", str(tmp_path), "--quiet"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    run_dir = tmp_path / "dm-digits-ipc1-s0"
    for f in ("config.yaml", "distilled.safetensors", "distilled.json", "grid.png", "metrics.json", "curves.csv",
              "curves.png", "log.txt", "checkpoint.pt"):
        assert (run_dir / f).exists(), f
    # a second call resumes from the finished checkpoint and gives the same set
    from easydd.distilled import Distilled
    first = Distilled.load(run_dir).images
    code, out, err = run(capsys, *args)
    assert code == 0 and "resumed" in (run_dir / "log.txt").read_text()
    assert (Distilled.load(run_dir).images == first).all()
    # the checkpoint is never reused under settings that change the set, nor cut back to fewer iterations
    config_before = (run_dir / "config.yaml").read_text()
    for change, needle in ((["lambda_sdc=1"], "other settings (lambda_sdc: 0.0 -> 1.0"), (["seed=0", "lr_img=2"],
                           "other settings"), (["iterations=2"], "past this run's iterations=2")):
        over = [a for a in args if not a.startswith("iterations=")] if change[0].startswith("iterations") else args
        code, _, err = run(capsys, over[0], *change, *over[1:], "--name", "dm-digits-ipc1-s0")
        assert code == 2 and needle in err.strip().splitlines()[-1], err
    assert (run_dir / "config.yaml").read_text() == config_before
    assert (Distilled.load(run_dir).images == first).all()


def test_distill_and_select_on_your_own_npz(capsys, tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.integers(0, 255, size=(30, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "toy.npz", x_train=x, y_train=y, x_test=x[:9], y_test=y[:9])
    data = str(tmp_path / "toy.npz")
    code, out, err = run(capsys, "distill", "method=dm", f"dataset={data}", "model=ConvNetD2W16", "iterations=2",
                         "val_size=3", "eval_models=[MLP]", "eval_num_models=1", "eval_epochs=2", "--out",
                         str(tmp_path / "runs"), "--quiet")
    assert code == 0, err
    assert (tmp_path / "runs" / "dm-toy-ipc1-s0" / "distilled.safetensors").exists()
    # the set remembers where its data came from: eval needs no --dataset
    code, out, err = run(capsys, "eval", str(tmp_path / "runs" / "dm-toy-ipc1-s0"), "--models", "MLP",
                         "--num-models", "1", "--epochs", "2", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "select", "--method", "random", "--dataset", data, "--ipc", "20", "--no-eval",
                         "--out", str(tmp_path / "runs"))
    assert code == 2 and "larger than class" in err
