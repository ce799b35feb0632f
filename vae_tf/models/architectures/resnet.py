"""--architecture=resnet: residual blocks at every resolution.

Stages, one per entry of --conv_channels (its width), each --blocks_per_stage
pre-activation bottleneck residual blocks; between stages, 2x2 average pooling and a
1x1 convolution to the next width halve the resolution. The encoder's last feature
map becomes the mean and log-variance of a latent vector through one dense layer;
the decoder mirrors the encoder, with nearest-neighbour upsampling and a 3x3
convolution between stages and at the output: transposed convolutions left a
checkerboard over the samples, and 1x1 convolutions after the upsampling left its
blocks (the 4x4 map's cells showed as 16-pixel squares in CelebA samples).

Each residual branch ends in a convolution whose initial weights are scaled by
1/sqrt(number of blocks), so that a deep stack starts close to the identity and the
variance of the activations does not grow with depth (as VDVAE does).
"""

import math

import keras
import tensorflow as tf
from keras import layers

from vae_tf.models.architectures import crop_to_image, smallest_map


def _normalization(kind: str, width: int, name: str):
    if kind == "batch":
        return layers.BatchNormalization(name=name)
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(8, width), name=name)
    return None


class ResidualBlock(layers.Layer):
    """x + 1x1(act(3x3(act(3x3(act(1x1(act(norm(x))))))))): VDVAE's bottleneck block,
    the inner convolutions a quarter of the width. Two full-width 3x3 convolutions
    cost about 11x the multiply-adds per pixel, which on a CPU made residual blocks
    at full image resolution train at a fifteenth of the plain conv net's images/s.

    With `squeeze_excite` the branch's output channels are gated by
    sigmoid(dense(act(dense(their means over the map)))) (Hu et al. 2018, as NVAE's
    cells): a per-image, map-wide gain for each channel, at the cost of two small
    dense layers.
    """

    def __init__(self, width: int, activation: str, normalization: str, branch_scale: float,
                 squeeze_excite: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.width, self.activation_name = width, activation
        self.normalization, self.branch_scale = normalization, branch_scale
        self.squeeze_excite = squeeze_excite
        self.gate = [layers.Dense(max(4, width // 16), name="squeeze"),
                     layers.Dense(width, activation="sigmoid", name="excite")
                     ] if squeeze_excite else None
        inner = max(1, width // 4)
        self.norm = _normalization(normalization, width, "norm")
        self.act = layers.Activation(activation)
        self.convs = [layers.Conv2D(inner, 1, name="reduce"),
                      layers.Conv2D(inner, 3, padding="same", name="conv1"),
                      layers.Conv2D(inner, 3, padding="same", name="conv2"),
                      layers.Conv2D(width, 1, name="expand", kernel_initializer=(
                          keras.initializers.VarianceScaling(
                              scale=branch_scale ** 2, mode="fan_in",
                              distribution="truncated_normal")))]

    def call(self, x, training=False):
        h = x if self.norm is None else self.norm(x, training=training)
        for conv in self.convs:
            h = conv(self.act(h))
        if self.gate is not None:
            squeezed = tf.reduce_mean(h, axis=[1, 2], keepdims=True)
            h = h * self.gate[1](self.act(self.gate[0](squeezed)))
        return x + h

    def get_config(self):
        return {**super().get_config(), "width": self.width,
                "activation": self.activation_name, "normalization": self.normalization,
                "branch_scale": self.branch_scale, "squeeze_excite": self.squeeze_excite}


def _stage(h, width, config, branch_scale, prefix):
    for b in range(config.blocks_per_stage):
        h = ResidualBlock(width, config.activation, config.normalization, branch_scale,
                          config.squeeze_excite,
                          name=f"{prefix}_block{b}")(h)
    return h


def _branch_scale(config) -> float:
    blocks = max(1, config.blocks_per_stage * len(config.conv_channels))
    return 1.0 / math.sqrt(blocks)


def build_encoder(config, image_shape) -> keras.Model:
    widths, scale = config.conv_channels, _branch_scale(config)
    images = keras.Input(image_shape, name="images")
    h = layers.Conv2D(widths[0], 4, strides=2, padding="same", name="stem")(images)
    for s, width in enumerate(widths):
        if s > 0:
            h = layers.AveragePooling2D(2, padding="same")(h)
            h = layers.Conv2D(width, 1, name=f"down{s}")(h)
        h = _stage(h, width, config, scale, f"enc{s}")
    h = layers.Activation(config.activation)(h)
    h = layers.Flatten()(h)
    out = layers.Dense(2 * config.latent_dim, name="mean_logvar")(h)
    return keras.Model(images, out, name="encoder")


def build_decoder(config, image_shape, output_channels: int) -> keras.Model:
    """The encoder's mirror."""
    widths, scale = tuple(reversed(config.conv_channels)), _branch_scale(config)
    h0, w0 = smallest_map(image_shape, len(widths))
    z = keras.Input((config.latent_dim,), name="z")
    h = layers.Dense(h0 * w0 * widths[0], name="project")(z)
    h = layers.Reshape((h0, w0, widths[0]))(h)
    for s, stage_width in enumerate(widths):
        if s > 0:
            h = layers.UpSampling2D(2, interpolation="nearest")(h)
            h = layers.Conv2D(stage_width, 3, padding="same", name=f"up{s}")(h)
        h = _stage(h, stage_width, config, scale, f"dec{s}")
    h = layers.Activation(config.activation)(h)
    # Back to full resolution as between stages: a 4x4 stride-2 transposed output
    # convolution left a checkerboard over the CelebA samples.
    h = layers.UpSampling2D(2, interpolation="nearest")(h)
    h = layers.Conv2D(output_channels, 3, padding="same", name="output")(h)
    return keras.Model(z, crop_to_image(h, image_shape), name="decoder")
