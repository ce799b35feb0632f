"""The repository's own reference training loops for benchmarks/compare.py
(benchmarks/keras_ref.py and torch_ref.py) run, print their rate, and build the
project's conv network (tiny settings; no timing asserted)."""

import ast
import functools
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

TINY = ["--size", "16", "--channels", "8,16", "--latent", "4"]
NO_TORCH = ("PyTorch is not installed in this interpreter: pip install torch==2.13.0 in a "
            "separate virtual environment; compare.py --torch_python")


@functools.lru_cache(maxsize=None)
def torch_works() -> bool:
    """Whether `import torch` works in this interpreter (checked in a child process, so
    that PyTorch never loads beside TensorFlow in the test process)."""
    return subprocess.run([sys.executable, "-c", "import torch"],
                          capture_output=True, timeout=300).returncode == 0


def run_reference(script, *args) -> str:
    if script == "torch_ref.py" and not torch_works():
        pytest.skip(NO_TORCH)
    result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("script", ["keras_ref.py", "torch_ref.py"])
def test_reference_prints_a_positive_rate(script):
    out = run_reference(script, *TINY, "--batch", "8", "--steps", "3", "--warmup", "1")
    rates = re.findall(r"^images_per_s=(\S+)$", out, re.M)
    assert len(rates) == 1, out
    assert float(rates[0]) > 0, out


def project_params(size, channels, latent) -> int:
    from vae_tf.models.architectures import build_decoder, build_encoder
    from vae_tf.config import Config
    config = Config(dataset="synthetic", architecture="conv", conv_channels=channels,
                    kernel_size=4, latent_dim=latent)
    shape = (size, size, 3)
    return (build_encoder(config, shape).count_params()
            + build_decoder(config, shape, shape[-1]).count_params())


@pytest.mark.parametrize("script", ["keras_ref.py", "torch_ref.py"])
def test_reference_has_the_projects_parameter_count(script):
    out = run_reference(script, *TINY, "--print_params")
    found = re.findall(r"^params=(\d+)$", out, re.M)
    assert found and int(found[0]) == project_params(16, (8, 16), 4), out


def test_keras_reference_does_not_use_the_project():
    with open(os.path.join(REPO, "benchmarks", "keras_ref.py")) as f:
        tree = ast.parse(f.read())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.split(".")[0] == "vae_tf" for m in modules), modules
