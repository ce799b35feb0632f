"""Shared test helpers: where the real data lives, tiny configurations, subprocess runs."""

import os
import signal
import subprocess
import sys

import pytest

from vae_tf.run.tfenv import set_tensorflow_defaults  # noqa: E402  (imports no TensorFlow)

# Before any test imports TensorFlow: the same environment as the commands.
set_tensorflow_defaults()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Real datasets for the tests that need them: a folder holding mnist/ (the four IDX
# files), celeba/ (img_align_celeba/ with list_eval_partition.txt, list_attr_celeba.txt)
# and frey_faces/ (frey_rawface.mat). Fashion-MNIST comes from Debian's
# dataset-fashion-mnist package. Tests that need a missing one skip, saying so.
DATA_ENV = "VAE_TF_TEST_DATA"
SHARED_DATA = os.environ.get(DATA_ENV) or os.path.join(os.path.dirname(REPO), "shared", "data")
MNIST_DIR = os.path.join(SHARED_DATA, "mnist")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def require_dir(path: str, what: str, how: str = "") -> str:
    """Skips the test, saying why, when real data it needs is not on this machine."""
    if not os.path.isdir(path):
        pytest.skip(f"{what} not found at {path}: " + (how or (
            f"set {DATA_ENV} to a folder holding mnist/, celeba/ and frey_faces/ "
            "(see docs/reference.md, 'Tests')")))
    return path


@pytest.fixture
def mnist_dir():
    return require_dir(MNIST_DIR, "MNIST IDX files")


def tiny_config(**changes):
    """A configuration that trains in a second or two on the synthetic shapes."""
    from vae_tf.config import Config
    # float32 whatever the CPU: tests compare numbers against float32 references at
    # float32 tolerances, and --precision=auto means bfloat16 on CPUs with AVX-512
    # BF16 (tests/test_precision.py checks the 16-bit policies; the command-line
    # tests run at auto).
    values = dict(dataset="synthetic", epochs=2, steps_per_epoch=8, eval_steps=2,
                  batch_size=32, latent_dim=4, conv_channels=(8, 16), grid_size=4,
                  precision="float32")
    values.update(changes)
    return Config(**values)


@pytest.fixture(scope="session")
def binarized_run(tmp_path_factory):
    """A briefly trained VAE on binarized shapes (a discrete likelihood, so bits/dim),
    shared by the tests of evaluate and FID; they only read it."""
    from vae_tf import train

    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(binarize="dynamic", epochs=2, steps_per_epoch=30,
                         output_dir=str(out), run_name="bin")
    return train.run(config)["run_dir"]


def ctrl_c_reaches_it():
    """A Popen preexec_fn: the child takes Ctrl-C (SIGINT) as from a terminal, even
    where the test run was started with SIGINT ignored (nohup or a background job
    of a script), which a child would inherit and never stop on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_module(module: str, *args, cwd=REPO, timeout=300, env=None):
    """Runs `python -m module args...` as a user would; returns the CompletedProcess.
    `env` adds variables to the environment; a None value removes one."""
    full_env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# Image-file datasets.
CELEBA_DIR = os.path.join(SHARED_DATA, "celeba")
FREY_DIR = os.path.join(SHARED_DATA, "frey_faces")


def copy_celeba_images(dest, count: int) -> list:
    """Copies the first `count` real CelebA JPEGs into `dest` (skips without them)."""
    import shutil
    source = os.path.join(require_dir(CELEBA_DIR, "CelebA images"), "img_align_celeba")
    os.makedirs(dest, exist_ok=True)
    names = sorted(os.listdir(source))[:count]
    for name in names:
        shutil.copy(os.path.join(source, name), os.path.join(dest, name))
    return names


def add_bad_files(folder) -> dict:
    """Adds what real folders contain beside good JPEGs; returns {name: what it is}.

    A JPEG cut in half (an interrupted download), a text file, a grayscale JPEG and
    an RGBA PNG, made from the folder's first image.
    """
    from PIL import Image
    first = os.path.join(folder, sorted(os.listdir(folder))[0])
    with open(first, "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "202599.jpg"), "wb") as f:
        f.write(data[:len(data) // 2])
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("downloaded from the CelebA page\n")
    Image.open(first).convert("L").save(os.path.join(folder, "gray.jpg"))
    rgba = Image.open(first).convert("RGBA")
    rgba.putalpha(200)
    rgba.save(os.path.join(folder, "rgba.png"))
    return {"202599.jpg": "truncated", "notes.txt": "text", "gray.jpg": "grayscale",
            "rgba.png": "rgba"}


def error_line(result) -> str:
    """The single `error: ...` line of a command that failed on bad input (exit 1,
    no traceback)."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]
