"""The KL penalty of the training objective: beta * KL, free bits, or a capacity target.

Each function takes the KL per latent dimension [batch, latent] and returns a
[batch] tensor, so that the caller's mean over the batch gives the penalty. The
reported `kl` metric stays the raw KL whichever penalty trains the model.
"""

import tensorflow as tf

from vae_tf import schedules
from vae_tf.config import Config


def beta_kl(kl_per_dim, kl_weight):
    """kl_weight * KL per example: the ELBO's KL term at beta = 1."""
    return kl_weight * tf.reduce_sum(kl_per_dim, axis=-1)


def free_bits_kl(kl_per_dim, kl_weight, floor: float):
    """Free bits (Kingma et al. 2016): kl_weight * sum_j max(floor, mean_batch KL_j).

    The floor applies per dimension to the KL averaged over the batch, as in the
    paper's groups of one dimension. A dimension below it contributes the constant
    `floor`, so the encoder is free to use those nats: no KL gradient reaches it.
    Per example, the dimensions above the floor keep their own KL, which has the
    same batch mean and the same gradient as the formula above.
    """
    batch_mean = tf.reduce_mean(kl_per_dim, axis=0, keepdims=True)
    kept = tf.where(batch_mean >= floor, kl_per_dim, tf.cast(floor, kl_per_dim.dtype))
    return kl_weight * tf.reduce_sum(kept, axis=-1)


def capacity_kl(kl_per_dim, kl_weight, capacity):
    """Capacity-annealed beta-VAE (Burgess et al. 2018): kl_weight * |E_batch[KL] - C|.

    The absolute value applies to the KL averaged over the batch (the paper's
    expectation over the data), not to each example's KL. Per example this returns
    kl_weight * sign(E_batch[KL] - C) * (KL_i - C), whose batch mean is exactly that
    penalty and has its gradient: when the batch's KL is below C every example's KL
    is pushed up, when above it is pulled down, so raising C(t) over training lets
    the code take on information gradually.
    """
    kl = tf.reduce_sum(kl_per_dim, axis=-1)
    direction = tf.stop_gradient(tf.sign(tf.reduce_mean(kl) - capacity))
    return kl_weight * direction * (kl - capacity)


def kl_penalty(kl_per_dim, kl_weight, config: Config, step):
    """The penalty `config` asks for, at optimizer step `step`."""
    if config.free_bits > 0:
        return free_bits_kl(kl_per_dim, kl_weight, config.free_bits)
    if config.kl_capacity > 0:
        return capacity_kl(kl_per_dim, kl_weight, schedules.kl_capacity(step, config))
    return beta_kl(kl_per_dim, kl_weight)
