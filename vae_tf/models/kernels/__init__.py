"""Fused CPU kernels of the training step, built from their C++ source on first use.

TensorFlow runs an element-wise formula as one kernel per operation, each a pass
over memory; for a likelihood of 8-bit pixels that is some forty passes over the
decoder's output for the loss and its gradient. The C++ kernels here make one.

A kernel is compiled with the machine's C++ compiler (`$CXX`, else g++) against the
installed TensorFlow's headers, for this CPU (-march=native), into
`$VAE_TF_KERNEL_CACHE` (default: `kernels/` in `files.cache_dir()`): once per machine,
TensorFlow version and source, in about 20 s. Where it cannot be built or loaded,
`library()` says why once and returns None, and the caller uses TensorFlow's ops.
A failed build leaves a `.failed` file beside where the library would be (same
machine, compiler and source), so later runs do not try again until it is deleted
or `VAE_TF_KERNEL_REBUILD=1` is set.

The kernel runs on the CPU only: a training step placed on a GPU uses TensorFlow's
ops (see `likelihoods.DiscretizedLogistic.from_settings`).

They serve the training step only: a SavedModel that held one could not be served
without the library, so the export, evaluation and the grids use TensorFlow's ops.
"""

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess

from absl import logging

from vae_tf.errors import UserError
from vae_tf.run import files


_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "discretized_logistic.cc")


def _cpu_flags() -> str:
    """The CPU's feature flags: a library built with -march=native runs only on them."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


# Flags that keep TensorFlow's Eigen headers away from instruction sets they do not
# compile for: with -march=native on a CPU with AVX512-FP16, g++ 12 fails in
# Eigen's PacketMathFP16.h ("expected initializer before '<' token"). Each is added
# only where the compiler knows it.
_AVOIDED_ISA_FLAGS = ("-mno-avx512fp16",)
# Set to 1 to try a build that failed before on this machine again.
REBUILD_ENV = "VAE_TF_KERNEL_REBUILD"


def _supported(compiler: str, flag: str) -> bool:
    """Whether `compiler` accepts `flag` (it compiles an empty program with it)."""
    try:
        result = subprocess.run([compiler, flag, "-Werror", "-x", "c++", "-fsyntax-only", "-"],
                                input="", capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def compile_command(compiler: str) -> list:
    """The command that builds the kernel library with `compiler` (add `-o <file>`)."""
    import tensorflow as tf

    extra = [flag for flag in _AVOIDED_ISA_FLAGS if _supported(compiler, flag)]
    return [compiler, "-shared", "-fPIC", "-O3", "-march=native", *extra,
            *tf.sysconfig.get_compile_flags(), _SOURCE, *tf.sysconfig.get_link_flags()]


def _build(path: str, command) -> None:
    """Compiles into `path`, once however many processes ask at the same time."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        lock = open(path + ".lock", "w")
    except OSError as e:
        raise files.write_error(folder, e.strerror or str(e)) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if os.path.exists(path):
            return
        logging.info("Building vae_tf's fused likelihood kernel for this machine (once, "
                     "about 20 s): %s", path)
        logging.info("  %s", " ".join(command + ["-o", path]))
        with files.atomic_path(path) as partial:  # whole or not at all
            result = subprocess.run([*command, "-o", partial], capture_output=True, text=True)
            if result.returncode != 0:
                errors = [line for line in result.stderr.splitlines() if "error" in line]
                reason = (f"{command[0]} failed with status {result.returncode}: "
                          + (errors or result.stderr.splitlines() or ["no message"])[0])
                # Remembered, with the whole command and its output, for the next runs.
                files.write_text(_failed_path(path), " ".join(command) + "\n\n"
                                 + result.stderr)
                raise RuntimeError(reason)


def _failed_path(path: str) -> str:
    return path[:-len(".so")] + ".failed"


@functools.cache
def library():
    """The loaded kernel library (its ops as attributes), or None where it cannot be
    built or loaded here (the reason logged once)."""
    import tensorflow as tf

    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        return _unavailable(f"no C++ compiler {compiler!r} (install g++, or set $CXX)")
    command = compile_command(compiler)
    with open(_SOURCE, "rb") as f:
        source = f.read()
    key = hashlib.sha256(b"\0".join([source, tf.__version__.encode(), " ".join(command).encode(),
                                     _cpu_flags().encode()])).hexdigest()[:16]
    folder = os.environ.get("VAE_TF_KERNEL_CACHE") or os.path.join(files.cache_dir(), "kernels")
    path = os.path.join(folder, f"discretized_logistic-{key}.so")
    failed = _failed_path(path)
    try:
        if not os.path.exists(path):
            if os.path.exists(failed) and os.environ.get(REBUILD_ENV) != "1":
                return _unavailable(f"its build failed before on this machine with this "
                                    f"compiler, see {failed}; delete that file or set "
                                    f"{REBUILD_ENV}=1 to try again")
            _build(path, command)
            if os.path.exists(failed):
                os.remove(failed)
        return tf.load_op_library(path)
    except (OSError, RuntimeError, UserError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, RuntimeError) and os.path.exists(failed):
            reason += (f"; not tried again on this machine: delete {failed} or set "
                       f"{REBUILD_ENV}=1 to retry")
        return _unavailable(reason)


def unavailable_reason() -> str:
    """Why `library()` returned None (empty if it did not, or was not called)."""
    return _last_reason


_last_reason = ""


def _unavailable(reason: str) -> None:
    global _last_reason
    _last_reason = reason
    logging.warning("vae_tf's fused likelihood kernel is unavailable (%s); the training "
                    "step uses TensorFlow's ops for it, about 3x slower.", reason)
    return None


def discretized_logistic_nll(x, h, *, bins, location_offset, log_scale_offset, log_scale_min):
    """-log p(x | h) per image [N] of the discretized logistic, differentiable in h,
    or None where the kernel is unavailable. x [N, ..., C], h [N, ..., 2C] (the
    locations, then the raw log-scales, of each pixel), float32 or float64."""
    lib = library()
    if lib is None:
        return None
    import tensorflow as tf

    @tf.custom_gradient
    def nll(h):
        value, grad = lib.vae_tf_discretized_logistic_nll(
            x, h, bins=bins, location_offset=location_offset,
            log_scale_offset=log_scale_offset, log_scale_min=log_scale_min)

        def backward(upstream):
            # nll[n] depends on image n's parameters only.
            return tf.reshape(upstream, [-1] + [1] * (h.shape.rank - 1)) * grad

        return value, backward

    return nll(h)
