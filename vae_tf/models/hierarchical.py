"""--architecture=hierarchical: a top-down hierarchical VAE (the LVAE / NVAE / VDVAE
family).

A deterministic bottom-up path turns the image into features at every resolution
of --hierarchy; a top-down path then starts from zeros at the coarsest resolution
and, group by group, draws a latent map z_g and folds it into its state h:

    p(z_g | z_<g) = N(prior(h))            (the top group's prior is N(0, I))
    q(z_g | x, z_<g) = N(posterior(h, bottom-up features at z_g's resolution))
    h <- residual block(h + prior's feature output + 1x1 conv(z_g))

and after the last group residual blocks at each doubling of the side (up to half
the image's) and an output convolution turn h into the likelihood's parameters. Prior and posterior are conditioned on every group above through h,
as in Sonderby et al. 2016, Vahdat & Kautz 2020 and Child 2021; the ELBO's KL is
the sum over groups of KL(q(z_g|x, z_<g) || p(z_g|z_<g)) at the sampled z_<g.

--hierarchy lists resolutions and their groups from the top, e.g. "1x1,4x2,7x4":
one group at 1x1, two at 4x4, four at 7x7 (each resolution must be reached from
the image size by halving, rounded up). The bottom-up path has --blocks_per_stage
residual blocks at each halving of the side down to the top group's. Every group's map has --latent_dim
channels, every network --conv_channels (one value) channels.

What the flat VAE's interface means here (and so in the export):
  encode       q(z_top | x): the top group's posterior, [N, latent] (flattened)
  decode(z)    the decoder's mean with the top group at z and every group below at
               its prior mean (temperature 0: deterministic)
  call         reconstruction: every group at its posterior mean
  sample       every group drawn from its prior at a temperature (one, or one per group)
"""

import functools
import math
from typing import List

import keras
import tensorflow as tf
from keras import layers

from vae_tf.models import losses
from vae_tf.models.architectures.resnet import ResidualBlock
from vae_tf.config import Config, parse_hierarchy
from vae_tf.errors import UserError


def halvings(size: int) -> List[int]:
    """The side lengths reached from `size` by halving, rounded up: 28 -> [28, 14, 7, 4, 2, 1]."""
    sides = [size]
    while sides[-1] > 1:
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def check_hierarchy(levels, image_shape) -> None:
    height, width = image_shape[:2]
    if height != width:
        raise UserError(f"--architecture=hierarchical needs square images; these are "
                        f"{height}x{width}.")
    reachable = halvings(height)
    for resolution, _ in levels:
        if resolution not in reachable:
            raise UserError(f"--hierarchy: resolution {resolution} is not reached from "
                            f"the {height}x{height} images by halving (one of "
                            f"{', '.join(map(str, reachable))}).")


