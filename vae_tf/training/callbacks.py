"""Training callbacks: image grids, the NaN guard, collapse monitoring, the run
report, and the factory that assembles them with Keras' own checkpointing, resume,
CSV and TensorBoard logging."""

import dataclasses
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from vae_tf.config import Config
from vae_tf.models import optimizer
from vae_tf.run import faults, files, rundir
from vae_tf.training import checkpoints
from vae_tf.views import grids, latent, pictures, report_page


# Active units (Burda et al. 2016) are counted on this many fixed validation images
# (training images where there is no validation split).
ACTIVE_UNITS_IMAGES = 1000
# --sample_prior=fitted fits the sampling prior to the codes of this many training
# images (the first ones, in the split's order): a 64-d covariance is well
# determined by a few thousand codes.
PRIOR_FIT_IMAGES = 10000
# ... encoded in batches of at least this many, whatever the training's batch size
# (the codes are the same): in batches of 16 the CelebA preset's 4,591 took 15 s.
PRIOR_FIT_BATCH_SIZE = 128


def prior_fit_batches(data, config: Config):
    """What FitSamplingPrior encodes: the first PRIOR_FIT_IMAGES training images through
    the test split's pipeline (in order, and binarized once where the run binarizes),
    in batches of at least PRIOR_FIT_BATCH_SIZE; with --prior_fit_mirrored each batch
    followed by its images mirrored left to right, read once."""
    from vae_tf.datasets.pipeline import make_batches

    first = dataclasses.replace(data, test=data.train.take(PRIOR_FIT_IMAGES))
    batches = make_batches(first, config.replace(
        batch_size=max(config.batch_size, PRIOR_FIT_BATCH_SIZE)), training=False)
    if config.prior_fit_mirrored:
        # [N, H, W, C]: axis 2 is the width.
        batches = batches.map(lambda images: tf.concat([images, tf.reverse(images, [2])], 0))
    return batches


# The traversal grid's rows at most: a CelebA hierarchy's 256 took 22 s after every
# epoch to decode, write and log (a PNG 16,898 pixels tall), most of them rows of an
# unused dimension, the same picture repeated.
TRAVERSAL_ROWS = 64


class _ArrayModel:
    """The Keras model seen through numpy, as `vae_tf.views.pictures` takes a model.

    Direct calls, not predict_on_batch: under MultiWorkerMirroredStrategy predict
    gathers every worker's batch into one. Each traced once, on first use: run
    eagerly, a hierarchy's grids took 26 s after every epoch of the CelebA preset,
    about a fifth of the epoch.
    """

    def __init__(self, model):
        self.latent_dim = model.latent_dim
        self._encode = tf.function(model.encode, reduce_retracing=True)
        self._decode = tf.function(model.decode, reduce_retracing=True)
        self._reconstruct = tf.function(lambda images: model(images, training=False),
                                        reduce_retracing=True)
        self._sample = tf.function(model.sample_images)

    def encode(self, images):
        mean, logvar = self._encode(images)
        return np.asarray(mean), np.asarray(logvar)

    def decode(self, z):
        return np.asarray(self._decode(z))

    def reconstruct(self, images):
        return np.asarray(self._reconstruct(images))

    def sample(self, num, seed=0, temperature=1.0):
        return np.asarray(self._sample(num, seed, temperature))


