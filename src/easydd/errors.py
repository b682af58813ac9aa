"""Errors a user can cause, in one place. Every one is a ``UserError``: the command line prints its message (which
names the fix) on one line and exits with code 2; anything else is a bug and keeps its traceback.

The modules that raise them re-export their own (``easydd.distilled.DistilledFileError``,
``easydd.nets.UnknownModel``, ``easydd.data.DataError``, ``easydd.difficulty.PanelError``,
``easydd.train.DivergenceError``), so either import path works.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a wrong path, an unknown name, an impossible setting."""


class DistilledFileError(UserError, ValueError):
    """A distilled file that is missing, corrupt or not ours."""


class UnknownModel(UserError, ValueError):
    """A network name easydd does not know."""


class DataError(UserError):
    """A user-fixable data problem (missing, corrupt or unexpected file); the message names the fix."""


class PanelError(UserError, ValueError):
    """A panel file that is missing, corrupt or not ours, or panel settings that cannot work."""


class DivergenceError(UserError, RuntimeError):
    """Training a network produced a NaN/inf loss: the learning rate is too high for these data."""


class DivergedError(UserError):
    """The matching loss or a learned rate became NaN/inf or exploded. The driver keeps the last good checkpoint
    and marks the run, so that a rerun with lowered rates resumes from it."""


class RunLocked(UserError):
    """Another live process is writing the same run directory."""


class WriteFailed(UserError):
    """A file could not be written (disk full, read-only, permissions); the previous version is intact."""


def divergence_advice(rates: str, checkpoint=None, every: int = 0) -> str:
    """The sentences every divergence message ends with: which rates to lower, and what a rerun does. For a
    distillation run pass its ``checkpoint`` path (and ``checkpoint_every``): the message then says whether a
    checkpoint exists to resume from, or that none had been written yet and the rerun starts over."""
    if checkpoint is None:
        return f"Lower {rates} and rerun the same command."
    if checkpoint.exists():
        return (f"The last good checkpoint is kept in {checkpoint}. Lower {rates} and rerun the same command: it "
                "resumes from that checkpoint with the new rates (--no-resume starts over).")
    return (f"No checkpoint had been written yet (checkpoint_every={every}). Lower {rates} and rerun the same "
            "command: it starts over with the new rates.")
