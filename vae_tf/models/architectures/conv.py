"""--architecture=conv: stride-2 'same' convolutions, mirrored by stride-2
transposed convolutions in the decoder."""

from typing import Sequence

import keras
from keras import layers

from vae_tf.models.architectures import crop_to_image, smallest_map


def build_encoder(config, image_shape) -> keras.Model:
    return conv_encoder(image_shape, config.conv_channels, config.kernel_size,
                        config.latent_dim, config.activation)


def build_decoder(config, image_shape, output_channels: int) -> keras.Model:
    return conv_decoder(image_shape, config.conv_channels, config.kernel_size,
                        config.latent_dim, config.activation, output_channels)


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
                 activation: str = "relu", output_channels: int = None) -> keras.Model:
    """The encoder's mirror: dense to the smallest feature map, stride-2 transposed convs,
    the last one `output_channels` wide (default: the image's channels).
    Sizes that do not halve evenly start larger and are cropped (`smallest_map`).
    """
    image_channels = image_shape[-1]
    h0, w0 = smallest_map(image_shape, len(channels))
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(h0 * w0 * channels[-1], activation=activation, name="project")(z)
    h = layers.Reshape((h0, w0, channels[-1]))(h)
    for i, c in enumerate(reversed(channels[:-1])):
        h = layers.Conv2DTranspose(c, kernel_size, strides=2, padding="same",
                                   activation=activation, name=f"deconv{i}")(h)
    h = layers.Conv2DTranspose(output_channels or image_channels, kernel_size, strides=2,
                               padding="same", name="output")(h)
    return keras.Model(z, crop_to_image(h, image_shape), name="decoder")
