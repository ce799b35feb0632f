"""Reconstruction likelihoods p(x|z): one class each, looked up by --recon_loss.

A likelihood turns the decoder's raw output h (the variable dtype, [N, H, W, K])
into everything the rest of the package needs:

  decoder_channels(C)  K, the decoder outputs per pixel for an image of C channels
  nll(x, h)            -log p(x|z) per example [N], summed over pixels (nats)
  mean(h)              the mean image in [0, 1]
  sample(h, seed)      one image drawn from p(x|z), stateless given `seed`
  discrete             whether p is a probability of quantized pixel values (not a
                       density); whether bits/dim apply is `bits_per_nat`'s answer,
                       which also asks whether the pixels really are quantized

Each is a `keras.layers.Layer`, so the scale weights it owns are tracked by the
model: trained, saved in checkpoints and exported with it. A new likelihood (say a
discretized mixture of logistics, needing several outputs per pixel) is one class
here and its name in `vae_tf.registry.LIKELIHOODS`.
"""

import math
from typing import Optional, Tuple

import keras
import tensorflow as tf

from vae_tf.config import Config
from vae_tf.models import kernels, losses
from vae_tf.registry import LIKELIHOODS


class Likelihood(keras.layers.Layer):
    """The interface; subclasses fill in `nll`, `mean` and `sample`."""

    discrete = False
    # The number of values a pixel takes where `discrete` (its images are quantized to
    # them); None for densities.
    levels = None
    # Whether --learn_scale applies: the likelihood owns a (possibly learned) scale.
    has_scale = False

    def __init__(self, image_shape: Tuple[int, int, int], **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        # Never called on an input: its weights, if any, are made in __init__.
        self.built = True

    @classmethod
    def from_settings(cls, config: Config, image_shape) -> "Likelihood":
        """The likelihood `config` asks for, for images of `image_shape`."""
        return cls(image_shape, name="likelihood")

    @classmethod
    def describe(cls, config: Config) -> Tuple[str, bool]:
        """What the reported nats are -log of, and whether bits per dimension apply."""
        raise NotImplementedError

    def decoder_channels(self, channels: int) -> int:
        """Decoder outputs per pixel: one per channel (the mean or the logit)."""
        return channels

    def nll(self, x, h):
        """-log p(x | h) per example [batch], summed over pixels (nats)."""
        raise NotImplementedError

    def training_nll(self, x, h):
        """`nll` as the training step computes it: the same function, by default with
        the same ops. A likelihood with a fused kernel (vae_tf.models.kernels) uses it here,
        in the one computation that is never exported."""
        return self.nll(x, h)

    def mean(self, h):
        """The mean image, in [0, 1]."""
        raise NotImplementedError

    def sample(self, h, seed):
        """One image drawn from p(x | h); `seed` is a shape-[2] integer tensor."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels; h holds their logits. No scale weight."""

    discrete = True
    levels = 2

    @classmethod
    def describe(cls, config):
        if config.binarize == "dynamic":
            return "bernoulli on binarized pixels (a probability: discrete)", True
        return "bernoulli cross-entropy on gray pixels (not a normalized likelihood)", False

    def nll(self, x, h):
        return losses.bernoulli_nll(tf.cast(x, h.dtype), h)

    def mean(self, h):
        return tf.sigmoid(h)

    def sample(self, h, seed):
        u = tf.random.stateless_uniform(tf.shape(h), seed, dtype=h.dtype)
        return tf.cast(u < tf.sigmoid(h), h.dtype)


# Per-pixel scale parameters, by --learn_scale: their shape for an [H, W, C] image.
_SCALE_SHAPES = {"none": lambda shape: (), "shared": lambda shape: (),
                 "channel": lambda shape: (shape[-1],), "pixel": tuple}


class _ScaledLikelihood(Likelihood):
    """A location-scale density of pixel values: mean sigmoid(h), scale exp(log_scale).

    The log-scale is fixed at log(scale), or learned (one shared value, one per
    channel or one per pixel) from that start; it is clamped below at LOG_SCALE_MIN.
    """

    has_scale = True

    def __init__(self, image_shape, scale: float = 0.1, learn_scale: str = "none", **kwargs):
        super().__init__(image_shape, **kwargs)
        self.scale, self.learn_scale = scale, learn_scale
        self.log_scale = self.add_weight(
            shape=_SCALE_SHAPES[learn_scale](self.image_shape),
            initializer=keras.initializers.Constant(math.log(scale)),
            trainable=learn_scale != "none", name="log_scale")

    @classmethod
    def from_settings(cls, config, image_shape):
        return cls(image_shape, config.recon_scale, config.learn_scale, name="likelihood")

    @classmethod
    def describe(cls, config):
        scale = "learned" if config.learn_scale != "none" else f"fixed {config.recon_scale}"
        return (f"{config.recon_loss} density of pixel values in [0, 1], scale {scale} "
                "(continuous: not comparable with discrete likelihoods)", False)

    def clamped_log_scale(self, dtype):
        """log sigma (gaussian) or log b (laplace) in `dtype`, clamped from below."""
        return tf.maximum(tf.cast(self.log_scale, dtype), losses.LOG_SCALE_MIN)

    def mean(self, h):
        return tf.sigmoid(h)

    def sample(self, h, seed):
        """A draw of the density, clipped to [0, 1] so that it is an image."""
        noise = self._standard_noise(tf.shape(h), seed, h.dtype)
        x = tf.sigmoid(h) + tf.exp(self.clamped_log_scale(h.dtype)) * noise
        return tf.clip_by_value(x, 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "learn_scale": self.learn_scale}


class Gaussian(_ScaledLikelihood):
    """N(x | sigmoid(h), sigma^2) per pixel: a squared error weighed by 1 / sigma^2."""

    def nll(self, x, h):
        return losses.gaussian_nll(tf.cast(x, h.dtype), tf.sigmoid(h),
                                   self.clamped_log_scale(h.dtype))

    @staticmethod
    def _standard_noise(shape, seed, dtype):
        return tf.random.stateless_normal(shape, seed, dtype=dtype)


class Laplace(_ScaledLikelihood):
    """Laplace(x | sigmoid(h), b) per pixel: an absolute error weighed by 1 / b."""

    def nll(self, x, h):
        return losses.laplace_nll(tf.cast(x, h.dtype), tf.sigmoid(h),
                                  self.clamped_log_scale(h.dtype))

    @staticmethod
    def _standard_noise(shape, seed, dtype):
        # Inverse CDF of the unit Laplace at u uniform in (-1/2, 1/2).
        u = tf.random.stateless_uniform(shape, seed, minval=-0.5, maxval=0.5, dtype=dtype)
        return -tf.sign(u) * tf.math.log1p(-2.0 * tf.abs(u))


# 8-bit pixels: 256 values k / 255 in [0, 1], each the centre of a bin 1/255 wide.
_BINS = 255.0
# A logistic's log-scale stays above this, as in PixelCNN++ (a bin is 1/255 wide: a
# narrower logistic puts all its mass in one bin anyway).
_LOG_S_MIN = -7.0


# The decoder's raw outputs are offsets from a mid-gray location and a logistic
# scale of e^-3 (about 0.05, a typical pixel error of a trained model). Read
# directly, an untrained decoder's outputs near 0 mean a scale of 1, the whole pixel
# range: the loss starts above 8 bits/dim and Adam spends thousands of steps moving
# the last layer's biases before the networks learn anything else.
LOCATION_OFFSET = 0.5
LOG_SCALE_OFFSET = -3.0


def _discretized_logistic_log_prob(x, mean, log_s):
    """log P(x) of an 8-bit value x in [0, 1] under a logistic(mean, exp(log_s))
    discretized into the 256 bins of width 1/255; the end bins take the tails.

    With a = (x + 0.5/255 - mean) / s and b = (x - 0.5/255 - mean) / s, the bin's
    probability sigmoid(a) - sigmoid(b) is, exactly and without cancellation,

        log P = log sigmoid(a) + log(1 - exp(b - a)) - softplus(b),   b - a = -1/(255 s)

    and the end bins are log sigmoid(a) (x = 0) and log(1 - sigmoid(b)) (x = 1).
    (PixelCNN++ switches to the density times the bin width where the difference
    underflows; this form needs no switch.)

    The three cases are one sum with 0/1 factors of x alone, no gradient through
    them: log sigmoid(a) unless x = 1, - softplus(b) unless x = 0, the log-width
    between. Two selects of the whole tensor (and their gradients) cost more than
    the rest of the likelihood on a CPU.
    """
    inv_s = tf.exp(-log_s)
    centred = x - mean
    plus = inv_s * (centred + 0.5 / _BINS)
    minus = inv_s * (centred - 0.5 / _BINS)
    half = 0.5 / _BINS
    above_bottom = tf.cast(x > half, x.dtype)
    below_top = tf.cast(x < 1.0 - half, x.dtype)
    log_width = tf.math.log(-tf.math.expm1(-inv_s / _BINS))  # log(1 - exp(minus - plus))
    return (below_top * -tf.nn.softplus(-plus)            # log sigmoid(plus)
            - above_bottom * tf.nn.softplus(minus)        # log(1 - sigmoid(minus))
            + above_bottom * below_top * log_width)


def _quantize(x):
    """The nearest of the 256 8-bit values, in [0, 1]."""
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * _BINS) / _BINS


