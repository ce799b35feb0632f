"""Frey faces: the MAT file, its documented split, and a short run of flags/frey.cfg."""

import csv
import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

from conftest import FREY_DIR, REPO, require_dir, tiny_config
from vae_tf import datasets, train
from vae_tf.errors import UserError
from vae_tf.flag_defs import config_from_flags, define_flags


@pytest.fixture
def frey_dir():
    return require_dir(FREY_DIR, "frey_rawface.mat")


def test_frey_file_and_split(frey_dir, tmp_path):
    data = datasets.load(tiny_config(dataset="frey", data_dir=frey_dir))
    assert (data.num_train, data.num_validation, data.num_test, data.image_shape) == (
        1565, 200, 200, (28, 20, 1))
    train_images = np.concatenate([x.numpy() for x, _ in data.train.batch(2000)])
    validation_images = np.concatenate([x.numpy() for x, _ in data.validation.batch(2000)])
    test_images = np.concatenate([x.numpy() for x, _ in data.test.batch(2000)])
    everything = np.concatenate([train_images, validation_images, test_images])
    # PROVENANCE.md: min 8, max 238, mean/255 = 0.6057 over all 1,965 frames.
    assert (everything.min(), everything.max()) == (8, 238)
    assert everything.mean() / 255 == pytest.approx(0.6057, abs=1e-4)
    # The test split is the last 200 frames, in order; the validation split the 200
    # frames before them.
    np.testing.assert_array_equal(test_images, everything[-200:])
    np.testing.assert_array_equal(validation_images, everything[-400:-200])

    (tmp_path / "frey_rawface.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(UserError, match="not Roweis' frey_rawface.mat"):
        datasets.load(tiny_config(dataset="frey", data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="No frey_rawface.mat in .*roweis"):
        datasets.load(tiny_config(dataset="frey", data_dir=str(tmp_path / "none")))


def test_frey_flagfile_trains_and_writes_face_grids(frey_dir, tmp_path):
    values = flags.FlagValues()
    define_flags(values)
    values(["prog", f"--flagfile={os.path.join(REPO, 'flags', 'frey.cfg')}",
            f"--data_dir={frey_dir}", f"--output_dir={tmp_path}", "--run_name=frey",
            "--epochs=2", "--steps_per_epoch=60", "--grid_size=4"])
    config = config_from_flags(values)
    assert config.architecture == "dense" and config.dense_units == (200,)
    result = train.run(config)
    with open(os.path.join(result["run_dir"], "metrics.csv")) as f:
        val = [float(r["val_loss"]) for r in csv.DictReader(f)]
    assert val[1] < val[0] < 0  # nats per image; a Gaussian density on [0, 1] pixels
    images = os.path.join(result["run_dir"], "images")
    samples = np.asarray(Image.open(os.path.join(images, "samples_epoch_0002.png")), np.float32)
    assert os.path.isfile(os.path.join(images, "recon_epoch_0002.png"))
    # 28x20 faces enlarged: mid-gray on average like the data, with real structure.
    cells = samples[2:-2, 2:-2]
    assert 100 < cells.mean() < 200 and cells.std() > 25
