"""KL weight schedules and the capacity ramp, at given steps; their flag checks; the
KL penalties' values and gradients, as the model holds them."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf.models import kl
from vae_tf.models.gaussian import DiagonalGaussian
from vae_tf.models.build import build_vae


def _weights(config, steps, total_steps=None):
    return kl.weight_schedule(config, total_steps)(np.array(steps)).numpy()


def test_constant():
    config = tiny_config(kl_weight=0.5)
    assert config.kl_schedule == "constant"
    np.testing.assert_allclose(_weights(config, [0, 10, 10**6]), [0.5, 0.5, 0.5])
    assert kl.weight_schedule(config)(7).shape == ()  # a scalar for the training step


def test_linear_and_the_warmup_flag_alone():
    config = tiny_config(kl_weight=2.0, kl_schedule="linear", kl_warmup_steps=100)
    np.testing.assert_allclose(_weights(config, [0, 25, 100, 500]), [0.0, 0.5, 2.0, 2.0])
    # --kl_warmup_steps predates --kl_schedule and keeps meaning a linear warm-up.
    assert tiny_config(kl_warmup_steps=100) == config.replace(kl_weight=1.0)


def test_cyclical_follows_fu_et_al():
    # 1000 steps in 4 cycles of 250; the weight rises over the first half of each.
    config = tiny_config(kl_schedule="cyclical", kl_cycles=4, kl_cycle_ramp=0.5, kl_weight=2.0)
    steps = [0, 25, 100, 125, 249, 250, 300, 500, 999]
    expected = [0.0, 0.4, 1.6, 2.0, 2.0, 0.0, 0.8, 0.0, 2.0]
    np.testing.assert_allclose(_weights(config, steps, total_steps=1000), expected, atol=1e-6)
    # Periods are whole steps: 1001 steps in 4 cycles gives periods of ceil(250.25) = 251.
    np.testing.assert_allclose(_weights(config, [250, 251], total_steps=1001), [2.0, 0.0])
    with pytest.raises(ValueError, match="total number of training steps"):
        kl.weight_schedule(config)


def test_capacity_ramp():
    config = tiny_config(kl_capacity=25.0, kl_capacity_steps=10_000)
    got = kl.capacity_schedule(config)(np.array([0, 5000, 10_000, 20_000])).numpy()
    np.testing.assert_allclose(got, [0.0, 12.5, 25.0, 25.0])
    held = tiny_config(kl_capacity=25.0)
    np.testing.assert_allclose(kl.capacity_schedule(held)(np.array([0, 9])).numpy(), [25, 25])


@pytest.mark.parametrize("schedule", [
    kl.Constant(0.5), kl.LinearWarmup(2.0, 100), kl.Cyclical(2.0, 1000, 4, 0.5)])
def test_schedules_rebuild_from_their_config(schedule):
    rebuilt = type(schedule).from_config(schedule.get_config())
    steps = np.array([0, 25, 100, 260, 999])
    np.testing.assert_array_equal(rebuilt(steps).numpy(), schedule(steps).numpy())


def test_build_vae_gives_the_model_the_config_s_schedule_and_penalty():
    config = tiny_config(kl_schedule="cyclical", kl_cycles=2, free_bits=0.5)
    model = build_vae(config, (28, 28, 1), total_steps=100)
    assert isinstance(model.kl_schedule, kl.Cyclical) and model.kl_schedule.total_steps == 100
    assert isinstance(model.kl_penalty, kl.FreeBits) and model.kl_penalty.floor == 0.5
    assert isinstance(build_vae(tiny_config(), (28, 28, 1)).kl_penalty, kl.BetaKL)


@pytest.mark.parametrize("changes, message", [
    (dict(kl_schedule="linear"), "needs --kl_warmup_steps"),
    (dict(kl_schedule="cyclical", kl_warmup_steps=10), "applies to --kl_schedule=linear"),
    (dict(free_bits=0.5, kl_capacity=10.0), "set only one"),
    (dict(kl_capacity_steps=100), "needs a --kl_capacity"),
    (dict(kl_cycle_ramp=1.5), "must be <= 1.0"),
    (dict(kl_balance=True), "needs --architecture=hierarchical"),
    (dict(kl_balance=True, free_bits=0.5, architecture="hierarchical", conv_channels=(8,),
          hierarchy="1x1,4x1"), "set only one"),
])
def test_bad_combinations_fail_clearly(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


# -- penalties, as the model holds them --------------------------------------------
def _penalty_and_grads(model, mean, logvar, kl_weight=1.0):
    mean, logvar = tf.Variable(mean, dtype=tf.float32), tf.Variable(logvar, dtype=tf.float32)
    with tf.GradientTape() as tape:
        kl_per_dim = DiagonalGaussian(mean, logvar).kl_standard()
        per_example = model.kl_penalty(kl_per_dim, kl_weight, model.training_steps.value)
        penalty = tf.reduce_mean(per_example)
    grad_mean, grad_logvar = tape.gradient(penalty, [mean, logvar])
    return per_example.numpy(), penalty.numpy(), grad_mean.numpy(), grad_logvar.numpy()


def _kl(mean, logvar):
    return 0.5 * (np.exp(logvar) + mean ** 2 - 1 - logvar)


def test_beta_times_kl_by_default():
    model = build_vae(tiny_config(latent_dim=3), (28, 28, 1))
    mean = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], np.float32)
    per_example, _, grad_mean, _ = _penalty_and_grads(model, mean, np.zeros_like(mean), 3.0)
    np.testing.assert_allclose(per_example, 3.0 * _kl(mean, 0.0).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(grad_mean, 3.0 * mean / 2, rtol=1e-6)  # d(0.5 m^2)/dm, / batch


def test_free_bits_give_no_gradient_below_the_floor():
    model = build_vae(tiny_config(latent_dim=3, free_bits=0.5), (28, 28, 1))
    # Unit variances, so KL_j = 0.5 * mean_j^2 per example. Batch means of the KL:
    #   dim 0: (0.02 + 0.08) / 2 = 0.05  below the floor
    #   dim 1: (0.98 + 0.00) / 2 = 0.49  below it, although one example alone is above
    #   dim 2: (2.00 + 0.50) / 2 = 1.25  above it
    mean = np.array([[0.2, 1.4, 2.0], [0.4, 0.0, 1.0]], np.float32)
    per_example, penalty, grad_mean, grad_logvar = _penalty_and_grads(
        model, mean, np.zeros_like(mean), kl_weight=2.0)
    assert penalty == pytest.approx(2.0 * (0.5 + 0.5 + 1.25), rel=1e-5)
    np.testing.assert_allclose(per_example, 2.0 * (0.5 + 0.5 + _kl(mean[:, 2], 0.0)), rtol=1e-5)
    np.testing.assert_array_equal(grad_mean[:, :2], 0.0)
    np.testing.assert_array_equal(grad_logvar[:, :2], 0.0)
    np.testing.assert_allclose(grad_mean[:, 2], 2.0 * mean[:, 2] / 2, rtol=1e-6)
    assert np.all(grad_logvar[:, 2] == 0.0)  # exp(0) - 1 = 0 at unit variance
    _, _, _, grad_logvar = _penalty_and_grads(model, mean, np.full_like(mean, 0.5))
    assert np.all(grad_logvar[:, 2] != 0.0)


def test_capacity_objective_follows_c_of_t():
    model = build_vae(tiny_config(latent_dim=2, kl_capacity=10.0, kl_capacity_steps=100),
                      (28, 28, 1))
    model.training_steps.assign(50)  # C(50) = 5 nats
    # KLs of the two examples: 0.5 * (2^2 + 2^2) = 4 and 0.5 * (4^2 + 0) = 8 nats.
    mean = np.array([[2.0, 2.0], [4.0, 0.0]], np.float32)
    per_example, penalty, grad_mean, _ = _penalty_and_grads(model, mean, np.zeros_like(mean), 4.0)
    # The absolute value is on the batch mean: 4 * |(4 + 8) / 2 - 5| = 4, although the
    # first example alone is below C. Per example: 4 * sign(6 - 5) * (KL_i - 5).
    assert penalty == pytest.approx(4.0)
    np.testing.assert_allclose(per_example, [4.0 * -1.0, 4.0 * 3.0], rtol=1e-6)
    # The batch is above C, so every example's KL is pulled down: 4 * d(0.5 m^2)/dm / 2.
    np.testing.assert_allclose(grad_mean, [[4.0, 4.0], [8.0, 0.0]], rtol=1e-6)
    model.training_steps.assign(1000)  # C = 10: both below it
    per_example, _, _, _ = _penalty_and_grads(model, mean, np.zeros_like(mean), 1.0)
    np.testing.assert_allclose(per_example, [6.0, 2.0], rtol=1e-6)


def test_kl_balancing_weighs_groups_by_their_nats_per_dimension_during_warm_up():
    # Two groups of 1 and 16 latent dimensions (a 1x1 and a 4x4 map of one channel).
    model = build_vae(tiny_config(architecture="hierarchical", conv_channels=(8,), latent_dim=1,
                                  hierarchy="1x1,4x1", kl_balance=True), (28, 28, 1))
    assert isinstance(model.kl_penalty, kl.BalancedKL)
    kl_parts = tf.Variable([[2.0, 8.0], [4.0, 24.0]])  # [batch, groups], nats
    with tf.GradientTape() as tape:
        per_example = model.kl_penalty(kl_parts, tf.constant(0.5), tf.constant(0, tf.int64))
    # Batch means 3 and 16 nats; per dimension (3.01 / 1, 16.01 / 16), mean-1 weights.
    per_dim = np.array([3.01 / 1, 16.01 / 16])
    weights = per_dim / per_dim.mean()
    np.testing.assert_allclose(per_example, 0.5 * (kl_parts.numpy() * weights).sum(1), rtol=1e-6)
    # The weights are constants: the gradient of each group's KL is its weight.
    np.testing.assert_allclose(tape.gradient(per_example, kl_parts),
                               0.5 * np.tile(weights, (2, 1)), rtol=1e-6)
    # The coarse group (3 nats in 1 dimension) weighs more than the fine one here.
    assert weights[0] > weights[1]
    # Past the warm-up the plain KL, whatever the groups hold.
    np.testing.assert_allclose(model.kl_penalty(kl_parts, tf.constant(1.0), tf.constant(0, tf.int64)),
                               [10.0, 28.0], rtol=1e-6)
