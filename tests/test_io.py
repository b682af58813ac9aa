"""easydd.io and what the driver builds on it: atomic writes that survive a failing writer and a full disk, JSON
lines that survive a torn append, one process per run directory, and a run that SIGTERM or kill -9 interrupts
resumes to the same bytes."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from easydd.cli import main
from easydd.errors import RunLocked, UserError, WriteFailed
from easydd.io import RunLock, append_jsonl, atomic_write, read_jsonl


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write(p, lambda t: Path(t).write_text("old"))

    def half_then_fail(t):
        Path(t).write_text("half")
        raise RuntimeError("writer died")
    with pytest.raises(RuntimeError):
        atomic_write(p, half_then_fail)
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_write_on_a_full_disk_says_the_previous_file_is_intact(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write(p, lambda t: Path(t).write_text("old"))
    with pytest.raises(WriteFailed, match="the previous a.txt is intact. Free disk space"):
        atomic_write(p, enospc)
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(WriteFailed, match="nothing was written to"):
        atomic_write(tmp_path / "new.txt", enospc)
    assert not (tmp_path / "new.txt").exists()


def test_atomic_write_fsyncs_the_file_and_the_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else None)
        real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(tmp_path / "a.txt", lambda t: Path(t).write_text("x"))
    assert len(synced) == 2
    if synced[0] is not None:
        assert synced == [False, True]  # the file's data, then the directory entry


def test_jsonl_round_trip_and_a_torn_last_line(tmp_path):
    p = tmp_path / "r.jsonl"
    append_jsonl(p, {"a": 1})
    append_jsonl(p, {"b": [1, 2]})
    with open(p, "a") as f:
        f.write('{"c": 3, "tor')  # a writer killed mid-append
    assert read_jsonl(p) == [{"a": 1}, {"b": [1, 2]}]
    p.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(UserError, match=r"r.jsonl:2 is not JSON"):
        read_jsonl(p)
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"r.jsonl:2 is a JSON list, not an object"):
        read_jsonl(p)
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not a UTF-8 text file"):
        read_jsonl(p)


def test_a_second_lock_on_a_run_directory_is_refused_naming_the_owner(tmp_path):
    with RunLock(tmp_path) as first:
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()} on "):
            RunLock(tmp_path).acquire()
        assert first.fd is not None
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire().release()  # free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "time": 0}))
    lock = RunLock(tmp_path).acquire()
    try:
        assert lock.took_over["pid"] == dead.pid
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    finally:
        lock.release()


# -- the driver: a full disk, SIGTERM, kill -9 ---------------------------------------------------------------------

ARGS = ["--threads", "1", "distill", "method=dm", "dataset=digits", "model=ConvNetD2W16", "batch_real=8",
        "checkpoint_every=1", "--no-eval", "--quiet"]


def files_of(run_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


@pytest.mark.parametrize("target,patch", [("checkpoint.pt", "torch.save"),
                                          ("distilled.safetensors", "easydd.distilled.save_file"),
                                          ("log.txt", "easydd.distill.open")])
def test_a_full_disk_leaves_the_previous_checkpoint_and_set_intact(capsys, tmp_path, monkeypatch, target, patch):
    assert main(ARGS + ["iterations=2", "--out", str(tmp_path)]) == 0
    run_dir = tmp_path / "dm-digits-ipc1-s0"
    before = files_of(run_dir)
    capsys.readouterr()
    if patch == "torch.save":
        monkeypatch.setattr(torch, "save", enospc)
    elif patch == "easydd.distill.open":  # every file the driver opens itself: the log first
        monkeypatch.setattr(sys.modules["easydd.distill"], "open", enospc, raising=False)
    else:
        import easydd.distilled
        monkeypatch.setattr(easydd.distilled, "save_file", enospc)
    code = main(ARGS + ["iterations=4", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"the previous {target} is intact" in err and "No space left on device" in err and "Free disk" in err
    after = files_of(run_dir)
    assert after["distilled.safetensors"] == before["distilled.safetensors"]
    if target != "distilled.safetensors":
        assert after["checkpoint.pt"] == before["checkpoint.pt"]
    assert not [n for n in os.listdir(run_dir) if n.endswith(".tmp") or n == ".lock"]
    monkeypatch.undo()
    monkeypatch.setenv("EASYDD_NO_REEXEC", "1")
    assert main(ARGS + ["iterations=4", "--out", str(tmp_path)]) == 0  # space again: the same command finishes


def _spawn(out: Path, iterations: int) -> subprocess.Popen:
    code = ("import sys; from easydd.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, EASYDD_NO_REEXEC="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code, *ARGS, f"iterations={iterations}",
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.time()
    while not (run_dir / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, sig):
    iters = 16
    ref = tmp_path / "ref"
    assert main([*ARGS, f"iterations={iters}", "--out", str(ref)]) == 0
    out = tmp_path / "cut"
    run_dir = out / "dm-digits-ipc1-s0"
    proc = _spawn(out, iters)
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(sig)
    rc = proc.wait(60)
    if proc.returncode == 0:  # it finished before the signal landed: nothing was interrupted
        pytest.skip("the run finished before the signal arrived")
    if sig == signal.SIGTERM:
        assert rc == 130, proc.stderr.read()
        assert "interrupted by SIGTERM" in (run_dir / "log.txt").read_text()
        assert not [n for n in os.listdir(run_dir) if n.endswith(".tmp") or n == ".lock"]
    else:
        assert rc == -signal.SIGKILL
        (run_dir / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves
    assert main([*ARGS, f"iterations={iters}", "--out", str(out)]) == 0
    assert "resumed from iteration" in (run_dir / "log.txt").read_text()
    from easydd.distilled import Distilled
    a, b = Distilled.load(ref / "dm-digits-ipc1-s0"), Distilled.load(run_dir)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)  # bit-identical
    a.meta["config"].pop("out_dir"), b.meta["config"].pop("out_dir")
    assert a.meta == b.meta
    sa = torch.load(ref / "dm-digits-ipc1-s0" / "checkpoint.pt", weights_only=True)
    sb = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert sa["iteration"] == sb["iteration"] == iters and sa["rows"] == sb["rows"]
    assert torch.equal(sa["method"]["images"], sb["method"]["images"])
    assert not [n for n in os.listdir(run_dir) if n.endswith(".tmp") or n == ".lock"]


def test_a_damaged_dataset_cache_entry_is_not_trusted(tmp_path):
    """Right shapes, wrong bytes (zeroed images): the checksum catches it and the data are read from the source."""
    import numpy as np

    from easydd.data import cache, load_dataset
    a = load_dataset("digits", cache_dir=tmp_path)
    entry = cache.entry_dir("digits", tmp_path)
    x = np.load(entry / "x_train.npy")
    np.save(entry / "x_train.npy", np.zeros_like(x))
    with pytest.warns(UserWarning, match="x_train fail their checksum"):
        b = load_dataset("digits", cache_dir=tmp_path)
    assert torch.equal(a.x_train, b.x_train) and b.x_train.abs().sum() > 0
    assert cache.load_cached("digits", tmp_path) is not None  # rewritten whole


def test_an_expert_folder_in_use_is_refused(tmp_path, digits):
    from easydd.experts import train_experts
    with RunLock(tmp_path / "buf"):
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()}"):
            train_experts(digits, out_dir=tmp_path / "buf", num_experts=1, epochs=1, model="ConvNetD2W16",
                          subset=100, progress=False, log=lambda m: None)
    assert not list((tmp_path / "buf").glob("expert_*"))
