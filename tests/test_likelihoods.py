"""The likelihood classes: -log p(x|z) from the decoder's raw output against numpy,
their scale weights, means, samples, descriptions, and the decoder width they set."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf.models import kernels, likelihoods, losses
from vae_tf import registry
from vae_tf.config import ARCHITECTURES, RECON_LOSSES, SCALED_LOSSES
from vae_tf.errors import UserError
from vae_tf.registry import LIKELIHOODS
from vae_tf.models.build import build_vae

SHAPE = (5, 4, 2)


def _images_and_outputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((3, *SHAPE)).astype(np.float32),
            rng.normal(size=(3, *SHAPE)).astype(np.float32))


def _sigmoid(h):
    return 1 / (1 + np.exp(-h.astype(np.float64)))


def test_registries_name_what_config_accepts():
    assert LIKELIHOODS.names() == RECON_LOSSES
    assert all(issubclass(c, likelihoods.Likelihood) for _, c in LIKELIHOODS.items())
    # Config's TF-free list of the likelihoods that --learn_scale applies to.
    assert SCALED_LOSSES == tuple(n for n, c in LIKELIHOODS.items() if c.has_scale)
    # Every encoder/decoder family has both builders; the hierarchy builds its own.
    assert registry.ARCHITECTURES.names() == ARCHITECTURES
    for name, family in registry.ARCHITECTURES.items():
        assert name == "hierarchical" or (callable(family.build_encoder)
                                          and callable(family.build_decoder))
    with pytest.raises(UserError, match="Unknown likelihood 'poisson'; one of: bernoulli"):
        LIKELIHOODS.get("poisson")


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
    likelihood = likelihoods.build(tiny_config(recon_loss=name, recon_scale=0.05,
                                               num_mixtures=2), SHAPE)
    h = np.random.default_rng(0).normal(
        size=(3, *SHAPE[:-1], likelihood.decoder_channels(SHAPE[-1]))).astype(np.float32)
    h = tf.constant(np.repeat(h, 200, axis=0))  # many draws of the same three images
    a, b = (likelihood.sample(h, tf.constant([1, 2])).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, likelihood.sample(h, tf.constant([1, 3])).numpy())
    assert a.shape == (600, *SHAPE) and a.min() >= 0.0 and a.max() <= 1.0
    if likelihood.levels:  # samples take only the likelihood's values
        levels = likelihood.levels - 1
        np.testing.assert_allclose(a * levels, np.round(a * levels), atol=1e-3)
    if likelihood.levels != 256:  # (the 8-bit ones: test_discretized_means_and_samples)
        # The draws average to the mean (clipping to [0, 1] biases the continuous ones
        # a little near the ends).
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
    shape, settings = (12, 8, channels), dict(architecture=architecture)
    if architecture == "hierarchical":  # square images, one width
        shape = (8, 8, channels)
        settings.update(conv_channels=(8,), hierarchy="1x1,2x1,4x1")

    def output_shape(model):
        return tuple(model.decoder_output(tf.zeros((2, model.latent_dim))).shape[1:])

    for name in RECON_LOSSES:
        model = build_vae(tiny_config(recon_loss=name, **settings), shape)
        assert output_shape(model) == (*shape[:2], model.likelihood.decoder_channels(channels))
    registered = LIKELIHOODS.get
    monkeypatch.setattr(LIKELIHOODS, "get",
                        lambda name: _TwoPerChannel if name == "gaussian" else registered(name))
    model = build_vae(tiny_config(recon_loss="gaussian", **settings), shape)
    assert output_shape(model) == (*shape[:2], 2 * channels)
    images = tf.random.stateless_uniform((2, *shape), seed=(0, 1))
    assert model(images).shape == images.shape
    assert model.log_likelihood(images, tf.zeros((2, model.latent_dim))).shape == (2,)


# -- the discretized likelihoods of 8-bit pixels ------------------------------------
VALUES = np.arange(256) / 255.0


def _logistic_cdf(t):
    return 1.0 / (1.0 + np.exp(-t))


def _bin_probs(mean, s):
    """P(k / 255) for k = 0..255 of a logistic(mean, s) discretized into 8-bit bins,
    by the bin edges directly (the first and last bins take the tails). Above the
    mean, through the upper tails 1 - F, so that float64 keeps their digits."""
    upper = np.append((VALUES[:-1] + 0.5 / 255 - mean) / s, np.inf)
    lower = np.insert((VALUES[1:] - 0.5 / 255 - mean) / s, 0, -np.inf)
    return np.where(VALUES > mean, _logistic_cdf(-lower) - _logistic_cdf(-upper),
                    _logistic_cdf(upper) - _logistic_cdf(lower))


def _logistic_output(params):
    """The decoder output that means these [locations, log-scales] (channels last)."""
    params = np.array(params, dtype=np.float64)
    c = params.shape[-1] // 2
    params[..., :c] -= likelihoods.LOCATION_OFFSET
    params[..., c:] -= likelihoods.LOG_SCALE_OFFSET
    return params


def _mixture_output(params, k):
    """The decoder output that means these mixture parameters (logits, then per
    channel K locations, K log-scales, then couplings): the offsets taken off."""
    params = np.array(params, dtype=np.float64)
    c = 3 if params.shape[-1] == 10 * k else 1
    params[..., k:k + c * k] -= likelihoods.LOCATION_OFFSET
    params[..., k + c * k:k + 2 * c * k] -= likelihoods.LOG_SCALE_OFFSET
    return params


def test_discretized_logistic_against_numpy_and_its_bins_sum_to_one():
    rng = np.random.default_rng(3)
    shape = (2, 3, 2)
    likelihood = likelihoods.build(tiny_config(recon_loss="discretized_logistic"), shape)
    assert likelihood.decoder_channels(2) == 4 and likelihood.discrete
    h = np.concatenate([rng.uniform(-0.1, 1.1, (4, *shape)),            # locations
                        rng.uniform(-4.0, -1.0, (4, *shape))], axis=-1)  # log-scales
    x = rng.integers(0, 256, (4, *shape)) / 255.0
    x[0, 0, 0] = [0.0, 1.0]  # both end bins
    expected = np.zeros(4)
    for i in np.ndindex(4, *shape):
        probs = _bin_probs(h[i[:-1]][i[-1]], np.exp(h[i[:-1]][shape[-1] + i[-1]]))
        expected[i[0]] -= np.log(probs[int(round(x[i] * 255))])
    got = likelihood.nll(tf.constant(x), tf.constant(_logistic_output(h))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-7)
    # The training step's fused kernel (float64 here), 12 values a image: all of
    # them in the kernel's last, partly filled step of 16. (TensorFlow's ops where
    # the kernel cannot be built; test_the_fused_kernel_* then skip, saying why.)
    fused = likelihood.training_nll(tf.constant(x), tf.constant(_logistic_output(h))).numpy()
    np.testing.assert_allclose(fused, expected, rtol=1e-7)

    # One pixel, every one of its 256 values: probabilities that sum to 1, also for a
    # scale far below a bin's width and a location outside [0, 1].
    for mean, log_s in ((0.3, -2.0), (0.5, -9.0), (1.2, -3.0), (-0.05, -4.0)):
        single = likelihoods.build(tiny_config(recon_loss="discretized_logistic"), (1, 1, 1))
        hh = tf.constant(np.tile(_logistic_output([[[[mean, log_s]]]]), (256, 1, 1, 1)))
        for nll in (single.nll, single.training_nll):
            p = np.exp(-nll(tf.constant(VALUES.reshape(256, 1, 1, 1)), hh).numpy())
            assert p.sum() == pytest.approx(1.0, abs=1e-6), (mean, log_s, p.sum())


@pytest.mark.parametrize("dtype,shape,rtol", [("float64", (5, 7, 3), 1e-12),
                                              ("float32", (32, 32, 3), 2e-6),
                                              ("float32", (28, 28, 1), 2e-6)])
def test_the_fused_kernel_is_the_likelihood_and_its_gradient(dtype, shape, rtol):
    """The training step's kernel against TensorFlow's ops: values and the gradient
    in h, with end bins, clamped log-scales and a size that is no multiple of 16."""
    rng = np.random.default_rng(4)
    likelihood = likelihoods.build(tiny_config(recon_loss="discretized_logistic"), shape)
    _require_kernel()
    assert likelihood.fused
    x = (rng.integers(0, 256, (3, *shape)) / 255.0).astype(dtype)
    x[:, 0, :] = 0.0
    x[:, -1, :] = 1.0
    h = rng.normal(scale=2.0, size=(3, *shape[:-1], 2 * shape[-1])).astype(dtype)
    h[:, :, 0, shape[-1]:] = -9.0  # log-scales below the floor of -7
    x, h = tf.constant(x), tf.constant(h)
    weights = tf.constant([1.0, -2.0, 0.5], dtype)  # a different upstream per image
    results = []
    for nll in (likelihood.nll, likelihood.training_nll):
        with tf.GradientTape() as tape:
            tape.watch(h)
            value = nll(x, h)
            total = tf.reduce_sum(weights * value)
        results.append((value.numpy(), tape.gradient(total, h).numpy()))
    (value, grad), (fused_value, fused_grad) = results
    np.testing.assert_allclose(fused_value, value, rtol=rtol)
    np.testing.assert_allclose(fused_grad, grad, rtol=rtol * 10, atol=rtol * np.abs(grad).max())
    assert np.all(fused_grad[:, :, 0, shape[-1]:] == 0.0)  # clamped: no gradient
    assert np.abs(grad).max() > 0.1


def _require_kernel():
    if kernels.library() is None:
        pytest.skip(f"the fused kernel cannot be built here: {kernels.unavailable_reason()}")


def test_the_fused_kernel_is_left_out_of_a_step_on_a_gpu(monkeypatch):
    config = tiny_config(recon_loss="discretized_logistic")
    assert likelihoods.build(config, (4, 4, 3)).fused
    real = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: (
        [tf.config.LogicalDevice("/device:GPU:0", "GPU")] if kind == "GPU" else real(kind)))
    assert not likelihoods.build(config, (4, 4, 3)).fused


_FAKE_COMPILER = """#!/bin/sh
# Fails every build (as g++ 12 did with Eigen's AVX512-FP16 headers), counting them.
case "$*" in *-shared*) echo build >> "{log}"; echo "fake.h:1:1: error: no build here" >&2;; esac
exit 1
"""


def test_a_failed_build_is_remembered_and_retried_on_request(tmp_path):
    log = tmp_path / "builds.log"
    compiler = tmp_path / "fake-g++"
    compiler.write_text(_FAKE_COMPILER.format(log=log))
    compiler.chmod(0o755)
    code = ("from vae_tf.models import kernels\nfrom vae_tf.run import tfenv\n"
            "tfenv.import_tensorflow()\n"
            "print('library', kernels.library())\n")
    env = dict(os.environ, CXX=str(compiler), VAE_TF_KERNEL_CACHE=str(tmp_path / "cache"))

    def attempt(**extra):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=300, env=dict(env, **extra))
        assert result.returncode == 0 and "library None" in result.stdout, result.stderr[-3000:]
        return result.stderr, log.read_text().count("build")

    first, builds = attempt()
    assert builds == 1
    marker = next((tmp_path / "cache").glob("discretized_logistic-*.failed"))
    assert "error: no build here" in marker.read_text()
    assert (f"unavailable (fake-g++ failed with status 1: fake.h:1:1: error: no build here; "
            f"not tried again on this machine: delete {marker} or set "
            f"VAE_TF_KERNEL_REBUILD=1 to retry)") in first.replace(str(compiler), "fake-g++")
    second, builds = attempt()
    assert builds == 1  # remembered: not built again
    assert f"its build failed before on this machine with this compiler, see {marker}" in second
    _, builds = attempt(VAE_TF_KERNEL_REBUILD="1")
    assert builds == 2


def test_without_a_compiler_training_falls_back_to_tensorflows_ops(tmp_path):
    code = ("import tensorflow as tf\n"
            "from conftest import tiny_config\n"
            "from vae_tf.models import kernels, likelihoods\n"
            "lik = likelihoods.build(tiny_config(recon_loss='discretized_logistic'), (4, 4, 3))\n"
            "x = tf.fill((2, 4, 4, 3), 0.5); h = tf.fill((2, 4, 4, 6), 0.1)\n"
            "print('library', kernels.library())\n"
            "print('equal', bool(tf.reduce_all(lik.training_nll(x, h) == lik.nll(x, h))))\n")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=os.path.dirname(__file__), capture_output=True,
        text=True, timeout=300,
        env=dict(os.environ, CXX="/nonexistent/g++", VAE_TF_KERNEL_CACHE=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "library None" in result.stdout and "equal True" in result.stdout
    assert ("vae_tf's fused likelihood kernel is unavailable (no C++ compiler "
            "'/nonexistent/g++' (install g++, or set $CXX)); the training step uses "
            "TensorFlow's ops for it") in result.stderr
    assert os.listdir(tmp_path) == []  # nothing half-built left behind


def _mixture_numpy(x, h, k):
    """-log p of an RGB pixel under PixelCNN++'s mixture, straight from its definition:
    sum over components of pi_k * P(r) P(g | r) P(b | r, g)."""
    logits, rest = h[:k], h[k:].reshape(-1, k)
    means, log_s, coeffs = rest[:3], np.maximum(rest[3:6], -7.0), np.tanh(rest[6:9])
    pi = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    total = 0.0
    for j in range(k):
        m = [means[0, j], means[1, j] + coeffs[0, j] * x[0],
             means[2, j] + coeffs[1, j] * x[0] + coeffs[2, j] * x[1]]
        p = pi[j]
        for c in range(3):
            p *= _bin_probs(m[c], np.exp(log_s[c, j]))[int(round(x[c] * 255))]
        total += p
    return -np.log(total)


def test_discretized_mixture_against_numpy_with_coupled_channels():
    rng = np.random.default_rng(4)
    k = 3
    config = tiny_config(recon_loss="discretized_mix_logistic", num_mixtures=k)
    likelihood = likelihoods.build(config, (2, 2, 3))
    assert likelihood.decoder_channels(3) == 10 * k and likelihood.decoder_channels(1) == 3 * k
    h = rng.normal(size=(2, 2, 2, 10 * k))
    h[..., k + 3 * k:k + 6 * k] = rng.uniform(-4.0, -1.5, (2, 2, 2, 3 * k))  # log-scales
    h[..., k:k + 3 * k] = rng.uniform(0.0, 1.0, (2, 2, 2, 3 * k))           # locations
    x = rng.integers(0, 256, (2, 2, 2, 3)) / 255.0
    expected = [sum(_mixture_numpy(x[n, i, j], h[n, i, j], k) for i in range(2)
                    for j in range(2)) for n in range(2)]
    got = likelihood.nll(tf.constant(x), tf.constant(_mixture_output(h, k))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-7)

    # All 256^3 colours of one pixel: their probabilities sum to 1.
    single = likelihoods.build(config, (1, 1, 3))
    params = tf.constant(_mixture_output(h, k)[0, 0, 0].reshape(1, 1, 1, -1))
    red_green = np.stack(np.meshgrid(VALUES, VALUES, indexing="ij"), -1).reshape(-1, 2)
    total = 0.0
    for start in range(0, len(red_green), 2048):  # 2048 (r, g) pairs x 256 blues a call
        rg = red_green[start:start + 2048]
        colours = np.concatenate([np.repeat(rg, 256, axis=0),
                                  np.tile(VALUES, len(rg))[:, None]], axis=1)
        total += np.exp(-single.nll(tf.constant(colours.reshape(-1, 1, 1, 3)),
                                    tf.repeat(params, len(colours), axis=0)).numpy()).sum()
    assert total == pytest.approx(1.0, abs=1e-6)


def _sharp_params(name, k=2, c=3, n=4, seed=5):
    """Decoder outputs [n, 3, 3, width] with locations in [0.2, 0.8] and logistics a
    few bins wide, laid out as each likelihood reads them."""
    rng = np.random.default_rng(seed)
    if name == "discretized_logistic":
        return _logistic_output(np.concatenate([rng.uniform(0.2, 0.8, (n, 3, 3, c)),
                                                np.full((n, 3, 3, c), -4.0)], axis=-1))
    rows = np.concatenate([rng.uniform(0.3, 0.5, (n, 3, 3, c, k)),
                           np.full((n, 3, 3, c, k), -4.0),
                           0.15 * rng.normal(size=(n, 3, 3, c * (c - 1) // 2, k))], axis=-2)
    return _mixture_output(
        np.concatenate([rng.normal(size=(n, 3, 3, k)), rows.reshape(n, 3, 3, -1)], -1), k)


@pytest.mark.parametrize("name", ["discretized_logistic", "discretized_mix_logistic"])
def test_discretized_means_and_samples_are_8_bit_images(name):
    likelihood = likelihoods.build(tiny_config(recon_loss=name, num_mixtures=2), (3, 3, 3))
    h = _sharp_params(name)
    assert h.shape[-1] == likelihood.decoder_channels(3)
    h = tf.constant(np.repeat(h, 500, axis=0))  # many draws of the same four images
    a, b = (likelihood.sample(h, tf.constant([7, 1])).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)  # stateless: the same seed, the same image
    assert a.shape == (2000, 3, 3, 3) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a * 255, np.round(a * 255), atol=1e-3)
    mean = likelihood.mean(h).numpy()
    assert mean.min() >= 0 and mean.max() <= 1
    # The draws average to the mean (colour coupling included), to a bin or two.
    draws = a.reshape(4, 500, 3, 3, 3).mean(axis=1)
    np.testing.assert_allclose(draws, mean.reshape(4, 500, 3, 3, 3)[:, 0], atol=0.02)


def test_bits_per_dim_only_where_the_likelihood_is_a_probability_of_the_image():
    """One owner (likelihoods.bits_per_nat): bits/dim for the binarized Bernoulli and
    the discretized logistics, none for a cross-entropy on gray pixels or a density;
    the factor comes from the image's shape, channels included."""
    from vae_tf.models.build import build_vae

    shape = (28, 28, 3)
    expected = {
        ("bernoulli", "dynamic"): 1 / (28 * 28 * 3 * math.log(2)),
        ("bernoulli", "none"): None,
        ("gaussian", "none"): None,
        ("laplace", "none"): None,
        ("discretized_logistic", "none"): 1 / (28 * 28 * 3 * math.log(2)),
        ("discretized_mix_logistic", "none"): 1 / (28 * 28 * 3 * math.log(2)),
    }
    for (recon_loss, binarize), factor in expected.items():
        config = tiny_config(recon_loss=recon_loss, binarize=binarize)
        got = likelihoods.bits_per_nat(config, shape)
        assert got == (None if factor is None else pytest.approx(factor)), recon_loss
        model = build_vae(config, shape, total_steps=10)
        assert ("bits_per_dim" in model.trackers) == (factor is not None), recon_loss
