"""The diagonal Gaussian's log-density, KL terms, clamp and noise against numpy and
hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from vae_tf.models import gaussian
from vae_tf.models.gaussian import DiagonalGaussian


def _random(seed=0, shape=(4, 3, 5)):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=s, size=shape) for s in (1.0, 1.0, 2.0)]


def _numpy_log_prob(z, mean, logvar):
    var = np.exp(logvar)
    return -0.5 * np.log(2 * np.pi * var) - (z - mean) ** 2 / (2 * var)


def _numpy_kl(m1, logvar1, m2, logvar2):
    # KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
    s1, s2 = np.exp(0.5 * logvar1), np.exp(0.5 * logvar2)
    return np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5


def test_log_prob_matches_numpy():
    z, mean, logvar = _random()
    got = DiagonalGaussian(tf.constant(mean), tf.constant(logvar)).log_prob(tf.constant(z))
    np.testing.assert_allclose(got.numpy(), _numpy_log_prob(z, mean, logvar), rtol=1e-12)
    # By hand: N(1; 0, 4) = exp(-1/8) / sqrt(8 pi).
    one = DiagonalGaussian(tf.constant([0.0]), tf.constant([math.log(4.0)]))
    assert float(one.log_prob(tf.constant([1.0]))[0]) == pytest.approx(
        -0.125 - 0.5 * math.log(8 * math.pi), rel=1e-6)


def test_noise_log_prob_is_the_density_at_the_sample():
    eps, mean, logvar = _random(1)
    q = DiagonalGaussian(tf.constant(mean), tf.constant(logvar))
    z = q.sample(tf.constant(eps)).numpy()
    np.testing.assert_allclose(z, mean + np.exp(0.5 * logvar) * eps, rtol=1e-12)
    np.testing.assert_allclose(q.noise_log_prob(tf.constant(eps)).numpy(),
                               _numpy_log_prob(z, mean, logvar), rtol=1e-9)
    # A temperature scales the noise: mean + T * std * eps.
    np.testing.assert_allclose(q.sample(tf.constant(eps), 0.5).numpy(),
                               mean + 0.5 * np.exp(0.5 * logvar) * eps, rtol=1e-12)


def test_kl_between_diagonal_gaussians_matches_numpy():
    m1, m2, logvar1 = _random(2)
    logvar2 = np.random.default_rng(3).normal(size=m1.shape)
    q = DiagonalGaussian(tf.constant(m1), tf.constant(logvar1))
    p = DiagonalGaussian(tf.constant(m2), tf.constant(logvar2))
    np.testing.assert_allclose(q.kl(p).numpy(), _numpy_kl(m1, logvar1, m2, logvar2), rtol=1e-9)
    assert np.all(q.kl(q).numpy() == pytest.approx(0.0, abs=1e-12))
    # By hand: KL(N(1, 1) || N(0, 4)) = ln 2 + (1 + 1) / 8 - 1/2.
    one = DiagonalGaussian(tf.constant([1.0]), tf.constant([0.0]))
    other = DiagonalGaussian(tf.constant([0.0]), tf.constant([math.log(4.0)]))
    assert float(one.kl(other)[0]) == pytest.approx(math.log(2) + 0.25 - 0.5, rel=1e-6)


def test_kl_is_the_expected_log_ratio_of_the_densities():
    # Monte Carlo: KL(q || p) = E_q[log q(z) - log p(z)], both densities from log_prob.
    q = DiagonalGaussian(tf.constant([0.3, -1.0], tf.float64), tf.constant([-0.5, 0.4], tf.float64))
    p = DiagonalGaussian(tf.constant([1.0, 0.0], tf.float64), tf.constant([0.2, -0.3], tf.float64))
    eps = tf.constant(np.random.default_rng(4).standard_normal((400_000, 2)))
    z = q.sample(eps)
    estimate = tf.reduce_mean(q.log_prob(z) - p.log_prob(z), axis=0).numpy()
    np.testing.assert_allclose(estimate, q.kl(p).numpy(), atol=5e-3)


def test_kl_to_the_standard_normal_matches_numpy_and_known_values():
    mean, _, logvar = _random(5)
    q = DiagonalGaussian(tf.constant(mean), tf.constant(logvar))
    expected = _numpy_kl(mean, logvar, np.zeros_like(mean), np.zeros_like(mean))
    np.testing.assert_allclose(q.kl_standard().numpy(), expected, rtol=1e-9)
    standard = DiagonalGaussian.standard(tf.constant(mean))
    np.testing.assert_allclose(q.kl(standard).numpy(), expected, rtol=1e-9)
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 * (s^2 + mu^2 - 1 - log s^2), per dimension.
    mean = tf.constant([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]])
    logvar = tf.constant([[0.0, 0.0], [0.0, 0.0], [math.log(4.0), math.log(0.25)]])
    per_dim = DiagonalGaussian(mean, logvar).kl_standard().numpy()
    assert per_dim.shape == (3, 2)
    # By hand: 0.5(4 + 0.25 - 1 - ln 4) + 0.5(0.25 - 1 - ln 0.25) = 0.93185 + 0.31815.
    np.testing.assert_allclose(per_dim.sum(axis=1), [0.0, 0.5 + 2.0, 1.25], rtol=1e-6)


def test_a_network_s_statistics_are_split_and_the_log_variance_clamped():
    stats = tf.constant([[0.5, -2.0, 100.0, -100.0], [1.0, 2.0, 3.0, -4.0]])
    q = DiagonalGaussian.from_stats(stats)
    np.testing.assert_array_equal(q.mean.numpy(), [[0.5, -2.0], [1.0, 2.0]])
    np.testing.assert_array_equal(q.logvar.numpy(), [[gaussian.LOGVAR_MAX, gaussian.LOGVAR_MIN],
                                                     [3.0, -4.0]])
    assert np.all(np.isfinite(q.kl_standard().numpy()))


def test_noise_functions():
    # One seed fixes every call's noise: call i draws from the stateless seed (seed, i).
    draw = gaussian.stateless_draw(7)
    first, second = draw([2, 3]), draw([4])
    np.testing.assert_array_equal(first, tf.random.stateless_normal([2, 3], [7, 1]))
    np.testing.assert_array_equal(second, tf.random.stateless_normal([4], [7, 2]))
    # Per image: rows first .. first+num-1 of the image's own sequence, however split.
    seeds = tf.constant([[0, 3], [0, 4]], tf.int64)
    whole = gaussian.per_image_draw(seeds, 0, 5)([10, 2]).numpy().reshape(2, 5, 2)
    part = gaussian.per_image_draw(seeds, 2, 3)([6, 2]).numpy().reshape(2, 3, 2)
    np.testing.assert_array_equal(whole[:, 2:], part)
    unfolded = gaussian.per_image_draw(seeds, 1, 2, fold_in=False)([4, 2]).numpy()
    np.testing.assert_array_equal(unfolded[:2], tf.random.stateless_normal([3, 2], seeds[0])[1:])
    fixed = gaussian.fixed_draw([tf.ones([2]), tf.zeros([3])])
    assert fixed([2]).shape == (2,) and fixed([3]).shape == (3,)
