"""Errors a user can cause; every command prints them as one `error: ...` line."""


class UserError(Exception):
    """Bad input: a wrong flag value, missing or corrupt data, an unusable path.

    `exit_code` is the command's exit status when it stops on this error.
    """

    exit_code = 1


class FlagError(UserError, ValueError):
    """A flag value or a combination of flags that no run accepts (exit status 2)."""

    exit_code = 2


class Interrupted(Exception):
    """The user stopped the command (Ctrl-C); the message is the one line to print."""

    exit_code = 130  # the shell's status for SIGINT
