"""CIFAR-10 from its official batch files (binary and python versions), and through
tensorflow-datasets: offline without a copy, a clear error within seconds."""

import hashlib
import os
import pickle
import time

import numpy as np
import pytest

from conftest import SHARED_DATA, run_module, tiny_config
from vae_tf import datasets
from vae_tf.datasets import cifar10
from vae_tf.datasets.base import network_available
from vae_tf.errors import UserError

# The official files' MD5s (those of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz).
OFFICIAL_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
           "test_batch"]


def real_cifar10_dir() -> str:
    """The real binary batches: in the shared data folder or the usual places (.ci/run
    unpacks them into Keras' cache); skips when there are none."""
    for place in (os.path.join(SHARED_DATA, "cifar10"), *cifar10.USUAL_PLACES):
        found = cifar10.find_batches(place)
        if found and found[1] == ".bin":
            return found[0]
    pytest.skip("real CIFAR-10 binary batches not found in "
                f"{os.path.join(SHARED_DATA, 'cifar10')} or {', '.join(cifar10.USUAL_PLACES)}: "
                ".ci/run shows how to get them")


def images_and_labels(batch: int, count: int = 4):
    """Small images whose every pixel says which batch, image, row, column and channel
    it is, so a wrong plane order or transpose shows."""
    n, y, x, c = np.meshgrid(np.arange(count), np.arange(32), np.arange(32), np.arange(3),
                             indexing="ij")
    images = ((batch * 50 + n * 10 + c * 3 + y * 7 + x * 5) % 256).astype(np.uint8)
    labels = (np.arange(count) + batch) % 10
    return images, labels


def planes(images):
    """Rows of the red, green and blue 32x32 planes, as the official files hold them."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_binary(folder, damaged: str = None):
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(BATCHES):
        images, labels = images_and_labels(i)
        records = np.concatenate([labels[:, None].astype(np.uint8), planes(images)], axis=1)
        data = records.tobytes()
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            f.write(data[:-100] if name == damaged else data)


def write_pickled(folder):
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(BATCHES):
        images, labels = images_and_labels(i)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"data": planes(images), b"labels": labels.tolist(),
                         b"batch_label": name.encode()}, f)


def expected():
    train = [images_and_labels(i) for i in range(5)]
    return (np.concatenate([im for im, _ in train]), np.concatenate([lb for _, lb in train]),
            *images_and_labels(5))


def loaded_arrays(data_dir):
    data = datasets.load(tiny_config(dataset="cifar10", data_dir=str(data_dir),
                                     validation_size=0))
    arrays = []
    for split in (data.train, data.test):
        images, labels = zip(*split.as_numpy_iterator())
        arrays += [np.stack(images), np.array(labels)]
    return data, arrays


@pytest.mark.parametrize("version", ["bin", "py"])
def test_official_batches_are_read_as_height_width_rgb(tmp_path, version):
    # As the archives unpack: the versioned folder inside the one given.
    folder = tmp_path / f"cifar-10-batches-{version}"
    (write_binary if version == "bin" else write_pickled)(str(folder))
    data, arrays = loaded_arrays(tmp_path)
    assert data.image_shape == (32, 32, 3)
    assert (data.num_train, data.num_test) == (20, 4)
    assert str(folder) in data.source
    for got, want in zip(arrays, expected()):
        np.testing.assert_array_equal(got, want)


def test_a_cut_short_batch_is_one_error_line_naming_it(tmp_path):
    write_binary(str(tmp_path), damaged="data_batch_3")
    with pytest.raises(UserError, match=r"data_batch_3\.bin: .* not a whole number"):
        loaded_arrays(tmp_path)


def test_a_damaged_pickle_is_one_error_line_naming_it(tmp_path):
    write_pickled(str(tmp_path))
    (tmp_path / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(UserError, match=r"test_batch: not a CIFAR-10 python-version batch"):
        loaded_arrays(tmp_path)


def test_offline_without_a_prepared_copy_is_a_quick_clear_error(tmp_path):
    if network_available():
        pytest.skip("a network exists: tensorflow-datasets would download CIFAR-10")
    start = time.perf_counter()
    with pytest.raises(UserError, match="cifar10 not found .* --data_dir"):
        datasets.load(tiny_config(dataset="cifar10", data_dir=str(tmp_path)))
    assert time.perf_counter() - start < 30  # not the ~200 s of TFDS retries


def test_real_cifar10_is_the_official_data_with_its_validation_split():
    folder = real_cifar10_dir()
    for name, md5 in OFFICIAL_MD5.items():
        with open(os.path.join(folder, name), "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == md5, name
    data = datasets.load(tiny_config(dataset="cifar10", data_dir=folder))
    # The default validation split: the last 5,000 training images (data_batch_5).
    assert (data.num_train, data.num_validation, data.num_test) == (45000, 5000, 10000)
    counts = {}
    for split in ("train", "validation", "test"):
        labels = np.array([label for _, label in data.split(split).as_numpy_iterator()])
        counts[split] = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(counts["train"] + counts["validation"], [5000] * 10)
    np.testing.assert_array_equal(counts["test"], [1000] * 10)
    first = data.test.take(10).as_numpy_iterator()
    images, labels = zip(*first)
    assert list(labels) == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # cat, ship, ship, plane, frogs...
    # Natural images use the whole range in every channel.
    stacked = np.stack(images)
    assert stacked.dtype == np.uint8 and stacked.shape == (10, 32, 32, 3)
    assert all(stacked[..., c].max() - stacked[..., c].min() > 150 for c in range(3))


def test_the_cifar10_preset_trains_on_the_real_images(tmp_path):
    folder = real_cifar10_dir()
    result = run_module("vae_tf.train", "--dataset=cifar10", f"--data_dir={folder}",
                        "--epochs=1", "--steps_per_epoch=3", "--eval_steps=2",
                        "--precision=float32", f"--output_dir={tmp_path}", "--run_name=c10",
                        timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.startswith("Preset: flags/cifar10.cfg"), result.stderr[:300]
    assert "45000 train / 5000 validation / 10000 test" in result.stderr
    assert "binary batches in " + folder in result.stderr
    run = tmp_path / "c10"
    assert (run / "saved_model" / "saved_model.pb").is_file()
    assert (run / "images" / "samples_epoch_0001.png").is_file()
