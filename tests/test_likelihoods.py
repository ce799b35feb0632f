"""The likelihood classes: -log p(x|z) from the decoder's raw output against numpy,
their scale weights, means, samples, descriptions, and the decoder width they set."""

import math

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf import architectures, likelihoods, losses
from vae_tf.config import ARCHITECTURES, RECON_LOSSES
from vae_tf.model import build_vae

SHAPE = (5, 4, 2)


def _images_and_outputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((3, *SHAPE)).astype(np.float32),
            rng.normal(size=(3, *SHAPE)).astype(np.float32))


def _sigmoid(h):
    return 1 / (1 + np.exp(-h.astype(np.float64)))


def test_registries_name_what_config_accepts():
    assert tuple(likelihoods.REGISTRY) == RECON_LOSSES
    assert tuple(architectures.REGISTRY) == ARCHITECTURES


def test_bernoulli_reads_logits_and_owns_no_weight():
    x, h = _images_and_outputs()
    likelihood = likelihoods.build(tiny_config(), SHAPE)
    assert isinstance(likelihood, likelihoods.Bernoulli) and likelihood.weights == []
    p = _sigmoid(h)
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(likelihood.nll(x, tf.constant(h)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(likelihood.mean(h).numpy(), p, rtol=1e-5)


@pytest.mark.parametrize("learn_scale, scale_shape", [
    ("none", ()), ("shared", ()), ("channel", (2,)), ("pixel", SHAPE)])
def test_gaussian_and_laplace_own_their_scale(learn_scale, scale_shape):
    x, h = _images_and_outputs()
    mean = _sigmoid(h)
    for name in ("gaussian", "laplace"):
        likelihood = likelihoods.build(
            tiny_config(recon_loss=name, learn_scale=learn_scale, recon_scale=0.2), SHAPE)
        assert likelihood.log_scale.shape == scale_shape
        assert likelihood.log_scale.trainable == (learn_scale != "none")
        log_scale = np.log(np.random.default_rng(1).uniform(0.05, 0.5, scale_shape))
        likelihood.log_scale.assign(log_scale)
        s = np.exp(np.broadcast_to(log_scale, x.shape))
        if name == "gaussian":
            expected = 0.5 * ((x - mean) / s) ** 2 + np.log(s) + 0.5 * np.log(2 * np.pi)
        else:
            expected = np.abs(x - mean) / s + np.log(2 * s)
        got = likelihood.nll(tf.constant(x), tf.constant(h)).numpy()
        np.testing.assert_allclose(got, expected.sum(axis=(1, 2, 3)), rtol=1e-5)


def test_a_learned_scale_is_floored():
    x, h = _images_and_outputs()
    likelihood = likelihoods.build(tiny_config(recon_loss="laplace", learn_scale="shared"), SHAPE)
    likelihood.log_scale.assign(-50.0)  # far below LOG_SCALE_MIN
    b = math.exp(losses.LOG_SCALE_MIN)
    expected = (np.abs(x - _sigmoid(h)) / b + np.log(2 * b)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(likelihood.nll(x, tf.constant(h)).numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("name", RECON_LOSSES)
def test_samples_are_images_repeatable_by_seed(name):
    _, h = _images_and_outputs()
    likelihood = likelihoods.build(tiny_config(recon_loss=name, recon_scale=0.05), SHAPE)
    h = tf.constant(np.repeat(h, 200, axis=0))  # many draws of the same three images
    a, b = (likelihood.sample(h, tf.constant([1, 2])).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, likelihood.sample(h, tf.constant([1, 3])).numpy())
    assert a.shape == h.shape and a.min() >= 0.0 and a.max() <= 1.0
    if likelihood.discrete:
        assert set(np.unique(a)) <= {0.0, 1.0}
    # The draws average to the mean (clipping to [0, 1] biases the continuous ones a
    # little near the ends).
    mean = likelihood.mean(h).numpy()
    assert np.abs(a.mean(axis=0) - mean.mean(axis=0)).max() < 0.1


def test_descriptions_say_what_the_nats_are():
    assert likelihoods.describe(tiny_config(binarize="dynamic")) == (
        "bernoulli on binarized pixels (a probability: discrete)", True)
    assert likelihoods.describe(tiny_config()) == (
        "bernoulli cross-entropy on gray pixels (not a normalized likelihood)", False)
    assert likelihoods.describe(tiny_config(recon_loss="gaussian", recon_scale=0.1)) == (
        "gaussian density of pixel values in [0, 1], scale fixed 0.1 "
        "(continuous: not comparable with discrete likelihoods)", False)
    text, bits = likelihoods.describe(tiny_config(recon_loss="laplace", learn_scale="pixel"))
    assert text.startswith("laplace density") and "scale learned" in text and not bits


class _TwoPerChannel(likelihoods.Gaussian):
    """A likelihood needing two decoder outputs per channel (a mean and a log-scale
    per pixel, say); here it reads only the first half."""

    def decoder_channels(self, channels):
        return 2 * channels

    def nll(self, x, h):
        return super().nll(x, h[..., :x.shape[-1]])

    def mean(self, h):
        return super().mean(h[..., :h.shape[-1] // 2])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("channels", [1, 3])
def test_the_decoder_is_as_wide_as_the_likelihood_asks(monkeypatch, architecture, channels):
    shape = (12, 8, channels)
    for name in RECON_LOSSES:
        model = build_vae(tiny_config(recon_loss=name, architecture=architecture), shape)
        assert model.decoder.output.shape[1:] == (
            *shape[:2], model.likelihood.decoder_channels(channels))
    monkeypatch.setitem(likelihoods.REGISTRY, "gaussian", _TwoPerChannel)
    model = build_vae(tiny_config(recon_loss="gaussian", architecture=architecture), shape)
    assert model.decoder.output.shape[1:] == (*shape[:2], 2 * channels)
    images = tf.random.stateless_uniform((2, *shape), seed=(0, 1))
    assert model(images).shape == images.shape
    assert model.log_likelihood(images, tf.zeros((2, model.latent_dim))).shape == (2,)