def _logistic_noise(shape, seed, dtype):
    u = tf.random.stateless_uniform(shape, seed, minval=1e-5, maxval=1.0 - 1e-5, dtype=dtype)
    return tf.math.log(u) - tf.math.log1p(-u)


class DiscretizedLogistic(Likelihood):
    """8-bit pixels, each channel a logistic discretized into 256 bins (Kingma et al.
    2016, Salimans et al. 2017): a probability, so -log p / (H W C ln 2) is the bits
    per dimension that papers report. h holds a location and a log-scale per channel.
    """

    discrete = True
    levels = 256

    def __init__(self, image_shape, fused: bool = False, **kwargs):
        super().__init__(image_shape, **kwargs)
        self.fused = fused

    @classmethod
    def from_settings(cls, config, image_shape):
        # XLA cannot compile a custom op, and fuses TensorFlow's ops by itself. The
        # kernel is CPU-only: on a GPU (the strategies use every visible one) it would
        # copy the decoder's output to the host and back every step.
        on_cpu = not tf.config.list_logical_devices("GPU")
        return cls(image_shape, name="likelihood",
                   fused=config.fused_likelihood and not config.jit_compile and on_cpu)

    @classmethod
    def describe(cls, config):
        return ("discretized logistic on 8-bit pixels (a probability: discrete; "
                "bits/dim comparable with the literature)", True)

    def decoder_channels(self, channels):
        return 2 * channels

    def _params(self, h):
        mean, log_s = tf.split(h, 2, axis=-1)
        return mean + LOCATION_OFFSET, tf.maximum(log_s + LOG_SCALE_OFFSET, _LOG_S_MIN)

    def nll(self, x, h):
        mean, log_s = self._params(h)
        return -losses.sum_per_example(
            _discretized_logistic_log_prob(tf.cast(x, h.dtype), mean, log_s))

    def training_nll(self, x, h):
        if self.fused:
            nll = kernels.discretized_logistic_nll(
                tf.cast(x, h.dtype), h, bins=_BINS, location_offset=LOCATION_OFFSET,
                log_scale_offset=LOG_SCALE_OFFSET, log_scale_min=_LOG_S_MIN)
            if nll is not None:
                return nll
        return self.nll(x, h)

    def mean(self, h):
        return tf.clip_by_value(self._params(h)[0], 0.0, 1.0)

    def sample(self, h, seed):
        mean, log_s = self._params(h)
        return _quantize(mean + tf.exp(log_s) * _logistic_noise(tf.shape(mean), seed, h.dtype))

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


