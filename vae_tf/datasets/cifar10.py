"""`--dataset=cifar10`: CIFAR-10, 32x32 RGB, 50,000 train and 10,000 test images.

    python -m vae_tf.train --flagfile=flags/cifar10.cfg

Read through tensorflow-datasets: a prepared copy under --data_dir (a
tensorflow-datasets data folder) or TFDS_DATA_DIR / ~/tensorflow_datasets, else a
download where a network exists. Offline, a clear error comes within seconds.
"""

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData, load_from_tfds


_HELP = ("On a machine with a network, run python -c \"import tensorflow_datasets as tfds; "
         "tfds.builder('cifar10').download_and_prepare()\", then copy "
         "~/tensorflow_datasets/cifar10 into a folder and pass that folder with --data_dir.")


def load(config: Config) -> ImageData:
    searched = [config.data_dir or "TFDS_DATA_DIR or ~/tensorflow_datasets"]
    splits, source = load_from_tfds("cifar10", searched, _HELP, data_dir=config.data_dir)
    return ImageData.from_arrays(*splits["train"], *splits["test"], source=source)
