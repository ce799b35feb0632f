"""Writing files whole or not at all: every file of a run (config, grids, report,
evaluation, arrays) goes through here, so that a crash, a kill or a full disk never
leaves half of a file where a whole one was, and an unwritable path is one clear
error."""

import contextlib
import errno
import json
import os
import re
import shutil

from vae_tf.errors import UserError
from vae_tf.run import faults


def cache_dir() -> str:
    """Where vae_tf keeps what it can build again (the image cache, the fused
    kernels): $XDG_CACHE_HOME/vae_tf, or ~/.cache/vae_tf."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vae_tf")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary name beside `path` to write to; when the block ends
    without error, the temporary file replaces `path` in one rename (readers see the
    old file or the new one, never a mix). Creates the folder; an OSError becomes a
    UserError naming `path`."""
    folder = os.path.dirname(path)
    # Hidden, and ending in the same extension, for writers that go by it.
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        yield tmp
        faults.point(f"write:{os.path.basename(path)}")
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise write_error(path, e.strerror or str(e)) from None
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path: str, data: bytes) -> str:
    """Writes `data` to `path` atomically (see `atomic_path`); returns `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text(path: str, text: str) -> str:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, values) -> str:
    return write_text(path, json.dumps(values, indent=2) + "\n")


def read_json_object(path: str) -> dict:
    """A JSON object file's dict, or {} (no file, or not a readable JSON object)."""
    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


@contextlib.contextmanager
def atomic_dir(path: str):
    """Like `atomic_path` for a folder: yields an empty temporary folder beside
    `path`; when the block ends without error, it takes the place of `path` (an
    older folder there is moved aside first and deleted after)."""
    parent, name = os.path.split(os.path.normpath(path))
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    old = os.path.join(parent, f".{name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        yield tmp
        faults.point(f"dir:{name}")
        if os.path.exists(path):
            os.rename(path, old)
        os.rename(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(path, e.strerror or str(e)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def append_line(path: str, line: str) -> None:
    """Appends one line to a log file and flushes it to the disk. A kill can cut
    the line short; readers of such logs skip a last line without its newline."""
    data = line.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Two writes, so that the crash tests can kill between them.
            os.write(fd, data[:len(data) // 2])
            faults.point(f"append:{os.path.basename(path)}")
            os.write(fd, data[len(data) // 2:])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise write_error(path, e.strerror or str(e)) from None


# What the OS says of a full or read-only disk.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
DISK_FULL_MESSAGES = tuple(os.strerror(code) for code in DISK_FULL)


def write_error(path: str, reason: str) -> UserError:
    """The one-line error for a write that failed; on a full disk it says how to go on."""
    message = f"Cannot write {path}: {reason}."
    if reason in DISK_FULL_MESSAGES:
        message += " Free some space and run the same command again to continue."
    return UserError(message)


def disk_error(error: Exception):
    """The `write_error` for an exception caused by a full or read-only disk, from the
    OS (its errno) or from TensorFlow's own writers (their message); else None."""
    text = str(getattr(error, "message", None) or error)
    reason = next((m for m in DISK_FULL_MESSAGES if m in text), None)
    if reason is None and getattr(error, "errno", None) in DISK_FULL:
        reason = os.strerror(error.errno)
    if reason is None:
        return None
    path = getattr(error, "filename", None) or next(iter(re.findall(r"/[^\s;:,'\"]+", text)), "?")
    return write_error(path, reason)


def is_leftover(name: str) -> bool:
    """Whether a file or folder name is one of the temporary names given here (to a
    write a kill interrupted), which only the owner of the folder may delete."""
    return name.startswith(".") and (".tmp-" in name or ".old-" in name)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
