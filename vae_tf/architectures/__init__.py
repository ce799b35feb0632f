"""Encoder/decoder families, looked up by --architecture.

The encoder maps images [N, H, W, C] to 2 * latent_dim numbers (mean and
log-variance of q(z|x)); the decoder maps z [N, latent_dim] to the likelihood's raw
output [N, H, W, output_channels], its width set by the likelihood
(`Likelihood.decoder_channels`), not by the image.

A family is one module in this package that calls `register` with its two
builders; a new one is that module (found and imported below), its name in
`config.ARCHITECTURES` and any settings it needs in `Config`.
"""

import importlib
import pkgutil
from typing import Callable, NamedTuple, Tuple

import keras

from vae_tf.config import Config


class Family(NamedTuple):
    """build_encoder(config, image_shape) and build_decoder(config, image_shape,
    output_channels), each returning a keras.Model."""
    build_encoder: Callable[..., keras.Model]
    build_decoder: Callable[..., keras.Model]


REGISTRY = {}


def register(name: str, build_encoder, build_decoder) -> None:
    """Makes --architecture=`name` build with these builders."""
    REGISTRY[name] = Family(build_encoder, build_decoder)


def build_encoder(config: Config, image_shape: Tuple[int, int, int]) -> keras.Model:
    return REGISTRY[config.architecture].build_encoder(config, tuple(image_shape))


def build_decoder(config: Config, image_shape: Tuple[int, int, int],
                  output_channels: int) -> keras.Model:
    return REGISTRY[config.architecture].build_decoder(config, tuple(image_shape),
                                                       output_channels)


# Every module of this package registers its family when imported: a new family is
# a new file here, with no list to update.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
