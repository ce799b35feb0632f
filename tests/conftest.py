"""Shared test helpers: where the real data lives, tiny configurations, subprocess runs."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
MNIST_DIR = os.path.join(SHARED_DATA, "mnist")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def require_dir(path: str, what: str) -> str:
    """Skips the test, saying why, when real data it needs is not on this machine."""
    if not os.path.isdir(path):
        pytest.skip(f"{what} not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture
def mnist_dir():
    return require_dir(MNIST_DIR, "MNIST IDX files")


def tiny_config(**changes):
    """A configuration that trains in a second or two on the synthetic shapes."""
    from vae_tf.config import Config
    values = dict(dataset="synthetic", epochs=2, steps_per_epoch=8, eval_steps=2,
                  batch_size=32, latent_dim=4, conv_channels=(8, 16), grid_size=4)
    values.update(changes)
    return Config(**values)


def run_module(module: str, *args, cwd=REPO, timeout=300, env=None):
    """Runs `python -m module args...` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(result) -> str:
    """The single `error: ...` line of a command that failed on bad input (exit 1,
    no traceback)."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]
