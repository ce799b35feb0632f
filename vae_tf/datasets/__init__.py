"""Datasets by name (`vae_tf.registry.DATASETS`): a loader each, returning
`ImageData` (uint8 images, int labels).

Each loader reads local files first (`--data_dir`, then the usual places) and falls
back to tensorflow-datasets where a network exists. `pipeline.make_batches` turns
the splits into float32 batches in [0, 1].
"""

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData
from vae_tf.registry import DATASETS


# Names of the integer labels, where a dataset's labels are classes with names.
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"),
}


def load(config: Config) -> ImageData:
    """Loads the dataset named by `config.dataset` (UserError if it cannot be found)."""
    return DATASETS.get(config.dataset)(config)
