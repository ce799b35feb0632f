"""The decoded-image cache: built once, read raw, rebuilt when source or preprocessing change."""

import json
import os

import numpy as np
import pytest

from conftest import copy_celeba_images, tiny_config
from vae_tf import datasets
from vae_tf.datasets import folder
from vae_tf.datasets.image_cache import MANIFEST
from vae_tf.datasets.pipeline import make_batches
from vae_tf.datasets.preprocess import Transform, decode
from vae_tf.errors import UserError


def _celeba(data_dir, cache_dir, **changes):
    config = tiny_config(dataset="celeba", data_dir=str(data_dir), cache_dir=str(cache_dir),
                         batch_size=4, **changes)
    return datasets.load(config), config


def _caches(cache_dir):
    return sorted(os.listdir(cache_dir))


def test_built_once_read_raw_and_keyed_by_preprocessing(tmp_path):
    data_dir, cache_dir = tmp_path / "img_align_celeba", tmp_path / "cache"
    copy_celeba_images(data_dir, 12)
    before = sorted(os.listdir(data_dir))

    data, config = _celeba(data_dir, cache_dir)
    (first,) = _caches(cache_dir)
    manifest_path = cache_dir / first / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    assert manifest["transform"] == {"crop": 148, "size": 64, "channels": 3}
    # 10% by file name, at least one; a tenth of the rest held out for validation.
    assert (data.num_train, data.num_validation, data.num_test) == (10, 1, 1)
    assert sorted(os.listdir(data_dir)) == before  # nothing written beside the data

    # The shards are raw uint8 N x 64 x 64 x 3: np.memmap reads what decode() makes.
    train_names = folder.split_by_name(before)["train"]
    shard = np.memmap(cache_dir / first / "train-00000.u8", np.uint8, "r").reshape(-1, 64, 64, 3)
    assert len(shard) == 11
    expected, _ = decode((data_dir / train_names[3]).read_bytes(), Transform(148, 64, 3))
    np.testing.assert_array_equal(shard[3], expected)
    images = np.concatenate([b.numpy() for b in make_batches(data, config, training=False)])
    assert images.shape == (1, 64, 64, 3) and images.dtype == np.float32
    assert 0.2 < images.mean() < 0.8

    # Loading again reads the cache: no new folder, the manifest untouched.
    stamp = manifest_path.stat().st_mtime_ns
    _celeba(data_dir, cache_dir)
    assert _caches(cache_dir) == [first] and manifest_path.stat().st_mtime_ns == stamp

    # A change of preprocessing, or of the files, builds a new cache beside it.
    _celeba(data_dir, cache_dir, crop=120)
    assert len(_caches(cache_dir)) == 2
    data, _ = _celeba(data_dir, cache_dir, image_size=32)
    assert len(_caches(cache_dir)) == 3 and data.image_shape == (32, 32, 3)
    os.remove(data_dir / before[0])
    data, _ = _celeba(data_dir, cache_dir)
    assert len(_caches(cache_dir)) == 4
    assert data.num_train + data.num_validation + data.num_test == 11


def test_damaged_cache_is_rebuilt(tmp_path):
    data_dir, cache_dir = tmp_path / "faces", tmp_path / "cache"
    copy_celeba_images(data_dir, 6)
    data, _ = _celeba(data_dir, cache_dir)
    (name,) = _caches(cache_dir)
    shard = cache_dir / name / "train-00000.u8"
    shard.write_bytes(shard.read_bytes()[:1000])
    again, _ = _celeba(data_dir, cache_dir)
    assert shard.stat().st_size == (again.num_train + again.num_validation) * 64 * 64 * 3


def test_unusable_cache_dir_and_unreadable_folder_fail_before_training(tmp_path):
    data_dir = tmp_path / "faces"
    copy_celeba_images(data_dir, 3)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should go")
    with pytest.raises(UserError, match="Cannot create the image cache folder .* --cache_dir"):
        _celeba(data_dir, blocker / "cache")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("text")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(UserError, match=r"None of the 2 folder files is a readable image"):
        datasets.load(tiny_config(dataset="folder", data_dir=str(tmp_path / "junk"),
                                  cache_dir=str(tmp_path / "cache")))
