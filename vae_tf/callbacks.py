"""Training callbacks: image grids, the NaN guard, collapse monitoring, the run
report, and the factory that assembles them with Keras' own checkpointing, resume,
CSV and TensorBoard logging."""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from vae_tf import images as image_utils
from vae_tf import report
from vae_tf import latent
from vae_tf.config import Config

# Active units (Burda et al. 2016) are counted on this many test images ...
ACTIVE_UNITS_IMAGES = 1000
# ... as the latent dimensions whose posterior mean varies across them by more than this.
ACTIVE_UNITS_THRESHOLD = 0.01
# Latent values swept by the traversal grid, in prior standard deviations.
TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 9, dtype=np.float32)


class ImageGridCallback(keras.callbacks.Callback):
    """Saves, after every epoch, into `<run>/images/`:

    recon_epoch_NNNN.png      test images beside their deterministic reconstructions
    samples_epoch_NNNN.png    decoder means at a fixed set of latent codes z ~ N(0, I)
    traversal_epoch_NNNN.png  one row per latent dimension: that dimension swept over
                              TRAVERSAL_VALUES at the first test image's mean code

    and, when `tensorboard_dir` is given, the same grids as TensorBoard images there.
    """

    def __init__(self, image_dir: str, test_images: np.ndarray, latent_codes: np.ndarray,
                 grid_size: int, tensorboard_dir: str = None):
        super().__init__()
        self.image_dir = image_dir
        self.test_images = test_images
        self.latent_codes = latent_codes
        self.grid_size = grid_size
        self.tensorboard_dir = tensorboard_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        tag = f"epoch_{epoch + 1:04d}"
        # A direct call, not predict_on_batch: under MultiWorkerMirroredStrategy
        # predict gathers every worker's batch into one.
        recon = self.model(self.test_images, training=False)
        pairs = image_utils.interleave(self.test_images, np.asarray(recon))
        samples = np.asarray(self.model.decode(self.latent_codes))
        grids = {
            "recon": image_utils.make_grid(pairs, cols=2 * _pairs_per_row(self.grid_size)),
            "samples": image_utils.make_grid(samples, cols=self.grid_size),
            "traversal": image_utils.make_grid(self._traversal(), cols=len(TRAVERSAL_VALUES)),
        }
        for kind, grid in grids.items():
            image_utils.save_png(os.path.join(self.image_dir, f"{kind}_{tag}.png"), grid)
        if self.tensorboard_dir:
            self._write_tensorboard(grids, epoch)

    def _traversal(self) -> np.ndarray:
        mean, _ = self.model.encode(self.test_images[:1])
        codes = np.repeat(np.asarray(mean), self.model.latent_dim * len(TRAVERSAL_VALUES), axis=0)
        for dim in range(self.model.latent_dim):
            rows = slice(dim * len(TRAVERSAL_VALUES), (dim + 1) * len(TRAVERSAL_VALUES))
            codes[rows, dim] = TRAVERSAL_VALUES
        return np.asarray(self.model.decode(codes))

    def _write_tensorboard(self, grids: dict, epoch: int):
        # Keras' TensorBoard callback counts epochs from 0; the images use the same steps.
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.tensorboard_dir, "images"))
        with self._writer.as_default():
            for kind, grid in grids.items():
                tf.summary.image(kind, grid[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CollapseMonitor(keras.callbacks.Callback):
    """Adds to each epoch's logs, for CSVLogger, TensorBoard and the report:

    step          optimizer steps taken so far (the x axis of the report's curves)
    active_units  latent dimensions whose posterior mean varies across a fixed set
                  of test images by more than ACTIVE_UNITS_THRESHOLD (Burda et al.
                  2016); posterior collapse shows as this count falling
    """

    def __init__(self, test_images: np.ndarray, batch_size: int):
        super().__init__()
        self.test_images = test_images
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        means = [np.asarray(self.model.encode(self.test_images[i:i + self.batch_size])[0])
                 for i in range(0, len(self.test_images), self.batch_size)]
        logs["active_units"] = active_units(np.concatenate(means))
        logs["step"] = int(self.model.optimizer.iterations.numpy())


def active_units(posterior_means: np.ndarray) -> int:
    """How many columns of [N, latent] posterior means have a variance over N above
    ACTIVE_UNITS_THRESHOLD."""
    return int(np.sum(np.var(posterior_means.astype(np.float64), axis=0) > ACTIVE_UNITS_THRESHOLD))


class ReportCallback(keras.callbacks.Callback):
    """Rewrites `<run>/report.html` after every epoch, once the other callbacks have
    written that epoch's metrics and grids."""

    def __init__(self, run_dir: str):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch, logs=None):
        report.write_report(self.run_dir)


class SamplesGifCallback(keras.callbacks.Callback):
    """When training ends, animates the epochs' samples grids into images/samples.gif
    (the grids show the same codes each epoch, so the GIF shows the decoder learn)."""

    def __init__(self, image_dir: str):
        super().__init__()
        self.image_dir = image_dir

    def on_train_end(self, logs=None):
        frames = latent.epoch_sample_grids(self.image_dir)
        if frames:
            latent.save_gif(os.path.join(self.image_dir, latent.SAMPLES_GIF), frames)


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


def num_monitor_test_images(grid_size: int) -> int:
    """How many fixed test images `make_callbacks` wants: the grid's and active units'."""
    return max(num_grid_test_images(grid_size), ACTIVE_UNITS_IMAGES)


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

    `test_images` is a fixed set of test images (num_monitor_test_images of them):
    the first num_grid_test_images appear in the reconstruction grid, and all of
    them count the active units.

    BackupAndRestore comes first so that a crash after an epoch's files are written
    resumes after that epoch; CSVLogger appends so resumed runs keep earlier rows.
    CollapseMonitor comes before the loggers, which write the logs it adds to, and
    the report comes after every callback that writes what it shows.
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
        CollapseMonitor(test_images, config.batch_size),
        keras.callbacks.CSVLogger(os.path.join(write_dir, "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard"), write_graph=False),
        ImageGridCallback(os.path.join(write_dir, "images"),
                          test_images[:num_grid_test_images(config.grid_size)],
                          latent_codes, config.grid_size,
                          tensorboard_dir=os.path.join(write_dir, "tensorboard")),
        nan_guard,
    ]
    if write_dir == run_dir:
        # The report and the GIF are made from the run directory's own files
        # (config.json, metrics.csv, grids), which only the chief writes.
        callbacks[-1:-1] = [ReportCallback(run_dir),
                            SamplesGifCallback(os.path.join(run_dir, "images"))]
    return callbacks, nan_guard
