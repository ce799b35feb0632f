"""--architecture=hierarchical: a top-down hierarchical VAE (the LVAE / NVAE / VDVAE
family).

A deterministic bottom-up path turns the image into features at every resolution
of --hierarchy; a top-down path then starts from zeros at the coarsest resolution
and, group by group, draws a latent map z_g and folds it into its state h:

    p(z_g | z_<g) = N(prior(h))            (the top group's prior is N(0, I))
    q(z_g | x, z_<g) = N(posterior(h, bottom-up features at z_g's resolution))
                       (--residual_posterior: N(mean_p + dmean, var_p * exp(dlogvar)),
                       the network giving dmean, dlogvar: NVAE's parameterization)
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

`HierarchicalVAE` gives the VAE's objective this family's networks. What the flat
VAE's interface means here (and so in the export):
  encode       q(z_top | x): the top group's posterior, [N, latent] (flattened)
  decode(z)    the decoder's mean with the top group at z and every group below at
               its prior mean (temperature 0: deterministic); with
               --sample_prior=fitted at the fitted Gaussian's mean given z
  call         reconstruction: every group at its posterior mean
  sample       every group drawn from its prior at a temperature (one, or one per group);
               with --sample_prior=fitted, z_g = mean_p + std_p * e_g, the e of every
               group drawn jointly from a mixture of Gaussians fitted to the training
               images' posteriors in their priors' units (see HierarchicalVAE)
"""

import functools
import math
from typing import List

import keras
import tensorflow as tf
from keras import layers

from vae_tf.config import Config, group_sides, parse_hierarchy
from vae_tf.errors import UserError
from vae_tf.models import gaussian
from vae_tf.models.architectures.resnet import ResidualBlock
from vae_tf.models.gaussian import DiagonalGaussian
from vae_tf.models.vae import VAE, repeat_examples


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


def _resize(h, side: int, upsampling: str = "nearest"):
    """Upsamples a feature map to side x side, the excess cut from the bottom and
    right (the halvings rounded up). 'nearest' repeats each cell ceil(side / its
    side) times along both axes; 'bilinear' doubles the map by linear interpolation
    until it covers `side`. Slices and broadcasts, not tf.image.resize, whose
    gradient XLA lacks."""
    current = h.shape[1]
    if current == side:
        return h
    if upsampling == "bilinear":
        while current < side:
            h = _double_bilinear(_double_bilinear(h, axis=1), axis=2)
            current *= 2
        return h[:, :side, :side, :]
    factor = -(-side // current)
    shape = tf.shape(h)
    tiled = tf.broadcast_to(h[:, :, None, :, None, :],
                            [shape[0], current, factor, current, factor, shape[3]])
    return tf.reshape(tiled, [shape[0], current * factor, current * factor,
                              shape[3]])[:, :side, :side, :]


def _double_bilinear(h, axis: int):
    """Twice as many rows (axis 1) or columns (axis 2), as tf.image.resize's bilinear
    (half-pixel centres): output 2i is 3/4 of input i and 1/4 of input i-1, output
    2i+1 3/4 of input i and 1/4 of input i+1, the edges repeated."""
    n = h.shape[axis]
    rows = lambda start, stop: h[(slice(None),) * axis + (slice(start, stop),)]
    before = tf.concat([rows(0, 1), rows(0, n - 1)], axis=axis)
    after = tf.concat([rows(1, n), rows(n - 1, n)], axis=axis)
    pairs = tf.stack([0.75 * h + 0.25 * before, 0.75 * h + 0.25 * after], axis=axis + 1)
    shape = tf.unstack(tf.shape(h))
    shape[axis] = 2 * n
    return tf.reshape(pairs, shape)


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
                 squeeze_excite: bool, branch_scale: float, top: bool, **kwargs):
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
        self.block = ResidualBlock(width, activation, normalization, branch_scale,
                                   squeeze_excite, name="block")
        # Used through prior, posterior and merge, not called: its layers build on
        # their first use.
        self.built = True

    @_scoped
    def prior(self, h, stats_dtype):
        """p(z_g | z_<g), in `stats_dtype`, and h with the prior's features added."""
        if self.top:
            shape = tf.concat([tf.shape(h)[:3], [self.channels]], 0)
            zeros = tf.zeros(shape, stats_dtype)
            return DiagonalGaussian(zeros, zeros), h
        out = self.prior_net(h)
        stats = tf.cast(out[..., :2 * self.channels], stats_dtype)
        return DiagonalGaussian.from_stats(stats), h + out[..., 2 * self.channels:]

    @_scoped
    def posterior(self, h, features, stats_dtype, prior=None):
        """q(z_g | x, z_<g), in `stats_dtype`; relative to `prior` where one is given
        (mean_p + dmean, logvar_p + dlogvar)."""
        out = tf.cast(self.posterior_net(tf.concat([h, features], axis=-1)), stats_dtype)
        if prior is None:
            return DiagonalGaussian.from_stats(out)
        shift, log_ratio = tf.split(out, 2, axis=-1)
        return DiagonalGaussian(prior.mean + shift,
                                gaussian.clamp_logvar(prior.logvar + log_ratio))

    @_scoped
    def merge(self, h, z, training=False):
        return self.block(h + self.project(tf.cast(z, h.dtype)), training=training)


