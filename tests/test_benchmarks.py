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
