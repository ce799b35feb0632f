"""The KL term of the training objective: a weight schedule and a penalty.

Given to the VAE the way a learning-rate schedule is given to an optimizer:

  schedule(step) -> the KL weight beta in force at training step `step`
  penalty(kl_per_dim, kl_weight, step) -> the KL penalty per example [batch]

Schedules take `step` as a scalar or a vector (a whole curve at once) and return
float32 shaped like it. Penalties take the KL per latent dimension [batch, latent]
and return a [batch] tensor, so that the caller's mean over the batch gives the
penalty. The reported `kl` metric stays the raw KL whichever penalty trains the model.
"""

import math

import tensorflow as tf

from vae_tf.config import Config


# -- schedules -------------------------------------------------------------------------
class Schedule:
    """A value as a function of the training step, like
    `keras.optimizers.schedules.LearningRateSchedule`."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_config(cls, config: dict) -> "Schedule":
        return cls(**config)


class Constant(Schedule):
    """`value` at every step."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, step):
        return tf.fill(tf.shape(step), tf.constant(self.value, tf.float32))


class LinearWarmup(Schedule):
    """Rises linearly from 0 at step 0 to `value` at step `steps`, then stays;
    `value` throughout when `steps` is 0."""

    def __init__(self, value: float, steps: int):
        self.value, self.steps = value, steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.steps <= 0:
            return tf.fill(tf.shape(step), tf.constant(self.value, tf.float32))
        return self.value * tf.minimum(1.0, step / float(self.steps))


class Cyclical(Schedule):
    """Fu et al. 2019. The run's `total_steps` are cut into `cycles` periods of
    P = ceil(total_steps / cycles) steps; within each, with tau = (step mod P) / P,
    the weight is value * min(1, tau / ramp)."""

    def __init__(self, value: float, total_steps: int, cycles: int, ramp: float):
        self.value, self.total_steps, self.cycles, self.ramp = value, total_steps, cycles, ramp

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        period = float(math.ceil(self.total_steps / self.cycles))
        tau = tf.math.floormod(step, period) / period
        return self.value * tf.minimum(1.0, tau / self.ramp)


def weight_schedule(config: Config, total_steps: int = None) -> Schedule:
    """The KL weight schedule of --kl_schedule.

    constant: --kl_weight at every step.
    linear:   rises from 0 at step 0 to --kl_weight at step --kl_warmup_steps, then stays.
    cyclical: `Cyclical` with --kl_cycles and --kl_cycle_ramp over the run's
              `total_steps` training steps.
    """
    if config.kl_schedule == "linear":
        return LinearWarmup(config.kl_weight, config.kl_warmup_steps)
    if config.kl_schedule == "cyclical":
        if not total_steps:
            raise ValueError("--kl_schedule=cyclical needs the run's total number of "
                             "training steps.")
        return Cyclical(config.kl_weight, total_steps, config.kl_cycles, config.kl_cycle_ramp)
    return Constant(config.kl_weight)


def capacity_schedule(config: Config) -> Schedule:
    """The capacity C(t) in nats of Burgess et al. 2018: rises linearly from 0 to
    --kl_capacity over --kl_capacity_steps, then stays (0 when the objective is off)."""
    return LinearWarmup(config.kl_capacity, config.kl_capacity_steps)


# -- penalties -------------------------------------------------------------------------
class BetaKL:
    """kl_weight * KL per example: the ELBO's KL term at beta = 1."""

    def __call__(self, kl_per_dim, kl_weight, step):
        return kl_weight * tf.reduce_sum(kl_per_dim, axis=-1)


class FreeBits:
    """Free bits (Kingma et al. 2016): kl_weight * sum_j max(floor, mean_batch KL_j).

    The floor applies per dimension to the KL averaged over the batch, as in the
    paper's groups of one dimension. A dimension below it contributes the constant
    `floor`, so the encoder is free to use those nats: no KL gradient reaches it.
    Per example, the dimensions above the floor keep their own KL, which has the
    same batch mean and the same gradient as the formula above.
    """

    def __init__(self, floor: float):
        self.floor = floor

    def __call__(self, kl_per_dim, kl_weight, step):
        floor = tf.cast(self.floor, kl_per_dim.dtype)  # a number, or one per part
        batch_mean = tf.reduce_mean(kl_per_dim, axis=0, keepdims=True)
        kept = tf.where(batch_mean >= floor, kl_per_dim,
                        tf.broadcast_to(floor, tf.shape(kl_per_dim)))
        return kl_weight * tf.reduce_sum(kept, axis=-1)


class Capacity:
    """Capacity-annealed beta-VAE (Burgess et al. 2018): kl_weight * |E_batch[KL] - C(t)|.

    The absolute value applies to the KL averaged over the batch (the paper's
    expectation over the data), not to each example's KL. Per example this returns
    kl_weight * sign(E_batch[KL] - C) * (KL_i - C), whose batch mean is exactly that
    penalty and has its gradient: when the batch's KL is below C every example's KL
    is pushed up, when above it is pulled down, so raising C(t) over training lets
    the code take on information gradually.
    """

    def __init__(self, capacity: Schedule):
        self.capacity = capacity

    def __call__(self, kl_per_dim, kl_weight, step):
        capacity = tf.cast(self.capacity(step), kl_per_dim.dtype)
        kl = tf.reduce_sum(kl_per_dim, axis=-1)
        direction = tf.stop_gradient(tf.sign(tf.reduce_mean(kl) - capacity))
        return kl_weight * direction * (kl - capacity)


class BalancedKL:
    """NVAE's KL balancing (Vahdat & Kautz 2020): while kl_weight < 1,
    kl_weight * sum_g c_g KL_g with c_g = (mean_batch KL_g + 0.01) / size_g, normalized
    to a mean of 1 over the groups and held constant (no gradient); from then on the
    plain kl_weight * sum_g KL_g.

    During the warm-up a group that holds many nats per latent dimension pays more
    for them and one that holds few pays less, so that no group is left unused
    while others take over the image.
    """

    def __init__(self, part_sizes):
        self.part_sizes = [float(size) for size in part_sizes]

    def __call__(self, kl_parts, kl_weight, step):
        sizes = tf.constant(self.part_sizes, kl_parts.dtype)
        per_dim = (tf.reduce_mean(tf.abs(kl_parts), axis=0) + 0.01) / sizes
        coefficients = tf.stop_gradient(per_dim / tf.reduce_mean(per_dim))
        balanced = tf.reduce_sum(kl_parts * coefficients, axis=-1)
        plain = tf.reduce_sum(kl_parts, axis=-1)
        return kl_weight * tf.where(kl_weight < 1.0, balanced, plain)


def penalty(config: Config, part_sizes=None):
    """The KL penalty `config` asks for: free bits, a capacity target, KL balancing of
    a hierarchy's groups, or beta * KL.

    `part_sizes`: latent dimensions in each part of the KL when its parts are groups
    (a hierarchy's), whose free-bits floor is then --free_bits times their size.
    """
    if config.free_bits > 0:
        if part_sizes is not None:
            return FreeBits([config.free_bits * size for size in part_sizes])
        return FreeBits(config.free_bits)
    if config.kl_capacity > 0:
        return Capacity(capacity_schedule(config))
    if config.kl_balance:
        return BalancedKL(part_sizes)
    return BetaKL()
