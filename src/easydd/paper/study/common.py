"""What both studies share: the log line, whole-file writes, dataset loading and JSON Lines reading."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ...errors import UserError


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _atomic_text(path: Path, text: str) -> None:
    from ...io import atomic_write
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _load_dataset(name: str):
    from ...data import load_dataset
    try:
        return load_dataset(name)
    except UserError:  # DataError and every other user error: its message already names the fix
        raise
    except (KeyError, ValueError) as e:
        raise UserError(f"cannot load dataset {name!r}: {e}") from None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by a kill: the run is redone
    return rows
