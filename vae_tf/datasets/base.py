"""What every dataset loader returns, and the tensorflow-datasets fallback they share."""

import dataclasses
import os
import socket
import threading
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from vae_tf.errors import UserError


@dataclasses.dataclass
class ImageData:
    """Train, test and (where there is one) validation splits whose elements are
    (uint8 image [H, W, C], int64 label).

    The label is -1 where a dataset has none. A loader sets `validation` only where
    the dataset has an official one (CelebA); `datasets.load` holds out the rest's.
    """
    train: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: Tuple[int, int, int]
    num_train: int
    num_test: int
    source: str  # where the data came from, for the log and config.json readers
    validation: Optional[tf.data.Dataset] = None
    num_validation: int = 0

    def split(self, name: str) -> tf.data.Dataset:
        """The split 'train', 'validation' or 'test'."""
        return getattr(self, name)

    def without_validation(self) -> "ImageData":
        return dataclasses.replace(self, validation=None, num_validation=0)

    def hold_out(self, count: int) -> "ImageData":
        """The last `count` training images as the validation split, the rest as the
        training split: the same images for every run."""
        keep = self.num_train - count
        return dataclasses.replace(self, train=self.train.take(keep), num_train=keep,
                                   validation=self.train.skip(keep), num_validation=count)

    @classmethod
    def from_arrays(cls, train_images, train_labels, test_images, test_labels, source):
        """Splits held in memory as uint8 arrays [N, H, W, C] and int labels [N]."""
        def to_dataset(images, labels):
            return tf.data.Dataset.from_tensor_slices(
                (images, np.asarray(labels, dtype=np.int64)))
        return cls(train=to_dataset(train_images, train_labels),
                   test=to_dataset(test_images, test_labels),
                   image_shape=tuple(int(d) for d in train_images.shape[1:]),
                   num_train=len(train_images), num_test=len(test_images), source=source)


def network_available(host: str = "storage.googleapis.com", port: int = 443,
                      timeout: float = 3.0) -> bool:
    """Whether `host` answers within `timeout` seconds.

    tensorflow-datasets retries an unreachable host for minutes before failing, so
    the fallback asks first.
    """
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def prepared_tfds_builder(name: str, searched: Sequence[str], help_text: str,
                          data_dir: str = None, host: str = "storage.googleapis.com"):
    """A tensorflow-datasets builder whose data is prepared, or a UserError.

    A prepared copy under `data_dir` (default TFDS_DATA_DIR or ~/tensorflow_datasets)
    is used as it is; otherwise it is downloaded when `host` is reachable.
    """
    import tensorflow_datasets as tfds  # slow to import; only this fallback needs it

    builder = tfds.builder(name, data_dir=data_dir or None)
    prepared = os.path.isdir(builder.data_path) and tf.io.gfile.listdir(builder.data_path)
    if not prepared:
        if not network_available(host):
            raise UserError(
                f"{name} not found (looked in: {', '.join(searched)}) and "
                f"tensorflow-datasets cannot download it without a network. {help_text}")
        try:
            builder.download_and_prepare()
        except Exception as e:  # noqa: BLE001  download errors come in many types
            raise UserError(f"tensorflow-datasets could not download {name} "
                            f"({e.__class__.__name__}: {(str(e).splitlines() or [''])[0][:200]}). "
                            f"{help_text}") from None
    return builder


def load_from_tfds(name: str, searched: Sequence[str], help_text: str,
                   data_dir: str = None):
    """Loads a tensorflow-datasets dataset as uint8 arrays, or raises a UserError.

    A prepared copy under TFDS_DATA_DIR (or ~/tensorflow_datasets, or `data_dir`)
    is used as it is; otherwise it is downloaded when the network is reachable.
    """
    import tensorflow_datasets as tfds

    builder = prepared_tfds_builder(name, searched, help_text, data_dir=data_dir)
    splits = {}
    for split in ("train", "test"):
        ds = builder.as_dataset(split=split, as_supervised=True)
        images, labels = zip(*tfds.as_numpy(ds))
        splits[split] = (np.stack(images).astype(np.uint8), np.asarray(labels))
    return splits, f"tensorflow-datasets {name} ({builder.data_path})"
