"""Encoder and decoder builders.

The encoder maps images [N, H, W, C] to 2 * latent_dim numbers (mean and log-variance
of q(z|x)); the decoder maps z [N, latent_dim] to the likelihood's pre-activation
[N, H, W, C] (Bernoulli logits, or the pre-sigmoid mean of a Gaussian/Laplace).
"""

import math
from typing import Sequence, Tuple

import keras
from keras import layers

from vae_tf.config import Config


def build_encoder(config: Config, image_shape: Tuple[int, int, int]) -> keras.Model:
    if config.architecture == "dense":
        return dense_encoder(image_shape, config.dense_units, config.latent_dim, config.activation)
    return conv_encoder(image_shape, config.conv_channels, config.kernel_size,
                        config.latent_dim, config.activation)


def build_decoder(config: Config, image_shape: Tuple[int, int, int]) -> keras.Model:
    if config.architecture == "dense":
        return dense_decoder(image_shape, config.dense_units, config.latent_dim, config.activation)
    return conv_decoder(image_shape, config.conv_channels, config.kernel_size,
                        config.latent_dim, config.activation)


def conv_encoder(image_shape, channels: Sequence[int], kernel_size: int, latent_dim: int,
                 activation: str = "relu") -> keras.Model:
    """One stride-2 'same' convolution per entry of `channels`, then a dense layer."""
    images = keras.Input(image_shape, name="images")
    h = images
    for i, c in enumerate(channels):
        h = layers.Conv2D(c, kernel_size, strides=2, padding="same", activation=activation,
                          name=f"conv{i}")(h)
    h = layers.Flatten()(h)
    out = layers.Dense(2 * latent_dim, name="mean_logvar")(h)
    return keras.Model(images, out, name="encoder")


def conv_decoder(image_shape, channels: Sequence[int], kernel_size: int, latent_dim: int,
                 activation: str = "relu") -> keras.Model:
    """The encoder's mirror: dense to the smallest feature map, stride-2 transposed convs.

    Sizes that are not multiples of 2**len(channels) (28x20 Frey faces under three
    layers, say) are handled as the encoder's 'same' padding does: the decoder
    starts from the rounded-up size and crops its output back to the image size.
    """
    height, width, out_channels = image_shape
    factor = 2 ** len(channels)
    h0, w0 = math.ceil(height / factor), math.ceil(width / factor)
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(h0 * w0 * channels[-1], activation=activation, name="project")(z)
    h = layers.Reshape((h0, w0, channels[-1]))(h)
    for i, c in enumerate(reversed(channels[:-1])):
        h = layers.Conv2DTranspose(c, kernel_size, strides=2, padding="same",
                                   activation=activation, name=f"deconv{i}")(h)
    h = layers.Conv2DTranspose(out_channels, kernel_size, strides=2, padding="same",
                               name="output")(h)
    extra_h, extra_w = h0 * factor - height, w0 * factor - width
    if extra_h or extra_w:
        h = layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2),
                               (extra_w // 2, extra_w - extra_w // 2)))(h)
    return keras.Model(z, h, name="decoder")


def dense_encoder(image_shape, units: Sequence[int], latent_dim: int,
                  activation: str = "relu") -> keras.Model:
    """An MLP encoder (the original VAE paper's shape), for small images."""
    images = keras.Input(image_shape, name="images")
    h = layers.Flatten()(images)
    for i, u in enumerate(units):
        h = layers.Dense(u, activation=activation, name=f"hidden{i}")(h)
    out = layers.Dense(2 * latent_dim, name="mean_logvar")(h)
    return keras.Model(images, out, name="encoder")


def dense_decoder(image_shape, units: Sequence[int], latent_dim: int,
                  activation: str = "relu") -> keras.Model:
    z = keras.Input((latent_dim,), name="z")
    h = z
    for i, u in enumerate(reversed(units)):
        h = layers.Dense(u, activation=activation, name=f"hidden{i}")(h)
    h = layers.Dense(math.prod(image_shape), name="output")(h)
    out = layers.Reshape(image_shape)(h)
    return keras.Model(z, out, name="decoder")
