"""Per-example terms of the ELBO, as pure TensorFlow functions.

Every function returns a tensor of shape [batch]: it sums over pixels (or latent
dimensions) and leaves the mean over the batch to the caller. A mean over pixels
would scale the likelihood down by H*W*C against the KL, the most common VAE bug.

    -ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I))     (nats per image)

The KL term is the diagonal Gaussian's (vae_tf/models/gaussian.py).
"""

import math

import tensorflow as tf

from vae_tf.models.gaussian import LOG_2PI


# Learned likelihood scales stay above 1e-3 (in [0, 1] pixel units): below that the
# density of a continuous likelihood on 8-bit data grows without bound.
LOG_SCALE_MIN = math.log(1e-3)

_LOG_2 = math.log(2.0)


def sum_per_example(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def bernoulli_nll(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """-log Bernoulli(x | sigmoid(logits)) summed over pixels (binary cross-entropy).

    -log p = sum_i [softplus(l_i) - x_i * l_i], computed from logits so that it
    never takes log(0).
    """
    return sum_per_example(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def gaussian_nll(x: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
    """-log N(x | mean, sigma^2) summed over pixels, sigma = exp(log_scale).

    -log p = sum_i [0.5 * ((x_i - mean_i) / sigma_i)^2 + log sigma_i + 0.5 * log(2 pi)]
    `log_scale` broadcasts against x (a scalar, one per channel or one per pixel).
    """
    log_scale = tf.broadcast_to(log_scale, tf.shape(x))
    z = (x - mean) * tf.exp(-log_scale)
    return sum_per_example(0.5 * tf.square(z) + log_scale + 0.5 * LOG_2PI)


def laplace_nll(x: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
    """-log Laplace(x | mean, b) summed over pixels, b = exp(log_scale).

    -log p = sum_i [|x_i - mean_i| / b_i + log b_i + log 2]
    """
    log_scale = tf.broadcast_to(log_scale, tf.shape(x))
    return sum_per_example(tf.abs(x - mean) * tf.exp(-log_scale) + log_scale + _LOG_2)
