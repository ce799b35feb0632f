"""Dataset loaders on the real files, and the tf.data pipeline."""

import gzip
import os
import shutil

import numpy as np
import pytest

from conftest import FASHION_DIR, require_dir, tiny_config
from vae_tf import datasets
from vae_tf.datasets.idx import read_idx
from vae_tf.datasets.pipeline import make_batches
from vae_tf.errors import UserError


def test_mnist_from_official_idx_files(mnist_dir):
    data = datasets.load(tiny_config(dataset="mnist", data_dir=mnist_dir, validation_size=0))
    assert (data.num_train, data.num_test, data.image_shape) == (60000, 10000, (28, 28, 1))
    assert data.validation is None  # the literature's protocol: all 60,000 train
    everything = np.concatenate([x for x, _ in data.train.batch(60000).as_numpy_iterator()])
    held = datasets.load(tiny_config(dataset="mnist", data_dir=mnist_dir))
    assert (held.num_train, held.num_validation, held.num_test) == (55000, 5000, 10000)
    # The last 5,000 training images, the same in every run.
    for split, part in ((held.train, everything[:55000]), (held.validation, everything[55000:])):
        np.testing.assert_array_equal(
            np.concatenate([x for x, _ in split.batch(60000).as_numpy_iterator()]), part)
    with pytest.raises(UserError, match="--validation_size=60000 leaves no training images"):
        datasets.load(tiny_config(dataset="mnist", data_dir=mnist_dir, validation_size=60000))
    images, labels = next(iter(data.test.batch(10000)))
    # The official test set's label counts and mean intensity.
    assert np.bincount(labels.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                    1028, 974, 1009]
    assert images.numpy().mean() == pytest.approx(33.79, abs=0.01)


def test_fashion_mnist_from_the_debian_package():
    require_dir(FASHION_DIR, "Fashion-MNIST", "apt-get install dataset-fashion-mnist")
    data = datasets.load(tiny_config(dataset="fashion_mnist"))
    assert (data.num_train, data.num_validation, data.num_test) == (55000, 5000, 10000)
    assert "fashion-mnist" in data.source


def test_missing_and_corrupt_data_give_clear_errors(tmp_path, mnist_dir):
    with pytest.raises(UserError, match="No mnist IDX files .* --data_dir"):
        datasets.load(tiny_config(dataset="mnist", data_dir=str(tmp_path / "nowhere")))
    for name in os.listdir(mnist_dir):
        if name.endswith(".gz"):
            shutil.copy(os.path.join(mnist_dir, name), tmp_path / name)
    truncated = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(os.path.join(mnist_dir, truncated.name)) as f:
        body = f.read()
    with gzip.open(truncated, "wb") as f:
        f.write(body[:500])
    with pytest.raises(UserError, match="truncated or corrupt"):
        datasets.load(tiny_config(dataset="mnist", data_dir=str(tmp_path)))
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(str(tmp_path / "bad"))


def test_dynamic_binarization(mnist_dir):
    config = tiny_config(dataset="mnist", data_dir=mnist_dir, binarize="dynamic",
                         batch_size=256, steps_per_epoch=0)
    data = datasets.load(config)
    test_a = next(iter(make_batches(data, config, training=False))).numpy()
    test_b = next(iter(make_batches(data, config, training=False))).numpy()
    assert set(np.unique(test_a)) == {0.0, 1.0}
    np.testing.assert_array_equal(test_a, test_b)  # the test split is binarized once
    gray = next(iter(data.test.batch(256)))[0].numpy() / 255.0
    assert test_a.mean() == pytest.approx(gray.mean(), abs=0.01)  # P(1) = intensity

    # Training images are resampled every time they are seen.
    unshuffled = datasets.base.ImageData(data.test, data.test, data.image_shape,
                                         data.num_test, data.num_test, "test")
    train = make_batches(unshuffled, config.replace(batch_size=10000), training=True)
    first, second = (next(iter(train)).numpy() for _ in range(2))
    assert set(np.unique(first)) == {0.0, 1.0}
    assert (first != second).mean() > 0.05


def test_training_batches_are_shuffled_full_and_float(mnist_dir):
    config = tiny_config(dataset="mnist", data_dir=mnist_dir, batch_size=100, steps_per_epoch=0)
    data = datasets.load(config)
    batches = list(make_batches(data, config, training=True).take(3))
    assert all(b.shape == (100, 28, 28, 1) and b.dtype.name == "float32" for b in batches)
    assert 0.0 <= float(np.min(batches[0])) and float(np.max(batches[0])) <= 1.0
    test_first = next(iter(data.test.batch(100)))[0].numpy() / 255.0
    assert not np.allclose(batches[0].numpy(), test_first)


def test_finished_iterators_are_released_at_once():
    """Destroying an iterator must not wait for tf.data's autotuner (pipeline.py):
    with it on, 2-4 s of waits over these five passes; with it off, milliseconds."""
    import time

    import tensorflow as tf

    config = tiny_config(batch_size=64)
    data = datasets.load(config)
    batches = make_batches(data, config, training=True)
    assert batches.options().autotune.enabled is False
    kernel = tf.random.normal([3, 3, data.image_shape[-1], 256])

    @tf.function
    def step(iterator):  # a training step's stand-in: busy cores while batches flow
        return tf.reduce_sum(tf.nn.conv2d(next(iterator), kernel, 1, "SAME"))

    waits = []
    for _ in range(5):
        iterator, start = iter(batches), time.perf_counter()
        while time.perf_counter() - start < 1.5:
            step(iterator).numpy()
        start = time.perf_counter()
        del iterator
        waits.append(time.perf_counter() - start)
    assert sum(waits) < 0.5, waits
