"""`python -m vae_tf.gradcheck` passes on the real model and catches a wrong gradient."""

import re

import keras
import tensorflow as tf

from conftest import run_module
from vae_tf.config import ARCHITECTURES
from vae_tf import gradcheck
from vae_tf.registry import LIKELIHOODS
from vae_tf.models import vae as model_lib


class WrongGradient(keras.layers.Layer):
    """The identity, whose custom gradient halves what flows back: the bug a
    hand-written gradient can have."""

    def call(self, x):
        @tf.custom_gradient
        def identity(x):
            return tf.identity(x), lambda upstream: 0.5 * upstream
        return identity(x)


class VAEWithWrongLayer(model_lib.VAE):
    """The real VAE with the broken layer after its decoder, as a user's own layer
    would sit in the network."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wrong = WrongGradient()

    def decoder_output(self, z, training=False):
        return self.wrong(super().decoder_output(z, training=training))


def test_command_passes_on_the_real_model():
    result = run_module("vae_tf.gradcheck")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    errors = [float(e) for e in re.findall(r"\s(\d\.\d\de-\d\d)\s*$", result.stdout, re.M)]
    # Every likelihood x every network; every weight of encoder, decoder and learned scale.
    configs = list(gradcheck.tiny_configs())
    assert len(configs) == len(LIKELIHOODS.names()) * len(ARCHITECTURES)
    count = sum(len(gradcheck.build_model(config).trainable_weights) for _, config in configs)
    assert len(errors) == count and max(errors) < gradcheck.DEFAULT_TOLERANCE
    for name, config in configs:
        assert name in result.stdout
        scale = LIKELIHOODS.get(config.recon_loss).has_scale
        assert (config.learn_scale != "none") == scale  # a scale, if any, is learned
    assert {c.learn_scale for _, c in configs} >= {"pixel", "shared"}
    assert re.search(r"^\S+\s+log_scale\s", result.stdout, re.M)
    assert f"all {count} variables within 1e-06" in result.stdout


def _errors(config):
    model = gradcheck.build_model(config)
    return gradcheck.check_gradients(model, *gradcheck.tiny_inputs(model))


def test_a_wrong_layer_gradient_is_caught(monkeypatch):
    name, config = next(gradcheck.tiny_configs())
    assert name == "bernoulli/conv"
    good = _errors(config)
    monkeypatch.setattr(model_lib, "VAE", VAEWithWrongLayer)  # what build_vae builds
    bad = _errors(config)
    assert max(good.values()) < gradcheck.DEFAULT_TOLERANCE
    # Everything upstream of the broken layer gets a wrong gradient: all decoder
    # weights and, through z, the encoder's too (which also sees the right KL term).
    assert set(bad) == set(good)
    wrong = {n for n, e in bad.items() if e > 0.01}
    assert {n for n in good if n.startswith("decoder/")} <= wrong
    assert any(n.startswith("encoder/") for n in wrong)


def test_points_split_over_many_calls_give_the_same_figures(monkeypatch):
    _, config = next(gradcheck.tiny_configs())
    whole = _errors(config)
    # Two or three entries a call instead of whole variables.
    monkeypatch.setattr(gradcheck, "_POINTS_VALUES", 3000)
    assert _errors(config) == whole
