"""End-to-end training: the run directory, a falling test loss, resume, the NaN guard."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_module, tiny_config
from vae_tf import train
from vae_tf.run import rundir
from vae_tf.config import Config
from vae_tf.datasets.base import ImageData
from vae_tf.errors import UserError


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_run_writes_the_run_directory_and_test_loss_falls(tmp_path):
    config = tiny_config(epochs=4, steps_per_epoch=40, eval_steps=0, output_dir=str(tmp_path))
    result = train.run(config)
    run_dir = result["run_dir"]
    assert os.path.dirname(run_dir) == str(tmp_path)
    saved = Config.from_json_file(os.path.join(run_dir, "config.json"))
    assert saved == config.replace(run_name=os.path.basename(run_dir))

    rows = _rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # counted as the grids are
    val = [float(r["val_loss"]) for r in rows]
    assert val[-1] < val[0] - 20, val  # nats per image on 28x28 shapes
    for r in rows:  # loss is the negative ELBO: reconstruction + KL
        assert float(r["val_loss"]) == pytest.approx(
            float(r["val_reconstruction"]) + float(r["val_kl"]), rel=1e-4)

    for epoch in range(1, 5):
        for kind in ("recon", "samples"):
            png = Image.open(os.path.join(run_dir, "images", f"{kind}_epoch_{epoch:04d}.png"))
            assert png.size[0] >= 256 and png.size[1] >= 256
    samples = np.asarray(Image.open(os.path.join(run_dir, "images", "samples_epoch_0004.png")))
    assert samples.std() > 20  # shapes on a dark background, not one flat average
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "epoch_0004.weights.h5"))
    assert os.path.isfile(os.path.join(run_dir, "saved_model", "saved_model.pb"))

    again = train.run(config.replace(run_name=os.path.basename(run_dir)))
    assert again["already_finished"] and again["run_dir"] == run_dir
    assert again["val_loss"] == pytest.approx(val[-1]) == pytest.approx(result["val_loss"])
    assert len(_rows(run_dir)) == 4  # nothing trained
    with pytest.raises(UserError, match="already finished with other settings .differing: epochs"):
        train.run(config.replace(run_name=os.path.basename(run_dir), epochs=5))


def test_killed_run_resumes_and_keeps_what_it_wrote(tmp_path):
    args = ["--flagfile=flags/smoke.cfg", "--epochs=8", "--steps_per_epoch=40",
            f"--output_dir={tmp_path}", "--run_name=crash"]
    run_dir = tmp_path / "crash"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "vae_tf.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (run_dir / "metrics.csv").exists() and len(_rows(run_dir)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done_before = len(_rows(run_dir))
    first_grid = (run_dir / "images" / "recon_epoch_0001.png").read_bytes()
    assert not rundir.RunDir(str(run_dir)).is_finished()

    result = run_module("vae_tf.train", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Resuming after epoch" in result.stderr
    assert "Epoch 1/8" not in result.stdout  # continued, did not start over
    epochs = [int(r["epoch"]) for r in _rows(run_dir)]
    assert done_before >= 2
    assert epochs == list(range(1, 9))  # every epoch exactly once
    assert (run_dir / "images" / "recon_epoch_0001.png").read_bytes() == first_grid
    assert rundir.RunDir(str(run_dir)).is_finished()


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    images = np.full((64, 28, 28, 1), np.nan, np.float32)
    data = ImageData.from_arrays(images, np.zeros(64), images, np.zeros(64), source="NaNs")
    config = tiny_config(output_dir=str(tmp_path), run_name="nan")
    with pytest.raises(train.TrainingFailed, match="NaN or infinite at epoch 1, step 1"):
        train.run(config, dataset_override=data)
    assert not rundir.RunDir(str(tmp_path / "nan")).is_finished()
    assert json.load(open(tmp_path / "nan" / "config.json"))["run_name"] == "nan"


def _interrupt(args, tmp_path, ready, name, delay=0.0):
    """Starts `python -m vae_tf.train args`, sends SIGINT (Ctrl-C) `delay` seconds
    after `ready(stderr so far)` is true, and returns (exit status, stderr)."""
    err = tmp_path / f"{name}.err"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "vae_tf.train", *args], cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=REPO),
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None and not ready(err.read_text()):
                time.sleep(0.2)
            time.sleep(delay)
            assert proc.poll() is None, "the run ended before Ctrl-C:\n" + err.read_text()[-2000:]
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        finally:
            proc.kill()
            proc.wait()
    return proc.returncode, err.read_text()


def test_ctrl_c_stops_at_a_safe_point_with_one_line_and_the_run_continues(tmp_path):
    run_dir = tmp_path / "slow"
    # Before the first epoch ends: 2000 steps an epoch, Ctrl-C during the first ones.
    first = ["--flagfile=flags/smoke.cfg", "--epochs=1", "--steps_per_epoch=2000",
             f"--output_dir={tmp_path}", "--run_name=slow"]
    # Training begins a moment after the line (the first step is being traced).
    status, err = _interrupt(first, tmp_path, lambda e: "Starting run" in e, "first", delay=5)
    assert status == 130 and "Traceback" not in err, err[-3000:]
    assert err.splitlines()[-1] == ("interrupted before the first epoch finished; run the same "
                                    "command to continue")
    status, err = _interrupt(first, tmp_path, lambda e: "Continuing run" in e, "again", delay=5)
    assert status == 130, err[-3000:]
    assert [l for l in err.splitlines() if "run " + str(run_dir) in l] == [
        f"Continuing run {run_dir} from its first epoch (none had finished)"]

    # After epochs have finished: the line names the last whole one, and the same
    # command resumes after it, saying so once.
    run_dir = tmp_path / "epochs"
    args = ["--flagfile=flags/smoke.cfg", "--epochs=6", "--steps_per_epoch=20",
            f"--output_dir={tmp_path}", "--run_name=epochs"]
    status, err = _interrupt(args, tmp_path, lambda e: (run_dir / "metrics.csv").exists()
                             and len(_rows(run_dir)) >= 1, "epochs")
    finished = len(rundir.RunDir(str(run_dir)).checkpoints())
    assert status == 130 and "Traceback" not in err, err[-3000:]
    assert 1 <= finished < 6
    assert err.splitlines()[-1] == (f"interrupted after epoch {finished}; run the same command "
                                    "to continue")
    assert [int(r["epoch"]) for r in _rows(run_dir)][:finished] == list(range(1, finished + 1))
    result = run_module("vae_tf.train", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [l for l in result.stderr.splitlines() if "Resuming" in l] == [
        f"Resuming after epoch {finished} of run {run_dir}"]
    assert [int(r["epoch"]) for r in _rows(run_dir)] == list(range(1, 7))
