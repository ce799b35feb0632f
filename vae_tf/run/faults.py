"""Fault injection for the crash tests: a process started with
VAE_TF_KILL_AT=<point>[@<n>] kills itself with SIGKILL the n-th time (default the
first) it reaches `point(<point>)`, as a power cut or the OOM killer would.

The points sit where a kill is most harmful (between writing a file's bytes and
renaming it into place, in the middle of a metrics row, during the export and the
image cache build). Without the variable, `point` does nothing.
"""

import os
import signal


_counts = {}


def point(name: str) -> None:
    """Kills this process here if VAE_TF_KILL_AT names this point (and count)."""
    wanted = os.environ.get("VAE_TF_KILL_AT")
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
