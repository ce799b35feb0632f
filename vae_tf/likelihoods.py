"""Reconstruction likelihoods p(x|z): one class each, looked up by --recon_loss.

A likelihood turns the decoder's raw output h (the variable dtype, [N, H, W, K])
into everything the rest of the package needs:

  decoder_channels(C)  K, the decoder outputs per pixel for an image of C channels
  nll(x, h)            -log p(x|z) per example [N], summed over pixels (nats)
  mean(h)              the mean image in [0, 1]
  sample(h, seed)      one image drawn from p(x|z), stateless given `seed`
  discrete             whether p is a probability of pixel values (not a density)

Each is a `keras.layers.Layer`, so the scale weights it owns are tracked by the
model: trained, saved in checkpoints and exported with it. A new likelihood (say a
discretized mixture of logistics, needing several outputs per pixel) is one class
here, added to REGISTRY and to `config.RECON_LOSSES`.
"""

import math
from typing import Tuple

import keras
import tensorflow as tf

from vae_tf import losses
from vae_tf.config import Config


class Likelihood(keras.layers.Layer):
    """The interface; subclasses fill in `nll`, `mean` and `sample`."""

    discrete = False
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


REGISTRY = {"bernoulli": Bernoulli, "gaussian": Gaussian, "laplace": Laplace}


def build(config: Config, image_shape) -> Likelihood:
    """The likelihood layer of --recon_loss for images of `image_shape`."""
    return REGISTRY[config.recon_loss].from_settings(config, image_shape)


def describe(config: Config) -> Tuple[str, bool]:
    """(what the nats are -log of, whether bits per dimension mean anything) for the
    run's likelihood; runs no TensorFlow."""
    return REGISTRY[config.recon_loss].describe(config)