class FitSamplingPrior(keras.callbacks.Callback):
    """After each epoch, fits the model's sampling prior (--sample_prior=fitted) to
    the posterior codes of a fixed set of training images: latent.fit_gaussian, or
    for a hierarchy (every group's posterior) latent.fit_low_rank_mixture.
    Before the grids, so that the samples grid shows it, and before the checkpoint,
    which carries it."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.codes = None

    def on_train_begin(self, logs=None):
        # Traced once: a hierarchy's codes take its whole top-down path.
        self.codes = tf.function(self.model.prior_fit_codes)

    def on_epoch_end(self, epoch, logs=None):
        codes = [self.codes(images) for images in self.batches]
        means = np.concatenate([np.asarray(m) for m, _ in codes])
        if hasattr(self.model, "prior_factor"):  # a hierarchy's: of low rank
            m = self.model
            mean, *mixture = latent.fit_low_rank_mixture(
                means, m.prior_factor.shape[1], m.prior_weights.shape[0])
            for weight, value in zip([m.prior_factor, m.prior_weights, m.prior_component_means,
                                      m.prior_component_scale_trils], mixture):
                weight.assign(value.astype(np.float32))
        else:
            logvars = np.concatenate([np.asarray(v) for _, v in codes])
            mean, scale_tril = latent.fit_gaussian(means, logvars)
            self.model.prior_scale_tril.assign(scale_tril.astype(np.float32))
        self.model.prior_mean.assign(mean.astype(np.float32))


class ImageGridCallback(keras.callbacks.Callback):
    """Saves after every epoch these grids (see rundir.RunDir.grid):

    recon      validation images beside their deterministic reconstructions
    samples    decoder means of a fixed set of samples (the same seed) from the
               sampling prior (N(0, T^2 I), the fitted Gaussian, or a hierarchy's
               priors), T the run's --temperature
    traversal  one row per latent dimension: that dimension swept over
               latent.traversal_values() at the first validation image's mean code;
               of a code longer than TRAVERSAL_ROWS (a hierarchy's top group: 256),
               the TRAVERSAL_ROWS dimensions whose means vary most across the
               grid's validation images

    and, when `tensorboard_dir` is given, the same grids as TensorBoard images there.
    """

    def __init__(self, run_dir: rundir.RunDir, monitor_images: np.ndarray, seed: int,
                 grid_size: int, temperature: float = 1.0, tensorboard_dir: str = None):
        super().__init__()
        self.run_dir = run_dir
        self.monitor_images = monitor_images
        self.seed, self.temperature = seed, temperature
        self.grid_size = grid_size
        self.tensorboard_dir = tensorboard_dir
        self._writer = None
        self._arrays = None

    def set_model(self, model):
        super().set_model(model)
        self._arrays = _ArrayModel(model)

    def on_epoch_end(self, epoch, logs=None):
        model = self._arrays
        pairs = pictures.reconstruction_pairs(model, self.monitor_images)
        # The same seed every epoch, so the grids show the decoder learn.
        samples = pictures.samples(model, self.grid_size ** 2, self.temperature, self.seed)
        dims = latent.most_varied_dims(model.encode(self.monitor_images)[0], TRAVERSAL_ROWS)
        traversal = pictures.traversal(model, self.monitor_images[0], dims=dims)
        pictures_by_kind = {
            "recon": grids.make_grid(pairs, cols=2 * _pairs_per_row(self.grid_size)),
            "samples": grids.make_grid(samples, cols=self.grid_size),
            "traversal": grids.make_grid(traversal, cols=latent.TRAVERSAL_STEPS),
        }
        for kind, grid in pictures_by_kind.items():
            grids.save_png(self.run_dir.grid(kind, epoch + 1), grid)
        if self.tensorboard_dir:
            self._write_tensorboard(pictures_by_kind, epoch)

    def _write_tensorboard(self, pictures_by_kind: dict, epoch: int):
        # Keras' TensorBoard callback counts epochs from 0; the images use the same steps.
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.tensorboard_dir, "images"))
        with self._writer.as_default():
            for kind, grid in pictures_by_kind.items():
                tf.summary.image(kind, grid[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CollapseMonitor(keras.callbacks.Callback):
    """Adds to each epoch's logs, for metrics.csv, TensorBoard and the report:

    step          training steps taken so far (the model's own counter, which the KL
                  schedule reads; the x axis of the report's curves)
    active_units  latent dimensions whose posterior mean varies across a fixed set
                  of validation images by more than latent.ACTIVE_UNITS_THRESHOLD times
                  their posterior variance (latent.active_units, after Burda et al.
                  2016); posterior collapse shows as this count falling. For a
                  hierarchy, the total over its groups
    active_units_group{g}
                  (a hierarchy) the count of group g (0 is the top), its posterior
                  measured in its prior's units (the groups above at their posterior
                  means)
    """

    def __init__(self, monitor_images: np.ndarray, batch_size: int):
        super().__init__()
        self.monitor_images = monitor_images
        self.batch_size = batch_size
        self.posteriors = None

    def set_model(self, model):
        super().set_model(model)
        # Traced once (a hierarchy's posteriors take its whole top-down path): eagerly
        # the CelebA preset's 1,000 images took about 20 s after every epoch.
        self.posteriors = tf.function(model.group_posteriors, reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        batches = [self.posteriors(self.monitor_images[i:i + self.batch_size])
                   for i in range(0, len(self.monitor_images), self.batch_size)]
        counts = []
        for group in zip(*batches):  # one group's (mean, logvar) of every batch
            means, logvars = (np.concatenate([np.asarray(pair[k]) for pair in group])
                              for k in (0, 1))
            counts.append(latent.active_units(means, logvars))
        logs["active_units"] = sum(counts)
        # Per group wherever the KL is logged per group: a hierarchy's top group alone
        # can be collapsed while the groups below it carry the information.
        if self.model.kl_part_names():
            logs.update({f"active_units_group{g}": n for g, n in enumerate(counts)})
        logs["step"] = int(self.model.training_steps.numpy())


class ReportCallback(keras.callbacks.Callback):
    """Rewrites `<run>/report.html` after every epoch, once the other callbacks have
    written that epoch's metrics and grids."""

    def __init__(self, run_dir: rundir.RunDir):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch, logs=None):
        report_page.write_report(self.run_dir.path)


