"""Process-level settings: the memory allocator, threads, and explicit random generators.

glibc's default allocator maps and unmaps every large activation buffer, which halves PyTorch's speed on a CPU
(docs/speed.md: 7 of 11 s were system time). The fix has to be in the environment before Python starts, so the
command-line entry point re-executes itself once with the variables set (``ensure_fast_allocator``). Library users
who start Python themselves should export the same variables (see README).
"""
from __future__ import annotations

import os
import sys

import torch

ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
_REEXEC_FLAG = "EASYDD_REEXECED"


def allocator_is_tuned() -> bool:
    if "tcmalloc" in os.environ.get("LD_PRELOAD", "") or "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return True
    return all(os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items())


def ensure_fast_allocator(argv: list[str] | None = None) -> None:
    """Re-execute the current command once with the tuned glibc allocator settings (no-op if already set,
    if EASYDD_NO_REEXEC is set, or on non-glibc platforms)."""
    if allocator_is_tuned() or os.environ.get(_REEXEC_FLAG) or os.environ.get("EASYDD_NO_REEXEC"):
        return
    if not sys.platform.startswith("linux"):
        return
    env = dict(os.environ, **ALLOCATOR_ENV, **{_REEXEC_FLAG: "1"})
    # OpenMP threads that spin while waiting were measured 5-10x slower on a busy 2-core machine; sleeping
    # waits cost little on an idle one. The user's own setting wins.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = [sys.executable, "-m", "easydd.cli", *(sys.argv[1:] if argv is None else argv)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)


def set_threads(n: int | None = None) -> int:
    """Use all cores unless told otherwise (one thread is 1.5-2x slower than two here): ``--threads``, then
    ``EASYDD_THREADS``, then ``OMP_NUM_THREADS`` (a user who pins OpenMP to one thread to run two jobs side by side
    means it: overriding it put two 2-thread jobs on 2 cores and made each 2-3x slower), then every core."""
    n = n or _env_int("EASYDD_THREADS") or _env_int("OMP_NUM_THREADS") or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def share_cores(world: int, device=None) -> None:
    """Give each of ``world`` local CPU processes its share of the cores. Only process entry points call it (the
    command line, spawned workers), so a library call never changes its caller's thread count."""
    on_cpu = str(device) == "cpu" or (device is None and not torch.cuda.is_available())
    if world > 1 and on_cpu:
        local = min(world, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))  # a process-wide setting: entry points only


def cpu_name() -> str:
    """The CPU model (e.g. for records: runs on two CPU models differ in the last bits, then chaotically)."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _env_int(name: str) -> int:
    """A positive integer from the environment, or 0 when unset or not one (OpenMP accepts lists like ``4,2``: the
    first entry is the outer level's count)."""
    raw = os.environ.get(name, "").split(",")[0].strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when one is visible, else the CPU; ``cpu``, ``cuda``, ``cuda:1``, ``mps`` as
    named. A device this machine lacks is the user's error, named with its fix."""
    from .errors import UserError
    name = "auto" if name is None else str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:<index> or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} but PyTorch sees no CUDA GPU here (torch {torch.__version__}); use "
                        "device=cpu or device=auto") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device={name} but only {torch.cuda.device_count()} CUDA GPU(s) are visible") from None
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UserError("device=mps but PyTorch has no MPS backend here; use device=cpu") from None
    return dev


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator seeded with ``seed``; easydd never seeds or draws from the global RNG for data."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *keys: int | str) -> int:
    """A stable sub-seed for a named stream (e.g. derive_seed(seed, 'eval', 3)); independent of call order."""
    import hashlib
    h = hashlib.sha256(repr((int(seed),) + tuple(keys)).encode()).digest()
    return int.from_bytes(h[:7], "little")


class PeakMemory:
    """Peak resident memory of this process in MiB: Linux's VmHWM, else ru_maxrss. Not ru_maxrss first: a process
    started by fork + exec (a sweep worker, a benchmark row) starts there at its parent's peak."""

    @staticmethod
    def rss_mib() -> float:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RunsETA:
    """Progress of a command whose unit of work is a whole run (a sweep, a study): after each run, a tag
    '[k/n, S s per run, ETA H:MM:SS]' from the mean time per run so far. ``clock`` is injectable for tests."""

    def __init__(self, total: int, clock=None):
        import time
        self.total, self.done = int(total), 0
        self._clock = clock or time.perf_counter
        self._t0 = self._clock()

    def step(self) -> str:
        self.done += 1
        per = (self._clock() - self._t0) / self.done
        left = int(round(per * max(self.total - self.done, 0)))
        return f"[{self.done}/{self.total}, {per:.0f} s per run, ETA {left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}]"
