"""Each epoch's weights, written whole or not at all, and resuming from the newest
one that loads.

A checkpoint is Keras' `.weights.h5` file of the whole model: the networks'
weights, the likelihood's scale, the model's step counter and the optimizer's state
(Adam's moments and iteration count), so a run resumed from it continues where it
stopped. `load_vae` gives a finished run's Keras model from Python.
"""

import io
import math
from typing import Optional

import keras
import tensorflow as tf
from absl import logging

from vae_tf.errors import UserError
from vae_tf.models.build import build_vae
from vae_tf.models.vae import VAE
from vae_tf.run import faults, files, rundir


def weights_bytes(model) -> bytes:
    """The model's `.weights.h5` file, made in memory.

    Keras' own `save_weights` writes through HDF5 straight into the file; on a full
    disk HDF5 was seen to crash the process (a segmentation fault) instead of
    raising. Made in memory, the file reaches the disk through `files.write_bytes`,
    where a full disk is an ordinary error and a kill leaves the old file whole.
    """
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                           visited_saveables=set())
    store.close()
    return buffer.getvalue()


def save(model, path: str) -> None:
    """Writes the model's weights file to `path` atomically."""
    try:
        data = weights_bytes(model)
    except (ImportError, AttributeError, TypeError):  # a Keras whose private saving moved
        with files.atomic_path(path) as tmp:
            model.save_weights(tmp)
        return
    files.write_bytes(path, data)


def restore_latest(model, run: rundir.RunDir) -> int:
    """Loads the newest checkpoint of `run` that loads into `model`; returns its epoch
    (0 when there is none). A damaged checkpoint (cut short by a kill, say) is
    skipped for the one before it."""
    checkpoints = run.checkpoints()
    reasons = []
    for epoch, path in checkpoints:
        try:
            model.load_weights(path)
        except Exception as e:  # noqa: BLE001  h5py and Keras raise many types here
            reasons.append(_load_error(e))
            logging.warning("Checkpoint %s does not load (%s); trying the one before.",
                            path, reasons[-1])
            continue
        return epoch  # train.run says so
    if checkpoints:
        raise UserError(f"No checkpoint in {run.join(rundir.CHECKPOINTS)} loads (the newest: "
                        f"{reasons[0]}): they are damaged, or were written by a model of "
                        "other shapes (an older vae_tf); delete the run directory to train "
                        "again, or give another --run_name.")
    return 0


def _load_error(e: Exception) -> str:
    """The line of a failed load that says why: Keras puts a count of the objects it
    could not load first and the cause (a variable's shape, say) after it."""
    lines = [line for line in str(e).splitlines()
             if line.strip() and "objects could not be loaded" not in line]
    line = (lines or [""])[0]
    return f"{type(e).__name__}: {line if len(line) <= 200 else line[:200] + '...'}"


def load_vae(run_dir: str, epoch: Optional[int] = None) -> VAE:
    """The Keras model of a trained run, with the weights of its last checkpoint (or
    of epoch `epoch`), for use from Python: `encode`, `decode`, `log_likelihood`,
    calling it on images, or training it further with `fit`.

    The image shape is read from the run's SavedModel, so the run must be finished.
    """
    run = rundir.open_existing(run_dir)
    config = run.read_config()
    if not run.is_finished():
        raise UserError(f"{run_dir} is not finished (no complete {rundir.SAVED_MODEL}/).")
    encode = tf.saved_model.load(run.saved_model_dir).signatures["encode"]
    image_shape = tuple(encode.structured_input_signature[1]["images"].shape[1:])
    rows = run.read_metrics()
    # The cyclical KL schedule needs the run's length: steps per epoch times epochs.
    total_steps = int(rows[-1]["step"] / rows[-1]["epoch"] * config.epochs) if rows else 1
    model = build_vae(config, image_shape, total_steps=total_steps)
    checkpoints = dict(run.checkpoints())
    epoch = epoch or max(checkpoints, default=None)
    if epoch not in checkpoints:
        raise UserError(f"{run_dir} has no checkpoint of epoch {epoch} "
                        f"(it has {sorted(checkpoints) or 'none'}).")
    try:
        model.load_weights(checkpoints[epoch])
    except Exception as e:  # noqa: BLE001  h5py and Keras raise many types here
        raise UserError(f"{checkpoints[epoch]} does not load ({_load_error(e)}): it is "
                        "damaged, or was written by a model of other weights (an older "
                        "vae_tf); its run's export still serves.") from None
    return model


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes `run.checkpoint(epoch)` after every epoch whose loss is finite (the
    weights after a non-finite loss are no state to resume from)."""

    def __init__(self, run: rundir.RunDir):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return
        faults.point("checkpoint")
        save(self.model, self.run.checkpoint(epoch + 1))
