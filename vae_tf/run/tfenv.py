"""TensorFlow's start-up: the environment it reads once, and a quiet first import.

    VAE_TF_TENSORFLOW_BANNERS=1   show TensorFlow's start-up lines again

Imports no TensorFlow itself; `import_tensorflow()` is the one place that does so
first, for every command and for library users (train.run, trained.TrainedRun).
"""

import os
import sys
import tempfile


# What TensorFlow prints on every start, whatever TF_CPP_MIN_LOG_LEVEL says (TF 2.21
# writes these from C++ before its logging is set up): notices, not warnings.
BANNERS = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cuDNN factory", "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory", "Could not find cuda drivers",
    "computation placer already registered", "TF-TRT Warning: Could not find TensorRT",
)
# What the GPU-enabled TensorFlow says at its first device query on a machine with no
# NVIDIA driver: expected there; with a driver installed it is a real error and shows.
NO_DRIVER_NOTICES = ("failed call to cuInit",)


def set_tensorflow_defaults() -> None:
    """Environment settings that TensorFlow reads once, when it is first imported.

    Call before importing TensorFlow; a value already in the environment wins.
    """
    # TensorFlow's C++ INFO chatter hides the run's own messages; its warnings and
    # errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's convolution kernels instead of Eigen's: 1.8-2.2x the training images/s
    # of the conv VAE on 2 AMD EPYC (AVX2) cores, where TensorFlow leaves them off by
    # default (it turns them on only on CPUs with AVX-512 VNNI/BF16 or AMX), so the
    # same command ran at two speeds depending on the CPU.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def import_tensorflow():
    """Imports TensorFlow with `set_tensorflow_defaults` and looks up its devices,
    leaving out its start-up banners (BANNERS, and NO_DRIVER_NOTICES on a machine
    without an NVIDIA driver) from the standard error stream; anything else it prints
    there, real warnings and errors included, is passed on. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    set_tensorflow_defaults()
    if os.environ.get("VAE_TF_TENSORFLOW_BANNERS") == "1":
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        # The banners come from C++ straight to file descriptor 2, not sys.stderr.
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            # The devices are looked up here, once, so that what that prints is
            # filtered too (the first op would otherwise print it mid-run).
            tensorflow.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            quiet = BANNERS + (() if os.path.exists("/proc/driver/nvidia")
                               else NO_DRIVER_NOTICES)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not any(notice in line for notice in quiet)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    return tensorflow


# CPU features with which bfloat16 matrix products run natively (oneDNN uses them);
# without them TensorFlow emulates bfloat16, several times slower than float32.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    """The CPU's feature flags (empty where /proc/cpuinfo is not there)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(precision: str, jit_compile: bool = False) -> str:
    """--precision with 'auto' made concrete: mixed_bfloat16 on a GPU of compute
    capability 8.0 or more (every GPU is used by the strategies) or, without a GPU,
    on a CPU with native bfloat16 unless the step is compiled with XLA; float32
    elsewhere.

    XLA's CPU kernels gain nothing from bfloat16: on 2 AVX-512 BF16 cores it made
    each XLA-compiled preset slower than float32 (0.84x the images/s of
    flags/celeba_hierarchical.cfg, 0.89x of flags/mnist_hierarchical.cfg), while
    TensorFlow's own oneDNN kernels ran 1.1-1.5x faster in bfloat16.
    """
    if precision != "auto":
        return precision
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0)) for gpu in gpus]
        return "mixed_bfloat16" if min(capabilities) >= (8, 0) else "float32"
    native = cpu_flags() & set(BFLOAT16_CPU_FLAGS)
    return "mixed_bfloat16" if native and not jit_compile else "float32"
