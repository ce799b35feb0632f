"""The speed benchmark runs and prints its figures (tiny settings; no timing asserted)."""

import os
import re
import subprocess
import sys

from conftest import REPO


def test_throughput_prints_step_and_pipeline_rates():
    result = subprocess.run(
        [sys.executable, os.path.join("benchmarks", "throughput.py"), "--flagfile=flags/smoke.cfg",
         "--image_size=16", "--image_channels=1", "--warmup_steps=1", "--steps=2",
         "--repeats=2", "--pipeline_batches=3"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    step = re.search(r"train_step images_per_s=([0-9.]+) \(median of 2 x 2 steps", result.stdout)
    assert step and float(step.group(1)) > 0, result.stdout
    assert re.search(r"input_pipeline images_per_s=[0-9.]+ \(synthetic", result.stdout)
    assert "minor page faults" in result.stdout


def test_compare_runs_the_contestants_interleaved_and_prints_ratios():
    # Tiny network; PyTorch left out (it lives in its own environment). The plain
    # Keras reference is the repository's benchmarks/keras_ref.py.
    result = subprocess.run(
        [sys.executable, os.path.join("benchmarks", "compare.py"), "--repeats=2", "--steps=2",
         "--size=16", "--channels=8,16", "--latent=4", "--batch=8", "--torch_python="],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(re.findall(r"^round [12]/2 ", result.stdout, re.M)) == 2, result.stdout
    for name, ratio in (("project", r"1\.00"), ("network_only", r"[0-9.]+"),
                        ("keras", r"[0-9.]+")):
        row = re.search(rf"^{name} +([0-9.]+) +[0-9.]+ +[0-9.]+ +({ratio}) +[0-9.]+$",
                        result.stdout, re.M)
        assert row and float(row.group(1)) > 0, result.stdout
