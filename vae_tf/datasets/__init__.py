"""Datasets by name (`vae_tf.registry.DATASETS`): a loader each, returning
`ImageData` (uint8 images, int labels).

Each loader reads local files first (`--data_dir`, then the usual places) and falls
back to tensorflow-datasets where a network exists. `pipeline.make_batches` turns
the splits into float32 batches in [0, 1].
"""

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData
from vae_tf.errors import UserError
from vae_tf.registry import DATASETS


# Names of the integer labels, where a dataset's labels are classes with names.
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"),
}


# Training images held out as the validation split by default (the last ones of the
# training split), where a dataset has no official validation split; elsewhere a
# tenth of the training split. Frey's are the 200 frames before its test frames.
VALIDATION_SIZES = {"mnist": 5000, "fashion_mnist": 5000, "cifar10": 5000, "frey": 200}


def load(config: Config) -> ImageData:
    """Loads the dataset named by `config.dataset`, with its validation split
    (UserError if it cannot be found)."""
    return with_validation(DATASETS.get(config.dataset)(config), config)


def with_validation(data: ImageData, config: Config) -> ImageData:
    """`data` with the validation split --validation_size asks for: the dataset's
    official one, or the last images of its training split (UserError where it
    cannot be)."""
    size = config.validation_size
    if data.validation is not None:
        if size > 0:
            raise UserError(f"--validation_size={size}: {config.dataset} has an official "
                            f"validation split ({data.num_validation} images here); give "
                            "-1 to use it or 0 for none.")
        return data.without_validation() if size == 0 else data
    if size < 0:
        size = VALIDATION_SIZES.get(config.dataset, round(data.num_train / 10))
    if size == 0:
        return data
    if size >= data.num_train:
        raise UserError(f"--validation_size={size} leaves no training images: the training "
                        f"split has {data.num_train}; give a smaller one, or 0 for none.")
    return data.hold_out(size)
