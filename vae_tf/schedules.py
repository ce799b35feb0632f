"""Schedules over optimizer steps: the KL weight (beta) and the KL capacity C(t).

Both take `step` as a scalar or a vector (the report draws whole curves with them).
"""

import math

import tensorflow as tf

from vae_tf.config import Config


def kl_weight(step, config: Config, total_steps: int = None):
    """The KL weight in force at optimizer step `step` (float32 tensor shaped like `step`).

    constant: --kl_weight at every step.
    linear:   rises from 0 at step 0 to --kl_weight at step --kl_warmup_steps, then stays.
    cyclical: Fu et al. 2019. The run's `total_steps` are cut into --kl_cycles periods
              of P = ceil(total_steps / kl_cycles) steps; within each, with
              tau = (step mod P) / P, the weight is kl_weight * min(1, tau / kl_cycle_ramp).
    """
    step = tf.cast(step, tf.float32)
    beta = config.kl_weight
    if config.kl_schedule == "linear":
        return beta * tf.minimum(1.0, step / float(config.kl_warmup_steps))
    if config.kl_schedule == "cyclical":
        if not total_steps:
            raise ValueError("--kl_schedule=cyclical needs the run's total number of "
                             "training steps.")
        period = float(math.ceil(total_steps / config.kl_cycles))
        tau = tf.math.floormod(step, period) / period
        return beta * tf.minimum(1.0, tau / config.kl_cycle_ramp)
    return tf.fill(tf.shape(step), tf.constant(beta, tf.float32))


def kl_capacity(step, config: Config):
    """The capacity C(t) in nats of Burgess et al. 2018: rises linearly from 0 to
    --kl_capacity over --kl_capacity_steps, then stays (0 when the objective is off)."""
    step = tf.cast(step, tf.float32)
    if config.kl_capacity_steps <= 0:
        return tf.fill(tf.shape(step), tf.constant(config.kl_capacity, tf.float32))
    return config.kl_capacity * tf.minimum(1.0, step / float(config.kl_capacity_steps))
