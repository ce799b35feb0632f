"""Training callbacks: image grids, the NaN guard, and the factory that assembles
them with Keras' own checkpointing, resume and CSV logging."""

import math
import os

import keras
import numpy as np

from vae_tf import images as image_utils
from vae_tf.config import Config


class ImageGridCallback(keras.callbacks.Callback):
    """Saves, after every epoch, into `<run>/images/`:

    recon_epoch_NNNN.png    test images beside their deterministic reconstructions
    samples_epoch_NNNN.png  decoder means at a fixed set of latent codes z ~ N(0, I)
    """

    def __init__(self, image_dir: str, test_images: np.ndarray, latent_codes: np.ndarray,
                 grid_size: int):
        super().__init__()
        self.image_dir = image_dir
        self.test_images = test_images
        self.latent_codes = latent_codes
        self.grid_size = grid_size

    def on_epoch_end(self, epoch, logs=None):
        tag = f"epoch_{epoch + 1:04d}"
        # A direct call, not predict_on_batch: under MultiWorkerMirroredStrategy
        # predict gathers every worker's batch into one.
        recon = self.model(self.test_images, training=False)
        pairs = image_utils.interleave(self.test_images, np.asarray(recon))
        image_utils.save_png(os.path.join(self.image_dir, f"recon_{tag}.png"),
                             image_utils.make_grid(pairs, cols=2 * _pairs_per_row(self.grid_size)))
        samples = np.asarray(self.model.decode(self.latent_codes))
        image_utils.save_png(os.path.join(self.image_dir, f"samples_{tag}.png"),
                             image_utils.make_grid(samples, cols=self.grid_size))


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened,
    so that `train.run` can fail with a clear message instead of exporting garbage."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.failed_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failed_at = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


def _pairs_per_row(grid_size: int) -> int:
    return max(1, grid_size // 2)


def num_grid_test_images(grid_size: int) -> int:
    """How many test images the reconstruction grid shows (grid_size rows of pairs)."""
    return grid_size * _pairs_per_row(grid_size)


class RestoreOnly(keras.callbacks.BackupAndRestore):
    """Resumes from another process's backup without ever writing or deleting it:
    non-chief workers restore the chief's backup so that all resume at one epoch."""

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def make_callbacks(config: Config, run_dir: str, test_images: np.ndarray,
                   write_dir: str = None):
    """The callbacks of a training run, all writing under `run_dir`.

    BackupAndRestore comes first so that a crash after an epoch's files are written
    resumes after that epoch; CSVLogger appends so resumed runs keep earlier rows.
    Non-chief workers of a multi-worker run pass a temporary `write_dir` for their
    copies of the files and resume from the chief's backup in `run_dir`.
    """
    rng = np.random.default_rng(config.seed)
    latent_codes = rng.standard_normal((config.grid_size ** 2, config.latent_dim)).astype(np.float32)
    nan_guard = NanGuard()
    write_dir = write_dir or run_dir
    backup = (keras.callbacks.BackupAndRestore if write_dir == run_dir else RestoreOnly)
    callbacks = [
        backup(os.path.join(run_dir, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(write_dir, "checkpoints", "epoch_{epoch:04d}.weights.h5"),
            save_weights_only=True),
        keras.callbacks.CSVLogger(os.path.join(write_dir, "metrics.csv"), append=True),
        ImageGridCallback(os.path.join(write_dir, "images"), test_images, latent_codes,
                          config.grid_size),
        nan_guard,
    ]
    return callbacks, nan_guard
