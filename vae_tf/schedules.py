"""Schedules of the KL weight (beta) over training steps."""

import tensorflow as tf

from vae_tf.config import Config


def kl_weight(step, config: Config):
    """The KL weight in force at optimizer step `step` (a scalar tensor).

    With --kl_warmup_steps=W > 0 it rises linearly from 0 at step 0 to
    --kl_weight at step W, then stays there.
    """
    step = tf.cast(step, tf.float32)
    if config.kl_warmup_steps <= 0:
        return tf.constant(config.kl_weight, tf.float32)
    return config.kl_weight * tf.minimum(1.0, step / float(config.kl_warmup_steps))
