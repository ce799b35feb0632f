"""The diagonal Gaussian of every latent variable, and the noise its samples take.

Encoders, the hierarchy's priors and posteriors and the evaluation of old exports
all describe a latent code as N(mean, exp(logvar)) with the log-variance clamped;
`DiagonalGaussian` holds its arithmetic once:

    z = mean + exp(logvar / 2) * eps,                     eps ~ N(0, I)
    log N(z; m, v)   = -1/2 [(z - m)^2 / v + log v + log 2 pi]
    KL(q || p)       = 1/2 [log v_p - log v_q + (v_q + (m_q - m_p)^2) / v_p - 1]
    KL(q || N(0, I)) = 1/2 [v_q + m_q^2 - 1 - log v_q]

Every value is per element, shaped like the mean: the caller sums over a code's
dimensions (a vector's last axis, a group's map), since the KL penalties work per
dimension or per group.

Noise comes in one form, a function draw(shape) -> N(0, 1) of that shape, called
once per latent group, top first; the functions below make one from a seed, from
per-image seeds, or from given tensors (the model's seeded generator under
tf.distribute is vae_tf.models.distribute.replica_noise).
"""

import math

import tensorflow as tf


# exp() of a log-variance beyond these bounds overflows float32 or underflows to 0.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
LOG_2PI = math.log(2.0 * math.pi)


class DiagonalGaussian:
    """N(mean, exp(logvar)) per element; `logvar` is used as given (see from_stats)."""

    def __init__(self, mean: tf.Tensor, logvar: tf.Tensor):
        self.mean, self.logvar = mean, logvar

    @classmethod
    def from_stats(cls, stats: tf.Tensor) -> "DiagonalGaussian":
        """The Gaussian a network outputs: [..., 2k] split into mean and log-variance,
        the log-variance clamped to [LOGVAR_MIN, LOGVAR_MAX]."""
        mean, logvar = tf.split(stats, 2, axis=-1)
        return cls(mean, clamp_logvar(logvar))

    @classmethod
    def standard(cls, like: tf.Tensor) -> "DiagonalGaussian":
        """N(0, I) shaped like `like`."""
        zeros = tf.zeros_like(like)
        return cls(zeros, zeros)

    def sample(self, eps: tf.Tensor, temperature=None) -> tf.Tensor:
        """mean + std * eps, eps standard-normal noise shaped like the mean; with a
        `temperature` T, mean + T * std * eps."""
        std = tf.exp(0.5 * self.logvar)
        if temperature is not None:
            std = temperature * std
        return self.mean + std * eps

    def log_prob(self, z: tf.Tensor) -> tf.Tensor:
        """log N(z; mean, exp(logvar)) per element."""
        return -0.5 * (tf.square(z - self.mean) * tf.exp(-self.logvar) + self.logvar + LOG_2PI)

    def noise_log_prob(self, eps: tf.Tensor) -> tf.Tensor:
        """log_prob(sample(eps)) per element, read from eps itself: exact where
        recovering (z - mean) / std from z loses precision (a small std)."""
        return -0.5 * (tf.square(eps) + LOG_2PI + self.logvar)

    def kl(self, other: "DiagonalGaussian") -> tf.Tensor:
        """KL(self || other) per element."""
        return 0.5 * (other.logvar - self.logvar
                      + (tf.exp(self.logvar) + tf.square(self.mean - other.mean))
                      * tf.exp(-other.logvar) - 1.0)

    def kl_standard(self) -> tf.Tensor:
        """KL(self || N(0, I)) per element."""
        return 0.5 * (tf.exp(self.logvar) + tf.square(self.mean) - 1.0 - self.logvar)


def clamp_logvar(logvar: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(logvar, LOGVAR_MIN, LOGVAR_MAX)


# -- noise: draw(shape) -> N(0, 1) ------------------------------------------------------
def noise_like(draw, like: tf.Tensor) -> tf.Tensor:
    """The next noise of `draw`, shaped like `like` and in its dtype."""
    return tf.cast(draw(tf.shape(like)), like.dtype)


def stateless_draw(seed):
    """Noise for sampling: the i-th call draws N(0, 1) of its shape from the stateless
    seed (seed, i), so one seed fixes the noise of every group, in Python and in the
    export alike."""
    calls = []

    def draw(shape):
        calls.append(shape)
        return tf.random.stateless_normal(
            shape, tf.stack([tf.cast(seed, tf.int64), tf.constant(len(calls), tf.int64)]))

    return draw


def per_image_draw(seeds, first, num, fold_in=True):
    """Noise for samples first .. first+num-1 of importance sampling, where each of N
    images is repeated `num` times along the batch: the i-th call's draw for image n
    is rows first .. first+num-1 of one sequence from the stateless seed seeds[n]
    folded with i. An image's samples are thus the same whatever the other images in
    its batch and however its samples are split into calls (a stateless draw of M
    rows begins with the draw of fewer). `fold_in=False` draws from seeds[n] itself
    (exports made before the log_weights signature were evaluated so)."""
    calls = []

    def draw(shape):
        calls.append(shape)
        part = len(calls)

        def one_image(seed):
            if fold_in:
                seed = tf.random.experimental.stateless_fold_in(seed, part)
            rows = tf.random.stateless_normal(tf.concat([[first + num], shape[1:]], 0), seed)
            return rows[first:]

        noise = tf.map_fn(one_image, seeds, fn_output_signature=tf.TensorSpec(None, tf.float32))
        return tf.reshape(noise, shape)

    return draw


def fixed_draw(noises):
    """A draw that returns the given tensors in order (fixed noise: gradient checks,
    tests); one tensor alone stands for a list of it."""
    remaining = list(noises) if isinstance(noises, (list, tuple)) else [noises]
    return lambda shape: remaining.pop(0)
