"""The Python API as docs/export.md shows it: train from a Config, load the Keras model,
use the SavedModel."""

import numpy as np
import tensorflow as tf

from vae_tf.config import Config
from vae_tf.training.checkpoints import load_vae
from vae_tf.train import run
from vae_tf.views.trained import TrainedRun


def test_train_load_and_use_a_run_from_python(tmp_path):
    config = Config(dataset="synthetic", epochs=2, steps_per_epoch=20, batch_size=32,
                    latent_dim=4, conv_channels=(8, 16), grid_size=4,
                    output_dir=str(tmp_path), precision="float32")
    result = run(config)
    assert result["val_loss"] > 0 and not result["resumed"]

    vae = load_vae(result["run_dir"])  # a keras.Model with the last epoch's weights
    trained = TrainedRun(result["run_dir"])  # the SavedModel, numpy in and out
    images = trained.test_images(8)
    mean, logvar = vae.encode(images)
    assert mean.shape == (8, 4) and logvar.shape == (8, 4)
    np.testing.assert_allclose(mean.numpy(), trained.encode(images)[0], atol=1e-5)
    np.testing.assert_allclose(vae(images).numpy(), trained.reconstruct(images), atol=1e-5)
    samples = vae.decode(tf.random.normal((16, vae.latent_dim), seed=1))
    assert samples.shape == (16, 28, 28, 1)
    assert 0.0 <= float(tf.reduce_min(samples)) and float(tf.reduce_max(samples)) <= 1.0
    # Per-image log-likelihood in nats, the same through Keras and the export.
    np.testing.assert_allclose(vae.log_likelihood(images, mean).numpy(),
                               trained.log_likelihood(images, mean.numpy()), rtol=1e-5)
    first = load_vae(result["run_dir"], epoch=1)
    assert not np.allclose(first.encode(images)[0].numpy(), mean.numpy())