def _resize(h, side: int):
    """Upsamples a feature map to side x side: each cell repeated ceil(side / its side)
    times along both axes, the excess cut from the bottom and right (the halvings
    rounded up). Broadcasting, not tf.image.resize, whose gradient XLA lacks."""
    current = h.shape[1]
    if current == side:
        return h
    factor = -(-side // current)
    shape = tf.shape(h)
    tiled = tf.broadcast_to(h[:, :, None, :, None, :],
                            [shape[0], current, factor, current, factor, shape[3]])
    return tf.reshape(tiled, [shape[0], current * factor, current * factor,
                              shape[3]])[:, :side, :side, :]


class _Bottleneck(layers.Layer):
    """act -> 3x3 conv to a quarter of the width -> act -> 1x1 conv to `outputs`
    channels: the prior and posterior networks of a group. `zero_init` makes the last
    convolution start at zero (a prior network then starts as N(0, I) with no
    contribution to h, so a deep stack starts as a shallow one)."""

    def __init__(self, inner: int, outputs: int, activation: str, zero_init=False, **kwargs):
        super().__init__(**kwargs)
        self.act = layers.Activation(activation)
        self.conv = layers.Conv2D(inner, 3, padding="same", name="conv")
        self.out = layers.Conv2D(outputs, 1, name="out",
                                 kernel_initializer="zeros" if zero_init else "glorot_uniform")

    def call(self, h):
        return self.out(self.act(self.conv(self.act(h))))


def _scoped(method):
    """Runs a layer's method in the layer's name scope, as Keras' __call__ does, so
    that the sublayers it builds on first use get paths under the layer's name
    (group0/prior/..., not one path shared by every group)."""
    @functools.wraps(method)
    def in_scope(self, *args, **kwargs):
        with keras.name_scope(self.name, caller=self):
            return method(self, *args, **kwargs)
    return in_scope


class LatentGroup(layers.Layer):
    """One group of latent variables of the top-down path: its prior and posterior
    networks, the projection of z into h and the residual block after it."""

    def __init__(self, width: int, channels: int, activation: str, normalization: str,
                 branch_scale: float, top: bool, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.top = channels, top
        inner = max(1, width // 4)
        # The prior network also adds features to h (VDVAE's), which lets the
        # top-down path carry information the latent map does not.
        self.prior_net = None if top else _Bottleneck(inner, 2 * channels + width, activation,
                                                      zero_init=True, name="prior")
        self.posterior_net = _Bottleneck(inner, 2 * channels, activation, name="posterior")
        self.project = layers.Conv2D(width, 1, name="project", kernel_initializer=(
            keras.initializers.VarianceScaling(scale=branch_scale ** 2, mode="fan_in",
                                               distribution="truncated_normal")))
        self.block = ResidualBlock(width, activation, normalization, branch_scale, name="block")
        # Used through prior, posterior and merge, not called: its layers build on
        # their first use.
        self.built = True

    @_scoped
    def prior(self, h, stats_dtype):
        """(mean, logvar) of p(z_g | z_<g) in `stats_dtype`, and h with the prior's
        features added."""
        if self.top:
            shape = tf.concat([tf.shape(h)[:3], [self.channels]], 0)
            zeros = tf.zeros(shape, stats_dtype)
            return zeros, zeros, h
        out = self.prior_net(h)
        stats = tf.cast(out[..., :2 * self.channels], stats_dtype)
        mean, logvar = tf.split(stats, 2, axis=-1)
        return mean, _clip(logvar), h + out[..., 2 * self.channels:]

    @_scoped
    def posterior(self, h, features, stats_dtype):
        out = tf.cast(self.posterior_net(tf.concat([h, features], axis=-1)), stats_dtype)
        mean, logvar = tf.split(out, 2, axis=-1)
        return mean, _clip(logvar)

    @_scoped
    def merge(self, h, z, training=False):
        return self.block(h + self.project(tf.cast(z, h.dtype)), training=training)


def _clip(logvar):
    return tf.clip_by_value(logvar, losses.LOGVAR_MIN, losses.LOGVAR_MAX)


def _gaussian_log_prob(z, mean, logvar):
    """log N(z; mean, exp(logvar)) summed over a group's map: [N]."""
    return -0.5 * tf.reduce_sum(tf.square(z - mean) * tf.exp(-logvar) + logvar + losses.LOG_2PI,
                                axis=[1, 2, 3])


def _gaussian_kl(q_mean, q_logvar, p_mean, p_logvar):
    """KL(N(q) || N(p)) summed over a group's map: [N]."""
    return 0.5 * tf.reduce_sum(
        p_logvar - q_logvar + (tf.exp(q_logvar) + tf.square(q_mean - p_mean))
        * tf.exp(-p_logvar) - 1.0, axis=[1, 2, 3])


class Hierarchy:
    """The shape of a hierarchy for `image_shape`: the group resolutions, top first."""

    def __init__(self, config: Config, image_shape):
        levels = parse_hierarchy(config.hierarchy)
        check_hierarchy(levels, image_shape)
        self.image_side = image_shape[0]
        self.resolutions = [r for r, _ in levels]
        self.group_sides = [r for r, groups in levels for _ in range(groups)]
        self.channels = config.latent_dim
        chain = halvings(self.image_side)
        # Sides with residual blocks: the bottom-up path's, from half the image's
        # side down to the top group's; after the last group, the top-down path's
        # on the way up to the image (the image's own side only gets the output
        # convolution: blocks there cost 4x the ones at half of it).
        self.bottom_up_sides = chain[1:chain.index(self.resolutions[0]) + 1]
        self.output_sides = chain[1:chain.index(self.resolutions[-1])][::-1]

    @property
    def num_groups(self) -> int:
        return len(self.group_sides)

    def group_sizes(self) -> List[int]:
        """Latent dimensions of each group, top first."""
        return [side * side * self.channels for side in self.group_sides]


def build_bottom_up(config: Config, image_shape, hierarchy: Hierarchy) -> keras.Model:
    """images -> the features at each resolution of the hierarchy (top first)."""
    width = config.conv_channels[0]
    scale = 1.0 / math.sqrt(max(1, config.blocks_per_stage * len(hierarchy.bottom_up_sides)))
    images = keras.Input(image_shape, name="images")
    h = layers.Conv2D(width, 3, padding="same", name="stem")(images)
    features = {hierarchy.image_side: h}  # for groups at the image's own side
    for side in hierarchy.bottom_up_sides:
        h = layers.AveragePooling2D(2, padding="same")(h)
        for b in range(config.blocks_per_stage):
            h = ResidualBlock(width, config.activation, config.normalization, scale,
                              name=f"up{side}_block{b}")(h)
        features[side] = h
    return keras.Model(images, [features[r] for r in hierarchy.resolutions], name="bottom_up")


class TopDown(layers.Layer):
    """The top-down path: the groups, top first, and the output convolution."""

    def __init__(self, config: Config, hierarchy: Hierarchy, output_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.hierarchy = hierarchy
        self.width = config.conv_channels[0]
        scale = 1.0 / math.sqrt(hierarchy.num_groups)
        self.groups = [LatentGroup(self.width, hierarchy.channels, config.activation,
                                   config.normalization, scale, top=(g == 0), name=f"group{g}")
                       for g in range(hierarchy.num_groups)]
        self.upsampling_blocks = [
            [ResidualBlock(self.width, config.activation, config.normalization,
                           1.0 / math.sqrt(config.blocks_per_stage), name=f"out{side}_block{b}")
             for b in range(config.blocks_per_stage)] for side in hierarchy.output_sides]
        self.act = layers.Activation(config.activation)
        self.out = layers.Conv2D(output_channels, 3, padding="same", name="output")
        self.built = True  # used through `run`; its layers build on their first use

    @_scoped
    def run(self, batch, features=None, draw=None, temperatures=None, top=None,
            training=False):
        """Runs the groups top first. Returns (the likelihood's parameters, the
        per-group KL [N, groups] and log p(z) - log q(z) [N] when `features` are given).

        With bottom-up `features` each group's z comes from its posterior: a sample
        with noise `draw(shape)`, or the mean when `draw` is None. Without them, from
        its prior: the mean + temperature * std * draw(shape), or the mean when
        `draw` is None; the top group at `top` [N, latent] where it is given.
        """
        stats_dtype = self.variable_dtype
        if draw is not None:
            noise_of, draw = draw, lambda shape: tf.cast(noise_of(shape), stats_dtype)
        sides = self.hierarchy.group_sides
        h = tf.zeros([batch, sides[0], sides[0], self.width], self.compute_dtype)
        features_at = dict(zip(self.hierarchy.resolutions, features or []))
        kls, log_ratio = [], 0.0
        for g, (group, side) in enumerate(zip(self.groups, sides)):
            h = _resize(h, side)
            p_mean, p_logvar, h = group.prior(h, stats_dtype)
            if features is not None:
                q_mean, q_logvar = group.posterior(h, features_at[side], stats_dtype)
                z = q_mean
                if draw is not None:
                    z = q_mean + tf.exp(0.5 * q_logvar) * draw(tf.shape(q_mean))
                kls.append(_gaussian_kl(q_mean, q_logvar, p_mean, p_logvar))
                log_ratio += (_gaussian_log_prob(z, p_mean, p_logvar)
                              - _gaussian_log_prob(z, q_mean, q_logvar))
            elif g == 0 and top is not None:
                z = tf.reshape(tf.cast(top, stats_dtype), tf.shape(p_mean))
            elif draw is not None and temperatures is not None:
                t = tf.cast(temperatures[g], stats_dtype)
                z = p_mean + t * tf.exp(0.5 * p_logvar) * draw(tf.shape(p_mean))
            else:
                z = p_mean
            h = group.merge(h, z, training=training)
        for side, blocks in zip(self.hierarchy.output_sides, self.upsampling_blocks):
            h = _resize(h, side)
            for block in blocks:
                h = block(h, training=training)
        h = _resize(self.act(h), self.hierarchy.image_side)
        params = tf.cast(self.out(h), stats_dtype)
        if features is None:
            return params, None, None
        return params, tf.stack(kls, axis=-1), log_ratio

    @_scoped
    def top_posterior(self, batch, top_features):
        """(mean, logvar) of q(z_top | x), [N, side, side, channels]."""
        side = self.hierarchy.group_sides[0]
        h = tf.zeros([batch, side, side, self.width], self.compute_dtype)
        return self.groups[0].posterior(h, top_features, self.variable_dtype)


def temperatures_for(temperature, num_groups: int) -> tf.Tensor:
    """A temperature per group from one value (all groups) or one per group."""
    t = tf.reshape(tf.cast(temperature, tf.float32), [-1])
    if t.shape[0] is not None and t.shape[0] not in (1, num_groups):
        raise UserError(f"Give one temperature or one per group ({num_groups}), "
                        f"not {t.shape[0]}.")
    # Traced with an unknown length (the export), a wrong one fails when it is run.
    return tf.broadcast_to(t, [num_groups])
