"""The KL penalties of the training objective: values and gradients, through the
model's regularizer hook."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf import losses
from vae_tf.model import build_vae


def _penalty_and_grads(model, mean, logvar, kl_weight=1.0):
    mean, logvar = tf.Variable(mean, dtype=tf.float32), tf.Variable(logvar, dtype=tf.float32)
    with tf.GradientTape() as tape:
        kl_per_dim = losses.gaussian_kl_per_dim(mean, logvar)
        per_example = model.regularizer(kl_per_dim, kl_weight)
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
    model.optimizer.iterations.assign(50)  # C(50) = 5 nats
    # KLs of the two examples: 0.5 * (2^2 + 2^2) = 4 and 0.5 * (4^2 + 0) = 8 nats.
    mean = np.array([[2.0, 2.0], [4.0, 0.0]], np.float32)
    per_example, penalty, grad_mean, _ = _penalty_and_grads(model, mean, np.zeros_like(mean), 4.0)
    # The absolute value is on the batch mean: 4 * |(4 + 8) / 2 - 5| = 4, although the
    # first example alone is below C. Per example: 4 * sign(6 - 5) * (KL_i - 5).
    assert penalty == pytest.approx(4.0)
    np.testing.assert_allclose(per_example, [4.0 * -1.0, 4.0 * 3.0], rtol=1e-6)
    # The batch is above C, so every example's KL is pulled down: 4 * d(0.5 m^2)/dm / 2.
    np.testing.assert_allclose(grad_mean, [[4.0, 4.0], [8.0, 0.0]], rtol=1e-6)
    model.optimizer.iterations.assign(1000)  # C = 10: both below it
    per_example, _, _, _ = _penalty_and_grads(model, mean, np.zeros_like(mean), 1.0)
    np.testing.assert_allclose(per_example, [6.0, 2.0], rtol=1e-6)
