"""Errors a user can cause. The command line prints their message (which names the fix) and exits with code 2."""


class UserError(Exception):
    """Bad input from the user: a wrong path, an unknown name, an impossible setting."""
