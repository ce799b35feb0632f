"""--architecture=dense: MLPs (the original VAE paper's shape), for small images."""

import math
from typing import Sequence

import keras
from keras import layers


def build_encoder(config, image_shape) -> keras.Model:
    return dense_encoder(image_shape, config.dense_units, config.latent_dim, config.activation)


def build_decoder(config, image_shape, output_channels: int) -> keras.Model:
    return dense_decoder(image_shape, config.dense_units, config.latent_dim, config.activation,
                         output_channels)


def dense_encoder(image_shape, units: Sequence[int], latent_dim: int,
                  activation: str = "relu") -> keras.Model:
    """Flattened pixels through one dense layer per entry of `units`."""
    images = keras.Input(image_shape, name="images")
    h = layers.Flatten()(images)
    for i, u in enumerate(units):
        h = layers.Dense(u, activation=activation, name=f"hidden{i}")(h)
    out = layers.Dense(2 * latent_dim, name="mean_logvar")(h)
    return keras.Model(images, out, name="encoder")


def dense_decoder(image_shape, units: Sequence[int], latent_dim: int,
                  activation: str = "relu", output_channels: int = None) -> keras.Model:
    """The encoder's mirror, reshaped to [H, W, output_channels] (default: the
    image's channels)."""
    height, width, image_channels = image_shape
    z = keras.Input((latent_dim,), name="z")
    h = z
    for i, u in enumerate(reversed(units)):
        h = layers.Dense(u, activation=activation, name=f"hidden{i}")(h)
    out_shape = (height, width, output_channels or image_channels)
    h = layers.Dense(math.prod(out_shape), name="output")(h)
    out = layers.Reshape(out_shape)(h)
    return keras.Model(z, out, name="decoder")
