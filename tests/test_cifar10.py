"""CIFAR-10 through tensorflow-datasets: offline, a clear error within seconds."""

import time

import pytest

from conftest import tiny_config
from vae_tf import datasets
from vae_tf.datasets.base import network_available
from vae_tf.errors import UserError


def test_offline_without_a_prepared_copy_is_a_quick_clear_error(tmp_path):
    if network_available():
        pytest.skip("a network exists: tensorflow-datasets would download CIFAR-10")
    start = time.perf_counter()
    with pytest.raises(UserError, match="cifar10 not found .* --data_dir"):
        datasets.load(tiny_config(dataset="cifar10", data_dir=str(tmp_path)))
    assert time.perf_counter() - start < 30  # not the ~200 s of TFDS retries