def _sum_map(values):
    """A group's per-element values summed over its map: [N]."""
    return tf.reduce_sum(values, axis=[1, 2, 3])


class Hierarchy:
    """The shape of a hierarchy for `image_shape`: the group resolutions, top first."""

    def __init__(self, config: Config, image_shape):
        levels = parse_hierarchy(config.hierarchy)
        check_hierarchy(levels, image_shape)
        self.image_side = image_shape[0]
        self.resolutions = [r for r, _ in levels]
        self.group_sides = group_sides(config.hierarchy)
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
                              config.squeeze_excite,
                              name=f"up{side}_block{b}")(h)
        features[side] = h
    return keras.Model(images, [features[r] for r in hierarchy.resolutions], name="bottom_up")


class TopDown(layers.Layer):
    """The top-down path: the groups, top first, and the output convolution."""

    def __init__(self, config: Config, hierarchy: Hierarchy, output_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.hierarchy = hierarchy
        self.width = config.conv_channels[0]
        self.residual_posterior = config.residual_posterior
        self.upsampling = config.upsampling
        scale = 1.0 / math.sqrt(hierarchy.num_groups)
        self.groups = [LatentGroup(self.width, hierarchy.channels, config.activation,
                                   config.normalization, config.squeeze_excite, scale,
                                   top=(g == 0), name=f"group{g}")
                       for g in range(hierarchy.num_groups)]
        self.upsampling_blocks = [
            [ResidualBlock(self.width, config.activation, config.normalization,
                           1.0 / math.sqrt(config.blocks_per_stage), config.squeeze_excite,
                           name=f"out{side}_block{b}")
             for b in range(config.blocks_per_stage)] for side in hierarchy.output_sides]
        self.act = layers.Activation(config.activation)
        self.out = layers.Conv2D(output_channels, 3, padding="same", name="output")
        self.built = True  # used through its paths; its layers build on their first use

    @_scoped
    def posterior(self, features, draw=None, training=False):
        """The posterior path: each group's z from q(z_g | x, z_<g), top first, given
        the bottom-up `features` (top first): a sample with noise `draw(shape)`, or
        the mean when `draw` is None. Returns the likelihood's parameters, the KL per
        group [N, groups], log p(z) - log q(z|x) [N] and each group's (q, p), top first."""
        stats_dtype = self.variable_dtype
        features_at = dict(zip(self.hierarchy.resolutions, features))
        h = self._start(tf.shape(features[0])[0])
        kls, log_ratio, posteriors = [], 0.0, []
        for group, side in zip(self.groups, self.hierarchy.group_sides):
            h = _resize(h, side, self.upsampling)
            p, h = group.prior(h, stats_dtype)
            q = group.posterior(h, features_at[side], stats_dtype,
                                p if self.residual_posterior else None)
            z = q.mean if draw is None else q.sample(gaussian.noise_like(draw, q.mean))
            kls.append(_sum_map(q.kl(p)))
            log_ratio += _sum_map(p.log_prob(z)) - _sum_map(q.log_prob(z))
            posteriors.append((q, p))
            h = group.merge(h, z, training=training)
        return self._output(h, training), tf.stack(kls, axis=-1), log_ratio, posteriors

    @_scoped
    def prior(self, batch, draw=None, temperatures=None, top=None, training=False):
        """The prior path: each group's z from p(z_g | z_<g), top first: the mean +
        temperatures[g] * std * draw(shape), or the mean when `draw` is None; the top
        group at `top` [N, latent] where it is given. Returns the likelihood's
        parameters."""
        stats_dtype = self.variable_dtype
        h = self._start(batch)
        for g, (group, side) in enumerate(zip(self.groups, self.hierarchy.group_sides)):
            h = _resize(h, side, self.upsampling)
            p, h = group.prior(h, stats_dtype)
            if g == 0 and top is not None:
                z = tf.reshape(tf.cast(top, stats_dtype), tf.shape(p.mean))
            elif draw is None:
                z = p.mean
            else:
                z = p.sample(gaussian.noise_like(draw, p.mean),
                             tf.cast(temperatures[g], stats_dtype))
            h = group.merge(h, z, training=training)
        return self._output(h, training)

    def _start(self, batch):
        """The top-down state above the top group: zeros."""
        side = self.hierarchy.group_sides[0]
        return tf.zeros([batch, side, side, self.width], self.compute_dtype)

    def _output(self, h, training):
        """The state after the last group to the likelihood's parameters."""
        for side, blocks in zip(self.hierarchy.output_sides, self.upsampling_blocks):
            h = _resize(h, side, self.upsampling)
            for block in blocks:
                h = block(h, training=training)
        h = _resize(self.act(h), self.hierarchy.image_side, self.upsampling)
        return tf.cast(self.out(h), self.variable_dtype)

    @_scoped
    def top_posterior(self, top_features):
        """q(z_top | x), [N, side, side, channels]."""
        return self.groups[0].posterior(self._start(tf.shape(top_features)[0]), top_features,
                                        self.variable_dtype)


def temperatures_for(temperature, num_groups: int) -> tf.Tensor:
    """A temperature per group from one value (all groups) or one per group."""
    t = tf.reshape(tf.cast(temperature, tf.float32), [-1])
    if t.shape[0] is not None and t.shape[0] not in (1, num_groups):
        raise UserError(f"Give one temperature or one per group ({num_groups}), "
                        f"not {t.shape[0]}.")
    # Traced with an unknown length (the export), a wrong one fails when it is run.
    return tf.broadcast_to(t, [num_groups])


# The fitted sampling prior: the training images' posterior means in their priors'
# units on their first FITTED_PRIOR_RANK principal directions, modelled by a mixture
# of FITTED_PRIOR_COMPONENTS Gaussians. Chosen on the validation FID of samples of
# the CelebA preset (10,752 dimensions, 4,591 images; docs/models.md). One Gaussian
# at ranks 32 to 1,024: 144, 140, 137, 162, 206 and 242 (a 22-epoch run in batches
# of 32; 379 with the learned priors): past the first hundred or so, directions are
# too weakly determined to add anything but blotches. On the preset's own run, rank
# 128 / 256: 117.4 / 127.0 with one Gaussian, 111.8 / 117.7 with 20 components
# (117.1 with 50 at 256). A mixture keeps a draw within one cluster of faces where
# one Gaussian averages clusters into a ghostly face; its draws stay as far from the
# training faces' codes as the validation faces' are.
FITTED_PRIOR_RANK = 128
FITTED_PRIOR_COMPONENTS = 20
FITTED_PRIOR_RIDGE = 1e-4
# decode's groups below the top are the fitted Gaussian's mean given the top group,
# which treats what the top code has outside the fit's span as noise of this
# variance per value. With FITTED_PRIOR_RIDGE instead, directions the fit barely
# sees were amplified 50-fold: on the CelebA preset's 780 validation faces the
# groups below predicted from the top code were further from their posterior means
# than the fitted mean itself (mean square 0.135 against 0.082), and decode(encode(x))
# drew exaggerated, blotchy faces. Mean square 0.092, 0.077, 0.073, 0.073, 0.074
# and 0.076 at 1e-3, 1e-2, 3e-2, 1e-1, 3e-1 and 1: 3e-2 is the smallest within 1%
# of the best, the one that smooths the faces least.
FITTED_CONDITIONAL_RIDGE = 3e-2


def _mixture_start(components, rank):
    """The fitted mixture before its first fit: all weight on one component, N(0, I)
    (weights, component means, component scale_trils)."""
    return (tf.one_hot(0, components), tf.zeros([components, rank]),
            tf.eye(rank, batch_shape=[components]))


class HierarchicalVAE(VAE):
    """--architecture=hierarchical: the VAE's objective over groups of latent maps at
    several resolutions, each group's prior and posterior conditioned on the groups
    above (the module docstring says what encode, decode and sampling mean here).

    The KL is logged in total and per group (kl_group0 is the top group), and so
    are the active units (from group_posteriors).
    """

    def _build_networks(self, config: Config, output_channels: int) -> int:
        self.hierarchy = Hierarchy(config, self.image_shape)
        self.bottom_up = build_bottom_up(config, self.image_shape, self.hierarchy)
        self.top_down = TopDown(config, self.hierarchy, output_channels, name="top_down")
        return self.hierarchy.group_sizes()[0]

    def kl_part_names(self):
        return [f"kl_group{g}" for g in range(self.hierarchy.num_groups)]

    def noise_shapes(self):
        c = self.hierarchy.channels
        return [(side, side, c) for side in self.hierarchy.group_sides]

    def _features(self, images, training=False):
        features = self.bottom_up(images, training=training)
        return features if isinstance(features, (list, tuple)) else [features]

    def encode(self, images, training=False):
        """q(z_top | x), flattened to [N, latent]."""
        q = self.top_down.top_posterior(self._features(images, training=training)[0])
        return (tf.reshape(q.mean, [-1, self.latent_dim]),
                tf.reshape(q.logvar, [-1, self.latent_dim]))

    def decoder_output(self, z, training=False):
        """The likelihood's parameters with the top group at z and the groups below at
        their prior means; with --sample_prior=fitted at the fitted Gaussian's mean
        given the top group (_fitted_conditional_noise)."""
        batch = tf.shape(z)[0]
        if self.config.sample_prior != "fitted":
            return self.top_down.prior(batch, top=z, training=training)
        below = self._fitted_conditional_noise(z)[1:]
        return self.top_down.prior(batch, gaussian.fixed_draw(below),
                                   tf.ones([self.hierarchy.num_groups]), top=z,
                                   training=training)

    def posterior_pass(self, images, draw, num=1, training=False):
        """Every group from its posterior; the KL per group, each analytic given the
        groups above it as sampled."""
        features = [repeat_examples(f, num) for f in self._features(images, training=training)]
        return self.top_down.posterior(features, draw, training=training)[:3]

    def group_posteriors(self, images):
        """Each group's posterior in its prior's units, flattened [N, size_g], top
        first: q(z_g | x, z_<g) standardized by p(z_g | z_<g), the groups above at
        their posterior means (the reconstruction's path), as (mean, logvar) =
        ((mean_q - mean_p) / std_p, logvar_q - logvar_p). The top group's prior is
        N(0, I), so its values are encode's; below it, the prior's units make active
        units mean the same as for N(0, I): a group whose posterior sits at a fixed
        offset from its prior for every image, or follows it, carries nothing about
        the image however many nats it costs."""
        _, _, _, pairs = self.top_down.posterior(self._features(images), None)
        flat = lambda t: tf.reshape(t, [-1, math.prod(t.shape[1:])])
        return [(flat((q.mean - p.mean) * tf.exp(-0.5 * p.logvar)), flat(q.logvar - p.logvar))
                for q, p in pairs]

    # -- the fitted sampling prior ----------------------------------------------------
    # The learned priors p(z_g | z_<g) draw each cell of a group independently, while
    # a face's posteriors, in their priors' units e_g = (z_g - mean_p) / std_p, are
    # coupled across cells, channels and groups: with e from the priors the samples
    # are blotches; with e from one Gaussian fitted to the training images' posterior
    # means of all groups at once they are faces. So --sample_prior=fitted fits that
    # Gaussian on the span of the means' first FITTED_PRIOR_RANK principal directions
    # (mean m, covariance F F^T), refined into a mixture of FITTED_PRIOR_COMPONENTS
    # Gaussians over the standardized coordinates c (latent.fit_low_rank_mixture),
    # and draws z_g = mean_p + std_p * (m_g + T_g F_g c): the learned priors' means
    # and scales, the fitted mixture's coupling. decode and the top group's marginal
    # keep the one Gaussian (the mixture's own mean and covariance). Until the first
    # fit (after the first epoch) F is 0: every group at its prior mean.
    def _add_sampling_prior_weights(self):
        size = sum(self.hierarchy.group_sizes())
        self.prior_mean = self.add_weight(shape=(size,), initializer="zeros",
                                          trainable=False, name="prior_mean")
        rank = min(FITTED_PRIOR_RANK, size)
        self.prior_factor = self.add_weight(shape=(size, rank), initializer="zeros",
                                            trainable=False, name="prior_factor")
        # The mixture over the standardized coordinates c (e = m + F c); until its
        # first fit one component, N(0, I).
        k = FITTED_PRIOR_COMPONENTS
        start = _mixture_start(k, rank)
        self.prior_weights = self.add_weight(
            shape=(k,), initializer=lambda shape, dtype: tf.cast(start[0], dtype),
            trainable=False, name="prior_weights")
        self.prior_component_means = self.add_weight(
            shape=(k, rank), initializer=lambda shape, dtype: tf.cast(start[1], dtype),
            trainable=False, name="prior_component_means")
        self.prior_component_scale_trils = self.add_weight(
            shape=(k, rank, rank), initializer=lambda shape, dtype: tf.cast(start[2], dtype),
            trainable=False, name="prior_component_scale_trils")

    def load_own_variables(self, store):
        """Checkpoints written before the fitted mixture hold its Gaussian alone: they
        load with the mixture at its start (one component, N(0, I)), which draws what
        that Gaussian drew, so older runs still evaluate, sample and resume."""
        if self.config.sample_prior != "fitted":
            return super().load_own_variables(store)
        own = self._own_variables()
        mixture = [self.prior_weights, self.prior_component_means,
                   self.prior_component_scale_trils]
        # The count tells them apart: before, the model's own variables less the
        # mixture's, then (where written) the noise generator's state.
        if len(store.keys()) <= len(own) - len(mixture) + 1:
            start = dict(zip(map(id, mixture), _mixture_start(*self.prior_component_means.shape)))
            stored = iter([store[str(i)] for i in range(len(store.keys()))])
            values = [start[id(v)] if id(v) in start else next(stored) for v in own]
            store = {str(i): value for i, value in enumerate([*values, *stored])}
        super().load_own_variables(store)

    def prior_fit_codes(self, images):
        """Every group's posterior in its prior's units (group_posteriors), the groups
        side by side: (means, logvars) [N, sum of the group sizes]."""
        pairs = self.group_posteriors(images)
        return tuple(tf.concat(list(parts), axis=1) for parts in zip(*pairs))

    def sampling_prior(self):
        """The top group's marginal of the fitted Gaussian (what encode's codes are
        compared with, and what `sampling_prior_codes` draws); N(0, I) unless fitted."""
        if self.config.sample_prior != "fitted":
            return super().sampling_prior()
        d = self.latent_dim
        factor = tf.convert_to_tensor(self.prior_factor)[:d]
        # The ridge makes a covariance of rank below d factorizable (in float32).
        cov = tf.matmul(factor, factor, transpose_b=True) + FITTED_PRIOR_RIDGE * tf.eye(d)
        return tf.convert_to_tensor(self.prior_mean)[:d], tf.linalg.cholesky(cov)

    def _fitted_prior_noise(self, draw, num, temperatures):
        """Each group's e = m + T_g F c, shaped like its map, top first: c from the
        mixture, c = mu_k + L_k u with u the first draw and the component k picked by
        the second (a normal turned uniform, against the weights' running sum)."""
        dtype = self.variable_dtype
        factor = tf.convert_to_tensor(self.prior_factor)
        u = tf.cast(draw([num, factor.shape[1]]), dtype)
        uniform = 0.5 * (1.0 + tf.math.erf(tf.cast(draw([num]), dtype) / math.sqrt(2.0)))
        bounds = tf.math.cumsum(tf.convert_to_tensor(self.prior_weights))
        component = tf.minimum(tf.searchsorted(bounds, uniform), FITTED_PRIOR_COMPONENTS - 1)
        coords = (tf.gather(self.prior_component_means, component)
                  + tf.linalg.matvec(tf.gather(self.prior_component_scale_trils, component), u))
        spread = tf.matmul(coords, factor, transpose_b=True)
        sizes = self.hierarchy.group_sizes()
        return self._group_maps(
            self.prior_mean + tf.repeat(tf.cast(temperatures, dtype), sizes) * spread)

    def _fitted_conditional_noise(self, z):
        """Each group's e at the fitted Gaussian's mean given the top group's e = z
        (its prior is N(0, I)), shaped like its map, top first. With the top group
        m_top + F_top u + noise of variance FITTED_CONDITIONAL_RIDGE, E[u | z] =
        (F_top^T F_top + ridge I)^-1 F_top^T (z - m_top) and E[e | z] = m + F E[u | z]:
        what a face's top code says of the groups below, so that decode (the explorer,
        traversals, interpolations) draws a face where the prior means draw a smooth
        head. Before the first fit F is 0: every group below at its prior mean."""
        dtype = self.variable_dtype
        factor = tf.convert_to_tensor(self.prior_factor)
        # In float64, a margin: F_top^T F_top has directions the top group barely sees,
        # and the ridge keeps the system's condition number in the hundreds.
        top = tf.cast(factor[:self.latent_dim], tf.float64)
        gram = (tf.matmul(top, top, transpose_a=True)
                + FITTED_CONDITIONAL_RIDGE * tf.eye(factor.shape[1], dtype=tf.float64))
        offset = tf.cast(tf.cast(z, dtype) - self.prior_mean[:self.latent_dim], tf.float64)
        u = tf.linalg.cholesky_solve(tf.linalg.cholesky(gram),
                                     tf.matmul(top, offset, transpose_a=True, transpose_b=True))
        u = tf.cast(tf.transpose(u), dtype)
        return self._group_maps(self.prior_mean + tf.matmul(u, factor, transpose_b=True))

    def _group_maps(self, e):
        """[N, sum of the group sizes] split into each group's map, top first."""
        return [tf.reshape(part, [-1, *shape]) for part, shape in
                zip(tf.split(e, self.hierarchy.group_sizes(), axis=1), self.noise_shapes())]

    def prior_pass(self, num, draw, temperature):
        """Every group from its prior at `temperature` (one value, or one per group);
        temperature 0 gives the prior means. With --sample_prior=fitted the e of every
        group comes from the fitted Gaussian (above), temperature 0 giving its mean."""
        temperatures = temperatures_for(temperature, self.hierarchy.num_groups)
        if self.config.sample_prior == "fitted":
            noise = self._fitted_prior_noise(draw, num, temperatures)
            return self.top_down.prior(num, gaussian.fixed_draw(noise),
                                       tf.ones_like(temperatures))
        return self.top_down.prior(num, draw, temperatures)
