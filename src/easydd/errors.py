"""Errors a user can cause. The command line prints their message (which names the fix) and exits with code 2."""


class UserError(Exception):
    """Bad input from the user: a wrong path, an unknown name, an impossible setting."""


class DivergedError(UserError):
    """The matching loss or a learned rate became NaN/inf or exploded. The driver keeps the last good checkpoint
    and marks the run, so that a rerun with lowered rates resumes from it."""
