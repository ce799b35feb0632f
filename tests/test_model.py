"""The VAE's objective: its scale (nats per image), its metrics and its step counter."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from vae_tf.datasets import mnist
from vae_tf.models.build import build_vae


def _numpy_neg_elbo(model, image, eps):
    mean, logvar = (t.numpy().astype(np.float64) for t in model.encode(image[None]))
    z = mean + np.exp(0.5 * logvar) * eps
    logits = model.decoder_output(tf.constant(z, tf.float32)).numpy().astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    x = image[None].astype(np.float64)
    rec = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum()
    kl = 0.5 * (np.exp(logvar) + mean ** 2 - 1 - logvar).sum()
    return rec + kl


def test_identical_images_give_the_per_image_value(mnist_dir):
    """A batch of copies of one image must report that image's -ELBO in nats,
    summed over its 784 pixels, not a per-pixel mean."""
    config = tiny_config(dataset="mnist", data_dir=mnist_dir, latent_dim=8)
    data = mnist.load_mnist(config)
    image = next(iter(data.test.take(1)))[0].numpy().astype(np.float32) / 255.0
    model = build_vae(config, data.image_shape)
    eps = np.random.default_rng(0).standard_normal(config.latent_dim).astype(np.float32)
    batch = np.repeat(image[None], 16, axis=0)
    objective, rec, kl_per_dim, _ = model.objective(tf.constant(batch), training=False,
                                                    eps=tf.constant(np.tile(eps, (16, 1))))
    kl = tf.reduce_sum(kl_per_dim, axis=-1)
    expected = _numpy_neg_elbo(model, image, eps)
    assert expected > 300  # an untrained model on a 784-pixel digit: hundreds of nats
    np.testing.assert_allclose(objective.numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose((rec + kl).numpy(), np.full(16, expected), rtol=1e-4)


def test_learned_scale_shapes_and_training_metrics():
    config = tiny_config(recon_loss="gaussian", learn_scale="channel")
    model = build_vae(config, (28, 28, 1))
    log_scale = model.likelihood.log_scale
    assert log_scale.shape == (1,)
    assert log_scale.trainable
    assert any(w is log_scale for w in model.trainable_weights)  # the model trains it
    before = log_scale.numpy().copy()
    images = tf.random.stateless_uniform((32, 28, 28, 1), seed=(1, 2))
    logs = model.train_on_batch(images, return_dict=True)
    assert set(logs) >= {"loss", "reconstruction", "kl", "kl_weight"}
    np.testing.assert_allclose(logs["loss"], logs["reconstruction"] + logs["kl"], rtol=1e-5)
    assert not np.allclose(log_scale.numpy(), before)
    logs = model.test_on_batch(images, return_dict=True)
    assert set(logs) == {"loss", "reconstruction", "kl"}  # the ELBO alone
    np.testing.assert_allclose(logs["loss"], logs["reconstruction"] + logs["kl"], rtol=1e-5)


def test_kl_warmup_is_linear():
    from vae_tf.models.kl import weight_schedule
    schedule = weight_schedule(tiny_config(kl_weight=2.0, kl_warmup_steps=100))
    got = [float(schedule(s)) for s in (0, 25, 100, 500)]
    np.testing.assert_allclose(got, [0.0, 0.5, 2.0, 2.0])


def test_the_model_counts_its_steps_and_the_schedule_reads_them(tmp_path):
    """fit advances the model's own step counter, the KL weight logged is the
    schedule's at the epoch's last step, and checkpoints carry the counter."""
    config = tiny_config(kl_weight=2.0, kl_warmup_steps=10)
    model = build_vae(config, (28, 28, 1))
    assert int(model.training_steps.numpy()) == 0 and not model.training_steps.trainable
    images = tf.random.stateless_uniform((12, 28, 28, 1), seed=(3, 4))
    history = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=2,
                        verbose=0, shuffle=False)
    assert int(model.training_steps.numpy()) == 6
    # Steps 0-2, then 3-5: the weights at steps 2 and 5 of a 10-step warm-up to 2.
    np.testing.assert_allclose(history.history["kl_weight"], [0.4, 1.0], rtol=1e-6)
    assert "val_kl_weight" not in history.history

    # The counter, not the optimizer's: a new optimizer starts at 0, the schedule does not.
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.training_steps.assign(9)
    logs = model.train_on_batch(images[:4], return_dict=True)
    assert logs["kl_weight"] == pytest.approx(1.8)
    _, _, _, kl_weight = model.objective(images[:4], training=False)
    assert float(kl_weight) == pytest.approx(2.0)  # step 10
    model.save_weights(str(tmp_path / "w.weights.h5"))
    restored = build_vae(config, (28, 28, 1))
    restored.load_weights(str(tmp_path / "w.weights.h5"))
    assert int(restored.training_steps.numpy()) == 10


@pytest.mark.parametrize("learn_scale, shared_axes", [
    ("shared", (0, 1, 2, 3)), ("channel", (0, 1, 2)), ("pixel", (0,))])
def test_learned_gaussian_scale_matches_numpy(learn_scale, shared_axes):
    """-log N(x | mu, sigma^2) with the learned sigma, and the gradient that learns it,
    against numpy: d/d(log sigma_i) = 1 - ((x_i - mu_i) / sigma_i)^2 summed over the
    pixels and images that share sigma_i."""
    config = tiny_config(recon_loss="gaussian", learn_scale=learn_scale)
    shape = (16, 16, 3)
    model = build_vae(config, shape)
    rng = np.random.default_rng(0)
    log_scale = model.likelihood.log_scale
    log_scale.assign(np.log(rng.uniform(0.05, 0.5, log_scale.shape)))
    x = rng.random((5, *shape)).astype(np.float32)
    eps = rng.standard_normal((5, config.latent_dim)).astype(np.float32)
    with tf.GradientTape() as tape:
        rec, _ = model.elbo_terms(tf.constant(x), eps=tf.constant(eps))
        total = tf.reduce_sum(rec)
    grad = tape.gradient(total, log_scale).numpy()

    mean, logvar = (t.numpy().astype(np.float64) for t in model.encode(x))
    z = mean + np.exp(0.5 * logvar) * eps
    h = model.decoder_output(tf.constant(z, tf.float32)).numpy().astype(np.float64)
    mu = 1 / (1 + np.exp(-h))
    log_sigma = np.broadcast_to(log_scale.numpy().astype(np.float64), x.shape)
    r2 = ((x - mu) / np.exp(log_sigma)) ** 2
    expected = (0.5 * r2 + log_sigma + 0.5 * np.log(2 * np.pi)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(rec.numpy(), expected, rtol=1e-4)
    expected_grad = (1 - r2).sum(axis=shared_axes).reshape(log_scale.shape)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-3, atol=1e-3)
