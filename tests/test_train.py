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
