"""`--dataset=folder` on an arbitrary folder: nested files, any size, inferred channels."""

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from vae_tf import datasets, train
from vae_tf.config import Config
from vae_tf.datasets import folder
from vae_tf.errors import UserError


def _shapes_folder(root, count, color):
    """PNG and JPEG images of different sizes in nested folders, plus a README."""
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = rng.integers(40, 90, 2)
        yy, xx = np.mgrid[0:h, 0:w]
        disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) * rng.uniform(0.2, 0.45)) ** 2)
        gray = (disc * 200 + 30).astype(np.uint8)
        array = np.stack([gray, gray // 2, 255 - gray], -1) if color else gray
        sub = root / ("a" if i % 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(sub / f"img{i:03d}.{'png' if i % 3 else 'jpg'}")
    (root / "README").write_text("not an image")


def test_split_by_name_is_deterministic_and_order_free():
    names = [f"x{i}.jpg" for i in range(200)]
    split = folder.split_by_name(names)
    assert len(split["test"]) == 20 and len(split["train"]) == 180
    assert folder.split_by_name(names[::-1])["test"] == split["test"][::-1]
    assert folder.split_by_name(["only.jpg"]) == {"train": ["only.jpg"], "test": []}


def test_gray_folder_trains_with_inferred_channels(tmp_path):
    _shapes_folder(tmp_path / "gray", 40, color=False)
    config = tiny_config(dataset="folder", data_dir=str(tmp_path / "gray"), image_size=24,
                         cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"),
                         epochs=1, steps_per_epoch=4, eval_steps=0, batch_size=8)
    data = datasets.load(config)
    assert data.image_shape == (24, 24, 1)
    # README skipped; 10% of 41 names for test, a tenth of the other 36 for validation.
    assert (data.num_train, data.num_validation, data.num_test) == (32, 4, 4)
    result = train.run(config)
    assert (tmp_path / "out" / result["run_dir"].split("/")[-1] / "images" /
            "samples_epoch_0001.png").exists()


def test_color_folder_and_explicit_channels(tmp_path):
    _shapes_folder(tmp_path / "color", 12, color=True)
    base = dict(dataset="folder", data_dir=str(tmp_path / "color"),
                cache_dir=str(tmp_path / "cache"), batch_size=8)
    assert datasets.load(Config(**base)).image_shape == (64, 64, 3)
    data = datasets.load(Config(**base, channels=1, image_size=16, crop=30))
    assert data.image_shape == (16, 16, 1)


def test_empty_folder_and_misplaced_flags_are_clear_errors(tmp_path):
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no files"):
        datasets.load(tiny_config(dataset="folder", data_dir=str(tmp_path / "empty")))
    with pytest.raises(UserError, match="needs --data_dir"):
        datasets.load(tiny_config(dataset="folder"))
    _shapes_folder(tmp_path / "few", 6, color=False)
    with pytest.raises(UserError, match="Only 5 training images, fewer than --batch_size=32"):
        datasets.load(tiny_config(dataset="folder", data_dir=str(tmp_path / "few"),
                                  steps_per_epoch=0, cache_dir=str(tmp_path / "cache")))
    with pytest.raises(ValueError, match="--crop applies to --dataset=celeba or folder"):
        Config(dataset="mnist", crop=100)
    with pytest.raises(ValueError, match="--channels=2 must be"):
        Config(dataset="folder", channels=2)
