"""MNIST and Fashion-MNIST: 28x28 grayscale, 60,000 train and 10,000 test images.

Looked for, in order: the IDX files in --data_dir (only there when it is given);
the usual places (Keras' ~/.keras/datasets cache, Debian's dataset-fashion-mnist
package); a tensorflow-datasets copy or download.
"""

import os

import numpy as np

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData, load_from_tfds
from vae_tf.datasets.idx import read_idx
from vae_tf.errors import UserError


_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_KERAS_CACHE = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
_USUAL_PLACES = {
    "mnist": [os.path.join(_KERAS_CACHE, "mnist.npz"), os.path.join(_KERAS_CACHE, "mnist")],
    "fashion_mnist": ["/usr/share/datasets/fashion-mnist",
                      os.path.join(_KERAS_CACHE, "fashion-mnist")],
}
_HELP = {
    "mnist": "Download the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) "
             "into a folder and pass it with --data_dir.",
    "fashion_mnist": "Install them with 'apt-get install dataset-fashion-mnist' or "
                     "pass a folder holding the four IDX files with --data_dir.",
}


def load_mnist(config: Config) -> ImageData:
    return _load("mnist", config)


def load_fashion_mnist(config: Config) -> ImageData:
    return _load("fashion_mnist", config)


def _load(name: str, config: Config) -> ImageData:
    if config.data_dir:
        if not _has_idx_files(config.data_dir):
            raise UserError(f"No {name} IDX files ({', '.join(_FILES.values())}, "
                            f"optionally .gz) in --data_dir={config.data_dir}. {_HELP[name]}")
        return _from_idx_folder(config.data_dir)
    for place in _USUAL_PLACES[name]:
        if place.endswith(".npz") and os.path.isfile(place):
            return _from_keras_npz(place)
        if _has_idx_files(place):
            return _from_idx_folder(place)
    splits, source = load_from_tfds(name, _USUAL_PLACES[name], _HELP[name])
    return ImageData.from_arrays(*splits["train"], *splits["test"], source=source)


def _idx_path(folder: str, stem: str):
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _has_idx_files(folder: str) -> bool:
    return os.path.isdir(folder) and all(_idx_path(folder, s) for s in _FILES.values())


def _from_idx_folder(folder: str) -> ImageData:
    arrays = {key: read_idx(_idx_path(folder, stem)) for key, stem in _FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or len(images) != len(labels):
            raise UserError(f"{folder}: the {split} IDX files disagree ({images.shape} "
                            f"images, {labels.shape} labels).")
    return ImageData.from_arrays(arrays["train_images"][..., None], arrays["train_labels"],
                                 arrays["test_images"][..., None], arrays["test_labels"],
                                 source=f"IDX files in {folder}")


def _from_keras_npz(path: str) -> ImageData:
    with np.load(path) as f:
        return ImageData.from_arrays(f["x_train"][..., None], f["y_train"],
                                     f["x_test"][..., None], f["y_test"],
                                     source=f"Keras cache {path}")
