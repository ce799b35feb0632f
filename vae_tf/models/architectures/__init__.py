"""Encoder/decoder families, looked up by --architecture.

The encoder maps images [N, H, W, C] to 2 * latent_dim numbers (mean and
log-variance of q(z|x)); the decoder maps z [N, latent_dim] to the likelihood's raw
output [N, H, W, output_channels], its width set by the likelihood
(`Likelihood.decoder_channels`), not by the image.

A family is one module in this package with the two builders; a new one is that
module, its name in `vae_tf.registry.ARCHITECTURES` and any settings it needs in
`Config`.
"""

import math
from typing import Tuple

import keras

from vae_tf.config import Config
from vae_tf.registry import ARCHITECTURES


def build_encoder(config: Config, image_shape: Tuple[int, int, int]) -> keras.Model:
    """The family's encoder: images [N, H, W, C] -> [N, 2 * latent_dim]."""
    return ARCHITECTURES.get(config.architecture).build_encoder(config, tuple(image_shape))


def build_decoder(config: Config, image_shape: Tuple[int, int, int],
                  output_channels: int) -> keras.Model:
    """The family's decoder: z [N, latent_dim] -> [N, H, W, output_channels]."""
    return ARCHITECTURES.get(config.architecture).build_decoder(config, tuple(image_shape),
                                                                output_channels)


def smallest_map(image_shape, halvings: int) -> Tuple[int, int]:
    """Height and width of the decoder's first feature map, `halvings` halvings
    below the image, rounded up: sizes that do not halve evenly (28x20 Frey faces
    under three, say) start larger and `crop_to_image` cuts the output back, as the
    encoder's 'same' padding rounds up on the way down."""
    factor = 2 ** halvings
    return math.ceil(image_shape[0] / factor), math.ceil(image_shape[1] / factor)


def crop_to_image(h, image_shape):
    """Crops the feature map `h` (from `smallest_map`, upsampled) to the image's size,
    evenly from both sides."""
    extra_h, extra_w = h.shape[1] - image_shape[0], h.shape[2] - image_shape[1]
    if extra_h or extra_w:
        h = keras.layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2),
                                     (extra_w // 2, extra_w - extra_w // 2)))(h)
    return h

