"""The reconstruction terms against hand-computed and numpy values (the KL term is
test_gaussian.py's)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from vae_tf.models import losses


def _images_and_outputs(seed=0, shape=(3, 5, 4, 2)):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(np.float32)
    h = rng.normal(size=shape).astype(np.float32)
    return x, h


def test_bernoulli_matches_numpy():
    x, logits = _images_and_outputs()
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2, 3))
    got = losses.bernoulli_nll(tf.constant(x), tf.constant(logits))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("log_scale", [math.log(0.1), np.log([0.05, 0.3])])
def test_gaussian_matches_numpy(log_scale):
    x, h = _images_and_outputs()
    mean = 1 / (1 + np.exp(-h.astype(np.float64)))
    sigma = np.exp(np.broadcast_to(log_scale, x.shape))
    expected = (0.5 * ((x - mean) / sigma) ** 2 + np.log(sigma)
                + 0.5 * np.log(2 * np.pi)).sum(axis=(1, 2, 3))
    got = losses.gaussian_nll(tf.constant(x), tf.sigmoid(h), tf.constant(log_scale, tf.float32))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_laplace_matches_numpy():
    x, h = _images_and_outputs()
    mean = 1 / (1 + np.exp(-h.astype(np.float64)))
    b = 0.2
    expected = (np.abs(x - mean) / b + np.log(2 * b)).sum(axis=(1, 2, 3))
    got = losses.laplace_nll(tf.constant(x), tf.sigmoid(h), tf.constant(math.log(b)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_bernoulli_is_finite_for_extreme_logits():
    x = tf.constant([[[[0.0], [1.0]]]])
    logits = tf.constant([[[[200.0], [-200.0]]]])
    got = losses.bernoulli_nll(x, logits).numpy()
    np.testing.assert_allclose(got, [400.0], rtol=1e-6)
