"""--precision: 16-bit compute, float32 weights and ELBO, and loss scaling for float16."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf.models.build import build_vae
from vae_tf.models.vae import VAE

SHAPE = (16, 16, 1)


def _fixed_noise(self, shape):
    return tf.broadcast_to(tf.sin(1.0 + tf.range(shape[-1], dtype=tf.float32)), shape)


def _sgd_update(model, images, loss_scale=None):
    optimizer = keras.optimizers.SGD(0.05)
    if loss_scale:
        # A scale that cannot overflow float16 here, so that the step is not skipped
        # (dynamic scaling starts at 2**15 and halves on each overflow).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
    model.compile(optimizer=optimizer)
    before = [w.numpy() for w in model.trainable_weights]
    model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0, shuffle=False)
    return [w.numpy() - b for w, b in zip(model.trainable_weights, before)]


@pytest.mark.parametrize("precision,compute,tolerance", [
    ("mixed_float16", "float16", 0.01), ("mixed_bfloat16", "bfloat16", 0.25)])
def test_mixed_precision_update_matches_float32(monkeypatch, precision, compute, tolerance):
    monkeypatch.setattr(VAE, "noise", _fixed_noise)  # the same z in both models
    keras.utils.set_random_seed(0)
    config = tiny_config(batch_size=8)
    images = tf.constant(np.random.default_rng(0).random((8, *SHAPE), dtype=np.float32))
    reference = build_vae(config, SHAPE)
    mixed = build_vae(config.replace(precision=precision), SHAPE)
    assert keras.mixed_precision.global_policy().name == "float32"  # left as it was
    mixed.set_weights(reference.get_weights())

    conv = mixed.encoder.get_layer("conv0")
    assert conv.compute_dtype == compute and conv.variable_dtype == "float32"
    mean, _ = mixed.encode(images)
    assert mean.dtype == tf.float32  # the ELBO is summed in float32

    # compile wrapped the optimizer for float16 (its gradients underflow without it).
    scaled = isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")

    # The train step multiplies the loss by the scale and the optimizer divides it
    # out again, so the update has the float32 size.
    expected = _sgd_update(reference, images)
    got = _sgd_update(mixed, images, loss_scale=64.0 if scaled else None)
    for e, g in zip(expected, got):
        assert np.all(np.isfinite(g))
        # Relative to the update's norm: 16-bit compute rounds each entry coarsely.
        assert np.linalg.norm(g - e) <= tolerance * np.linalg.norm(e) + 1e-7