class DiscretizedMixLogistic(Likelihood):
    """8-bit pixels from a mixture of K discretized logistics per pixel, the colour
    channels coupled within each component (PixelCNN++, Salimans et al. 2017): the
    location of green depends linearly on red, that of blue on red and green.

    h holds, per pixel, K mixture logits, then per channel K locations and K
    log-scales, then K coupling coefficients per pair of channels (tanh'd):
    K * (1 + 2C + C(C-1)/2) outputs, 10K for RGB.
    """

    discrete = True
    levels = 256

    def __init__(self, image_shape, mixtures: int = 10, **kwargs):
        super().__init__(image_shape, **kwargs)
        self.mixtures = mixtures

    @classmethod
    def from_settings(cls, config, image_shape):
        return cls(image_shape, config.num_mixtures, name="likelihood")

    @classmethod
    def describe(cls, config):
        return (f"mixture of {config.num_mixtures} discretized logistics on 8-bit pixels, "
                "colour channels coupled (a probability: discrete; bits/dim comparable "
                "with the literature)", True)

    def decoder_channels(self, channels):
        return self.mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)

    def _params(self, h):
        """Mixture logits [..., K], locations and log-scales [..., C, K], and the
        coupling coefficients [..., C(C-1)/2, K]."""
        k, c = self.mixtures, self.image_shape[-1]
        shape = tf.shape(h)[:-1]
        logits = h[..., :k]
        rest = tf.reshape(h[..., k:], tf.concat([shape, [-1, k]], 0))
        means, log_s, coeffs = rest[..., :c, :], rest[..., c:2 * c, :], rest[..., 2 * c:, :]
        return (logits, means + LOCATION_OFFSET,
                tf.maximum(log_s + LOG_SCALE_OFFSET, _LOG_S_MIN), tf.tanh(coeffs))

    def _coupled_means(self, means, coeffs, values):
        """Each channel's location plus the coupling to the channels before it, given
        `values` [..., C, K] of those channels (the data, or a sample)."""
        channels, pair = [means[..., 0, :]], 0
        for c in range(1, self.image_shape[-1]):
            shifted = means[..., c, :]
            for earlier in range(c):
                shifted += coeffs[..., pair, :] * values[..., earlier, :]
                pair += 1
            channels.append(shifted)
        return tf.stack(channels, axis=-2)

    def nll(self, x, h):
        logits, means, log_s, coeffs = self._params(h)
        x = tf.cast(x, h.dtype)[..., None] + tf.zeros_like(means)  # [..., C, K]
        log_probs = _discretized_logistic_log_prob(
            x, self._coupled_means(means, coeffs, x), log_s)
        per_component = tf.reduce_sum(log_probs, axis=-2) + tf.nn.log_softmax(logits)
        return -losses.sum_per_example(tf.reduce_logsumexp(per_component, axis=-1))

    def mean(self, h):
        logits, means, _, coeffs = self._params(h)
        # Within a component each channel's mean is its location plus the coupling
        # times the earlier channels' means (linear), filled in channel by channel.
        component_means = tf.zeros_like(means)
        for _ in range(self.image_shape[-1]):
            component_means = self._coupled_means(means, coeffs, component_means)
        # Each component's draws are clipped to [0, 1]; so are its means, before mixing.
        weights = tf.nn.softmax(logits)[..., None, :]
        return tf.reduce_sum(weights * tf.clip_by_value(component_means, 0.0, 1.0), axis=-1)

    def sample(self, h, seed):
        logits, means, log_s, coeffs = self._params(h)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        gumbel = -tf.math.log(-tf.math.log(tf.random.stateless_uniform(
            tf.shape(logits), seeds[0], minval=1e-5, maxval=1.0 - 1e-5, dtype=h.dtype)))
        chosen = tf.one_hot(tf.argmax(logits + gumbel, axis=-1), self.mixtures,
                            dtype=h.dtype)[..., None, :]  # [..., 1, K]
        noise = _logistic_noise(tf.shape(means), seeds[1], h.dtype) * tf.exp(log_s)
        values = tf.zeros_like(means)
        # Channel c's location depends on the sampled channels before it: after pass
        # c, channels 0..c hold their samples (the coupling is triangular).
        for _ in range(self.image_shape[-1]):
            values = _quantize(self._coupled_means(means, coeffs, values) + noise)
        return tf.reduce_sum(chosen * values, axis=-1)

    def get_config(self):
        return {**super().get_config(), "mixtures": self.mixtures}


def build(config: Config, image_shape) -> Likelihood:
    """The likelihood layer of --recon_loss for images of `image_shape`."""
    return LIKELIHOODS.get(config.recon_loss).from_settings(config, image_shape)


def describe(config: Config) -> Tuple[str, bool]:
    """(what the nats are -log of, whether bits per dimension mean anything) for the
    run's likelihood; runs no TensorFlow."""
    return LIKELIHOODS.get(config.recon_loss).describe(config)


def bits_per_nat(config: Config, image_shape) -> Optional[float]:
    """Bits per dimension of one nat per image, 1 / (H W C ln 2), where the run's
    likelihood is a probability of the 8-bit (or binarized) image; None where it is
    not (a density, or a cross-entropy on gray pixels), so no bits/dim is reported.

    The one place that decides whether a bits/dim figure means anything: the epoch
    line, metrics.csv, TensorBoard, the report and evaluate all follow it.
    """
    if not describe(config)[1]:
        return None
    return 1.0 / (math.prod(image_shape) * math.log(2.0))
