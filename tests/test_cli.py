"""`python -m vae_tf.train` as a user runs it: the real MNIST command and bad input."""

import os

import numpy as np
from PIL import Image

from conftest import run_module


def _error_line(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


def test_mnist_command_from_the_issue(tmp_path, mnist_dir):
    result = run_module("vae_tf.train", "--dataset=mnist", f"--data_dir={mnist_dir}",
                        "--epochs=1", "--steps_per_epoch=50", f"--output_dir={tmp_path}",
                        "--run_name=mnist")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "mnist"
    for name in ("config.json", "metrics.csv", "images/recon_epoch_0001.png",
                 "images/samples_epoch_0001.png", "checkpoints/epoch_0001.weights.h5",
                 "saved_model/saved_model.pb"):
        assert (run_dir / name).exists(), name
    assert "nats per image" in result.stdout
    recon = np.asarray(Image.open(run_dir / "images" / "recon_epoch_0001.png"), np.float32)
    # Real digits are mostly black with ~19% bright ink; white grid lines add some more.
    assert 0.1 < (recon > 128).mean() < 0.5


def test_bad_flag_value_is_one_clear_line(tmp_path):
    result = run_module("vae_tf.train", "--recon_loss=poisson", f"--output_dir={tmp_path}")
    assert result.returncode != 0
    assert "--recon_loss" in result.stderr and "bernoulli" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_combination(tmp_path):
    result = run_module("vae_tf.train", "--learn_scale=pixel", f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert "--learn_scale" in _error_line(result.stderr)


def test_missing_dataset_is_one_clear_line(tmp_path):
    result = run_module("vae_tf.train", "--dataset=mnist", f"--data_dir={tmp_path}/none",
                        f"--output_dir={tmp_path}/out")
    assert result.returncode == 1
    line = _error_line(result.stderr)
    assert "No mnist IDX files" in line and "--data_dir" in line


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is wanted")
    result = run_module("vae_tf.train", "--flagfile=flags/smoke.cfg",
                        f"--output_dir={blocker}/runs")
    assert result.returncode == 1
    assert "Cannot create --output_dir" in _error_line(result.stderr)
    assert blocker.read_text() == "a file where a folder is wanted"
