"""Fault injection: kill -9 real runs at random moments (and in the middle of a checkpoint write), rerun the same
command, and compare what it produces with an uninterrupted run, bit for bit.

Scenarios (small budgets on scikit-learn's digits, so that it runs on a laptop CPU in minutes):
- dsa: ``easydd distill method=dsa`` (20 iterations, a checkpoint every iteration), the final set;
- mtt: ``easydd distill method=mtt`` on a tiny expert buffer made first, the final set and learned step size;
- experts: ``easydd experts`` (4 experts x 3 epochs), every expert's trajectory tensor.

Each trial starts the command in a process of its own and, once it has reached a random iteration (a random
number of finished experts), kills it with SIGKILL either after a random fraction of one more step or the moment
a temporary file of an atomic write appears (a kill during a checkpoint / set / expert write); then it reruns the
same command to completion and compares. Every run of a scenario uses the same directory, so the files (which record
their own settings) can be compared byte for byte. ``max_lost_iterations``: iterations the rerun did again
(the furthest iteration the killed process reported, minus the one it resumed from; a lower bound, from the
progress bar).

    python benchmarks/faults.py [--trials 10] [--out benchmarks/results/faults.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-c", "import sys; from easydd.cli import main; sys.exit(main(sys.argv[1:]))"]
ENV = dict(os.environ, EASYDD_NO_REEXEC="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
MODEL = "ConvNetD2W16"


def distill_cmd(work: Path, method: str) -> list[str]:
    common = ["--threads", "1", "distill", f"method={method}", "dataset=digits", f"model={MODEL}",
              "checkpoint_every=1", "--no-eval", "--out", str(work / "runs"), "--name", method]
    if method == "dsa":
        return common + ["iterations=20", "batch_real=16"]
    return common + ["iterations=15", f"buffer={work / 'buffer'}", "syn_steps=5", "expert_epochs=1",
                     "max_start_epoch=2", "lr_img=100", "lr_lr=1e-6"]


def experts_cmd(out: Path, n: int = 4, epochs: int = 3) -> list[str]:
    return ["--threads", "1", "experts", "--dataset", "digits", "--num-experts", str(n), "--epochs", str(epochs),
            "--model", MODEL, "--subset", "500", "--out", str(out)]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(PY + cmd, env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p


def fingerprint(target: Path, kind: str) -> dict:
    """What must be bit-identical: the set's tensors and header (distill), every expert's trajectory (experts)."""
    from safetensors import safe_open
    out = {}
    files = [target / "distilled.safetensors"] if kind == "distill" else sorted(target.glob("expert_*.safetensors"))
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            keys = sorted(h.keys()) if kind == "distill" else ["trajectory"]
            out[f.name] = {k: h.get_tensor(k).numpy().tobytes() for k in keys}
            if kind == "distill":
                out[f.name]["header"] = json.dumps(h.metadata(), sort_keys=True)
    return out


def _progress(err_path: str) -> int:
    """The furthest iteration the progress bar has printed so far."""
    with open(err_path, errors="replace") as f:
        counts = [int(m.group(1)) for m in re.finditer(r"(\d+)/\d+ \[", f.read())]
    return max(counts, default=0)


def kill_once(cmd: list[str], watch: Path, kind: str, total: int, mode: str, t_ref: float,
              rng: random.Random) -> tuple[bool, bool, int]:
    """Start ``cmd``; once it has made a random amount of progress (iteration k of a distillation, expert k of a
    buffer), SIGKILL it after a random fraction of one step ("random") or the moment a temporary file of an atomic
    write appears in ``watch`` ("during-write"). Returns (killed, killed while a temporary file existed, furthest
    iteration the progress bar reported)."""
    err = tempfile.NamedTemporaryFile(mode="w+", suffix=".log", delete=False)
    p = subprocess.Popen(PY + cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err, text=True)
    k = rng.randint(1, total - 1) if kind == "distill" else rng.randint(0, total - 1)

    def progress() -> int:
        if kind == "distill":
            return _progress(err.name)
        return len(list(watch.glob("expert_*.safetensors"))) if watch.is_dir() else 0
    while p.poll() is None and progress() < k:
        time.sleep(0.005)
    in_write = False
    if mode == "random":
        deadline = time.time() + rng.uniform(0.0, 0.9) * t_ref / total
        while time.time() < deadline and p.poll() is None:
            time.sleep(0.002)
    else:
        while p.poll() is None:
            if watch.is_dir() and any(n.endswith(".tmp") for n in os.listdir(watch)):
                in_write = True
                break
            time.sleep(0.0005)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait()
    reached = _progress(err.name)
    err.close()
    os.unlink(err.name)
    return killed, killed and in_write, reached


def resumed_from(log: Path) -> int:
    found = re.findall(r"resumed from iteration (\d+)", log.read_text()) if log.exists() else []
    return int(found[-1]) if found else 0


def scenario(name: str, work: Path, trials: int, rng: random.Random) -> dict:
    kind = "experts" if name == "experts" else "distill"
    if kind == "distill":
        cmd = distill_cmd(work, name)
        target = work / "runs" / name
        watch = target
        total = int(next(c.split("=")[1] for c in cmd if c.startswith("iterations=")))
    else:
        target = work / "experts"
        cmd = experts_cmd(target)
        watch = target
        total = int(cmd[cmd.index("--num-experts") + 1])
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.time()
    run(cmd)
    t_ref = time.time() - t0
    ref = fingerprint(target, kind)
    identical, lost, killed_n, in_write_n, modes = 0, [], 0, 0, []  # lost: distill only
    for i in range(trials):
        shutil.rmtree(target, ignore_errors=True)
        mode = "random" if i % 2 == 0 else "during-write"
        killed, in_write, reached = kill_once(cmd, watch, kind, total, mode, t_ref, rng)
        killed_n += killed
        in_write_n += in_write
        modes.append(mode)
        run(cmd)
        if kind == "distill" and killed:
            resumed = resumed_from(target / "log.txt")
            lost.append(max(0, reached - resumed))
        same = fingerprint(target, kind) == ref
        identical += same
        print(f"{name} trial {i + 1}/{trials} ({mode}): killed={killed} in_write={in_write} reached={reached} "
              f"identical={same}", flush=True)
    return {"name": name, "target": "distilled.safetensors" if kind == "distill" else "expert_*.safetensors "
            "(trajectory tensors)", "trials": trials, "killed": killed_n,
            "killed_during_a_write": in_write_n, "identical": identical,
            "max_lost_iterations": max(lost) if lost else None, "kill_modes": sorted(set(modes)),
            "reference_seconds": round(t_ref, 1),
            "command": "easydd " + " ".join(cmd).replace(str(work), "$WORK")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--scenarios", nargs="+", default=["dsa", "mtt", "experts"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "faults.json"))
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one, removed after)")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="easydd-faults-"))
    results = []
    try:
        if "mtt" in a.scenarios and not (work / "buffer" / "manifest.json").exists():
            run(experts_cmd(work / "buffer", n=2, epochs=3))
        for name in a.scenarios:
            results.append(scenario(name, work, a.trials, rng))
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(f"{r['name']}: {r['identical']}/{r['trials']} identical ({r['killed']} killed), "
              f"max lost iterations {r['max_lost_iterations']}")
    return 0 if all(r["identical"] == r["trials"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
