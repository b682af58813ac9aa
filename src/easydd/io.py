"""Writing files so that nothing is lost: atomic replacement, append-only JSON lines, one process per run directory.

- ``atomic_write(path, writer)``: ``writer(tmp)`` fills a temporary file beside ``path``; it is flushed to disk
  (fsync), renamed onto ``path`` and the directory entry is fsynced too. A reader (or a rerun after a crash or a
  ``kill -9``) sees the old file or the new one, never a mix. A write that fails for a reason the user can fix
  (disk full, read-only, permissions) raises :class:`~easydd.errors.WriteFailed` saying the previous file is intact.
- ``append_jsonl`` / ``read_jsonl``: one JSON object per line; a record is written with a single ``write`` and
  fsynced, and a torn last line (a process killed mid-append) is ignored on reading.
- ``RunLock``: a run directory belongs to one live process. The lock file ``.lock`` holds the owner's pid and host
  and is held with ``flock`` for the owner's lifetime, so the kernel releases it when the owner dies (even by
  ``kill -9``): a second process is refused with a message naming the owner, and a stale lock is taken over.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

from .errors import RunLocked, UserError, WriteFailed

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock falls back to the pid check alone
    fcntl = None  # type: ignore[assignment]

# errors a user can fix by freeing space, choosing another directory or changing permissions
USER_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_failed(path: Path, e: OSError, existed: bool) -> WriteFailed:
    kept = f"the previous {path.name} is intact" if existed else f"nothing was written to {path}"
    return WriteFailed(f"cannot write {path} ({e.strerror or e}); {kept}. Free disk space or fix the permissions "
                       "(or choose another output directory) and rerun the same command")


def atomic_write(path: str | os.PathLike, writer) -> None:
    """Call ``writer(tmp_path)`` then fsync and rename onto ``path``: a reader never sees a half-written file."""
    path = Path(path)
    existed = path.exists()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
        os.close(fd)
        writer(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as e:
        if e.errno in USER_WRITE_ERRNOS:
            raise write_failed(path, e, existed) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON object as one line, with a single write, flushed to disk."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in USER_WRITE_ERRNOS:
            raise write_failed(path, e, path.exists()) from None
        raise


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every record of a JSON-lines file. A torn last line (no newline: its writer was killed) is skipped; any
    other line that is not a JSON object raises a UserError naming the line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 text file of JSON lines; pass the .jsonl file easydd wrote") \
            from None
    lines = text.split("\n")
    torn = lines[-1] if lines and lines[-1].strip() else None
    out = []
    for i, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i} is not JSON ({e.msg}); fix or delete that line") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{i} is a JSON {type(rec).__name__}, not an object; fix or delete that line")
        out.append(rec)
    if torn is not None:
        try:  # a complete record that merely lacks its newline is kept
            rec = json.loads(torn)
            if isinstance(rec, dict):
                out.append(rec)
        except json.JSONDecodeError:
            pass
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


class RunLock:
    """``with RunLock(run_dir):`` the run directory belongs to this process until the block ends."""

    NAME = ".lock"

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.NAME
        self.fd: int | None = None
        self.took_over: dict | None = None   # the stale owner this lock replaced, if any

    def _read(self) -> dict:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, info: dict) -> RunLocked:
        pid, host = info.get("pid", "?"), info.get("host", "?")
        since = time.strftime("%H:%M:%S", time.localtime(info["time"])) if isinstance(info.get("time"), (int, float)) \
            else "?"
        return RunLocked(f"{self.run_dir} is in use by process {pid} on {host} (since {since}); wait for it to "
                         "finish, or give this run another name (name=... or --name). If that process is gone, "
                         f"delete {self.path}")

    def acquire(self) -> "RunLock":
        host = socket.gethostname()
        for _ in range(10):
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                if e.errno in USER_WRITE_ERRNOS:
                    raise write_failed(self.path, e, False) from None
                raise
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # a live process holds it
                    os.close(fd)
                    raise self._refuse(self._read()) from None
                try:  # the file we locked may have been removed by its releasing owner meanwhile: retry
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            old = self._read()
            if old.get("pid") not in (None, os.getpid()) or old.get("host") not in (None, host):
                if fcntl is None and old.get("host") == host and _pid_alive(int(old["pid"])):
                    os.close(fd)
                    raise self._refuse(old)
                self.took_over = old   # its owner is gone: the kernel released its flock
            info = json.dumps({"pid": os.getpid(), "host": host, "time": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
            os.fsync(fd)
            self.fd = fd
            return self
        raise RunLocked(f"{self.run_dir}: could not take the lock {self.path}; another process keeps replacing it")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlinked while still held: a waiter re-checks the inode
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
