"""Errors a user can cause; the command-line modules print them as one line."""


class UserError(Exception):
    """Bad input: a wrong flag value, missing or corrupt data, an unusable path."""