class SamplesGifCallback(keras.callbacks.Callback):
    """When training ends, animates the epochs' samples grids into images/samples.gif
    (the grids show the same codes each epoch, so the GIF shows the decoder learn)."""

    def __init__(self, run_dir: rundir.RunDir):
        super().__init__()
        self.run_dir = run_dir

    def on_train_end(self, logs=None):
        frames = self.run_dir.grids("samples")
        if frames:
            latent.save_gif(self.run_dir.samples_gif, frames)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN that also remembers where the loss became non-finite,
    so that `train.run` can fail with a clear message instead of exporting garbage."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.failed_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        faults.point("batch")
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.failed_at is None:
            self.failed_at = (self.epoch + 1, batch + 1)


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) during `fit` stops training at the next safe point: the end of
    a step, or the start of an epoch, never inside a file write, so that every epoch
    it leaves is whole and the run resumes after the last one. A second Ctrl-C stops
    at once. `requested` says whether it came; call `restore()` after `fit`."""

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = None

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame):
        self.requested = True
        self.restore()

    def _stop_if_requested(self, *args, **kwargs):
        if self.requested:
            raise StopTraining()

    on_epoch_begin = on_train_batch_end = on_test_batch_end = _stop_if_requested

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class StopTraining(Exception):
    """Raised out of `fit` by StopOnInterrupt."""


def _pairs_per_row(grid_size: int) -> int:
    return max(1, grid_size // 2)


def num_grid_images(grid_size: int) -> int:
    """How many validation images the reconstruction grid shows (grid_size rows of pairs)."""
    return grid_size * _pairs_per_row(grid_size)


def num_monitor_images(grid_size: int) -> int:
    """How many fixed validation images `make_callbacks` wants: the grid's and active units'."""
    return max(num_grid_images(grid_size), ACTIVE_UNITS_IMAGES)


class MetricsLogger(keras.callbacks.Callback):
    """Appends one row per epoch to metrics.csv: `epoch` (counted from 1, as the
    grids and checkpoints are) and every logged value, the columns in the order of
    the file's header (the first epoch's sorted keys).

    Keras' CSVLogger writes through a buffered file that a kill can leave half
    written and a full disk fails at an arbitrary flush; here each row is one
    flushed append, and training drops any row of an epoch it trains again
    (`rundir.RunDir.keep_metrics_before`) before it starts.
    """

    def __init__(self, run: rundir.RunDir):
        super().__init__()
        self.run = run
        self.header = None

    def on_train_begin(self, logs=None):
        self.header = self.run.metrics_header()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.header is None:
            self.header = ["epoch"] + sorted(logs)
            files.append_line(self.run.metrics_path, ",".join(self.header) + "\n")
        values = {"epoch": epoch + 1, **logs}
        row = ",".join(_csv_value(values.get(name)) for name in self.header)
        files.append_line(self.run.metrics_path, row + "\n")


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds`, the epoch's wall-clock time (training, validation loss, and
    the callbacks before this one's end), so that runs can be compared at equal time."""

    def __init__(self):
        super().__init__()
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class EpochSummary(keras.callbacks.Callback):
    """Prints one line per epoch (Keras' own progress line shows every logged value
    with four decimals, step counts included):

    Epoch 3/10 - 12 s (95 ms/step) - loss 250.12 nats (reconstruction 220.10 + KL 30.02,
    KL weight 1) - validation loss 251.30 (220.88 + 30.42) - active units 12/16

    and for a hierarchy each group after the totals (`_groups_summary`).
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in (logs or {}).items()}
        seconds = logs.get("epoch_seconds", 0.0)
        steps = self.params.get("steps") or 1
        parts = [f"Epoch {epoch + 1}/{self.params.get('epochs')} - {seconds:.0f} s "
                 f"({1000 * seconds / steps:.0f} ms/step)"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.2f} nats (reconstruction "
                         f"{logs['reconstruction']:.2f} + KL {logs['kl']:.2f}, "
                         f"KL weight {logs.get('kl_weight', 1.0):.3g})")
        if "val_loss" in logs:
            parts.append(f"validation loss {logs['val_loss']:.2f} "
                         f"({logs['val_reconstruction']:.2f} + {logs['val_kl']:.2f})")
        if "val_bits_per_dim" in logs:
            parts.append(f"validation {logs['val_bits_per_dim']:.3f} bits/dim")
        if logs.get("skipped_updates"):
            parts.append(f"{logs['skipped_updates']:.0f} updates skipped")
        hierarchy = getattr(self.model, "hierarchy", None)
        units = self.model.latent_dim if hierarchy is None else sum(hierarchy.group_sizes())
        if "active_units" in logs:
            parts.append(f"active units {logs['active_units']:.0f}/{units}")
        if hierarchy is not None and "active_units_group0" in logs:
            parts.append(_groups_summary(logs, hierarchy.group_sides, hierarchy.group_sizes()))
        print(" - ".join(parts), flush=True)


def _groups_summary(logs: dict, sides: list, sizes: list) -> str:
    """Each latent group's side, KL (the validation split's where it was logged) and
    active units of its units, top first:

    groups (validation KL nats, active units): 1x1 0.4/0 of 16 UNUSED | 4x4 21.3/40 of 256

    UNUSED marks a group with no active unit: its code does not vary with the image,
    whatever nats its KL shows.
    """
    split = "val_" if "val_kl_group0" in logs else ""
    cells = []
    for g, (side, size) in enumerate(zip(sides, sizes)):
        active = logs[f"active_units_group{g}"]
        cells.append(f"{side}x{side} {logs[f'{split}kl_group{g}']:.1f}/{active:.0f} of {size}"
                     + (" UNUSED" if active == 0 else ""))
    name = "validation KL" if split else "KL"
    return f"groups ({name} nats, active units): " + " | ".join(cells)


def _csv_value(value) -> str:
    if value is None:
        return "NA"
    value = float(np.asarray(value).reshape(-1)[0])
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def make_callbacks(config: Config, run_dir: rundir.RunDir, monitor_images: np.ndarray,
                   write_dir: rundir.RunDir = None, restored: bool = False,
                   prior_fit_batches=None):
    """The callbacks of a training run, all writing under `write_dir` (the run
    directory, or a temporary folder for non-chief workers of a multi-worker run).

    `monitor_images` is a fixed set of validation images (training images where there
    is no validation split; num_monitor_images of them): the first
    num_grid_images appear in the reconstruction grid, and all of them count
    the active units. The test split is not seen during training.

    At each epoch's end CollapseMonitor adds to the logs first, the metrics row,
    TensorBoard, the grids and the report follow, and the checkpoint comes last: a
    run resumes after the newest checkpoint, so every file of that epoch is then
    already written. With --ema_momentum the moving averages of the weights are
    swapped in first, so that all of them see the averages; `restored` says the model
    was loaded from a checkpoint (which holds them). Returns (callbacks, the
    StopOnNaN among them). With --sample_prior=fitted, `prior_fit_batches` (batches
    of training images) are what the sampling prior is fitted to.
    """
    nan_guard = StopOnNaN()
    write_dir = write_dir or run_dir
    callbacks = [optimizer.EMAWeights(restored)] if config.ema_momentum > 0 else []
    if config.sample_prior == "fitted":
        callbacks.append(FitSamplingPrior(prior_fit_batches))
    callbacks += [
        CollapseMonitor(monitor_images, config.batch_size),
        EpochTimer(),
        MetricsLogger(write_dir),
        EpochSummary(),
        keras.callbacks.TensorBoard(write_dir.tensorboard_dir, write_graph=False),
        ImageGridCallback(write_dir, monitor_images[:num_grid_images(config.grid_size)],
                          config.seed, config.grid_size, config.temperature,
                          tensorboard_dir=write_dir.tensorboard_dir),
    ]
    if write_dir.path == run_dir.path:
        # The report and the GIF are made from the run directory's own files
        # (config.json, metrics.csv, grids), which only the chief writes.
        callbacks += [ReportCallback(run_dir), SamplesGifCallback(run_dir)]
    return callbacks + [checkpoints.EpochCheckpoint(write_dir), nan_guard, StopOnInterrupt()], nan_guard
