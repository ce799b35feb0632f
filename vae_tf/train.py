"""Train a VAE.

    python -m vae_tf.train --flagfile=flags/mnist.cfg --data_dir=../shared/data/mnist

Everything the run writes goes under <output_dir>/<run_name>/: config.json,
metrics.csv, report.html, images/, tensorboard/, checkpoints/, backup/ (while
unfinished) and saved_model/.
Running the same command again after a crash resumes the unfinished run.
"""

import datetime
import os
import shutil
import sys

from absl import app, logging

from vae_tf import callbacks as callbacks_lib
from vae_tf import datasets, export
from vae_tf.config import Config
from vae_tf.datasets.pipeline import make_batches
from vae_tf.errors import UserError
from vae_tf.flags import config_from_flags, define_flags

SAVED_MODEL = "saved_model"


class TrainingFailed(UserError):
    """Training stopped on a non-finite loss."""


def is_finished(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, SAVED_MODEL, "saved_model.pb"))


def resolve_run_dir(config: Config):
    """Chooses the run directory: returns (config with run_name set, run_dir, resuming).

    An explicit --run_name resumes that run if it is unfinished and has the same
    settings. Without one, the newest unfinished run with the same settings is
    resumed (so re-running a crashed command continues it), else a new name is made.
    """
    try:
        os.makedirs(config.output_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create --output_dir={config.output_dir}: {e.strerror}.") from None
    if not os.access(config.output_dir, os.W_OK):
        raise UserError(f"--output_dir={config.output_dir} is not writable.")

    if config.run_name:
        run_dir = os.path.join(config.output_dir, config.run_name)
        previous = _previous_config(run_dir)
        if previous is None:
            if os.path.isdir(run_dir) and os.listdir(run_dir):
                raise UserError(f"{run_dir} exists and holds no vae_tf run (no config.json); "
                                "choose another --run_name.")
            return config, run_dir, False
        if is_finished(run_dir):
            raise UserError(f"Run {run_dir} is already finished; choose another --run_name "
                            "to train again (nothing was changed).")
        differences = config.differences(previous)
        if differences:
            raise UserError(f"Run {run_dir} was started with other settings (differing: "
                            f"{', '.join(differences)}); choose another --run_name.")
        return config, run_dir, True

    for run_dir in _runs_newest_first(config.output_dir):
        previous = _previous_config(run_dir)
        if previous and not is_finished(run_dir) and not config.differences(previous):
            return config.replace(run_name=previous.run_name), run_dir, True
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name, n = f"{config.dataset}_{stamp}", 1
    while os.path.exists(os.path.join(config.output_dir, name)):
        n += 1
        name = f"{config.dataset}_{stamp}-{n}"
    return config.replace(run_name=name), os.path.join(config.output_dir, name), False


def _previous_config(run_dir: str):
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return None
    try:
        return Config.from_json_file(path)
    except (ValueError, TypeError) as e:
        raise UserError(f"{path} is not a readable vae_tf config ({e}); "
                        "choose another --run_name.") from None


def _runs_newest_first(output_dir: str):
    runs = [os.path.join(output_dir, d) for d in os.listdir(output_dir)]
    runs = [d for d in runs if os.path.isfile(os.path.join(d, "config.json"))]
    return sorted(runs, key=os.path.getmtime, reverse=True)


def run(config: Config, dataset_override: datasets.ImageData = None) -> dict:
    """Trains, writes the run directory and exports the SavedModel.

    Returns {"run_dir": ..., "resumed": bool, plus the last epoch's metrics}.
    Raises UserError for problems a user can fix (data, paths, a NaN loss).
    """
    from vae_tf import distribute  # imports TensorFlow

    # Before any other TensorFlow op: MultiWorkerMirroredStrategy must set up
    # collective ops first.
    strategy = distribute.make_strategy(config.strategy)
    if distribute.is_chief(strategy):
        config, run_dir, resuming = resolve_run_dir(config)
    else:  # the chief creates and checks the run directory; other workers only read it
        run_dir, resuming = os.path.join(config.output_dir, config.run_name), False
        if is_finished(run_dir):
            raise UserError(f"Run {run_dir} is already finished; choose another --run_name.")
    write_dir = distribute.worker_write_dir(strategy, run_dir)
    try:
        return _train(config, dataset_override, strategy, run_dir, write_dir, resuming)
    finally:
        if write_dir != run_dir:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(config, dataset_override, strategy, run_dir, write_dir, resuming):
    data = dataset_override or datasets.load(config)
    logging.info("Data: %s; %d train / %d test images of shape %s.", data.source,
                 data.num_train, data.num_test, data.image_shape)
    if config.recon_loss == "bernoulli" and config.binarize == "none":
        logging.info("Bernoulli likelihood on non-binary pixels: the loss is a "
                     "cross-entropy, not a normalized log-likelihood.")

    import keras  # imported here so that flag errors are reported without TF start-up
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")  # export's INFO lines bury the run's own log

    from vae_tf.model import build_vae

    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = config.steps_per_epoch or data.num_train // config.batch_size
    with strategy.scope():
        model = build_vae(config, data.image_shape,
                          total_steps=config.epochs * steps_per_epoch)
    train_ds = make_batches(data, config, training=True)
    test_ds = make_batches(data, config, training=False)
    monitor_n = callbacks_lib.num_monitor_test_images(config.grid_size)
    monitor_images = next(iter(make_batches(data, config.replace(batch_size=monitor_n),
                                            training=False))).numpy()

    os.makedirs(write_dir, exist_ok=True)
    if not resuming and write_dir == run_dir:
        _write_text(os.path.join(run_dir, "config.json"), config.to_json() + "\n")
    logging.info("%s run %s", "Resuming" if resuming else "Starting", run_dir)

    callbacks, nan_guard = callbacks_lib.make_callbacks(config, run_dir, monitor_images,
                                                        write_dir)
    history = model.fit(train_ds, epochs=config.epochs,
                        steps_per_epoch=config.steps_per_epoch or None,
                        validation_data=test_ds, validation_steps=config.eval_steps or None,
                        callbacks=callbacks, verbose=2, shuffle=False)
    if nan_guard.failed_at:
        epoch, step = nan_guard.failed_at
        raise TrainingFailed(
            f"Training stopped: the loss became NaN or infinite at epoch {epoch}, step {step}. "
            f"Lower --learning_rate (now {config.learning_rate}) or raise --recon_scale; "
            f"checkpoints up to the last finished epoch are in {run_dir}/checkpoints.")
    export.export_saved_model(model, os.path.join(write_dir, SAVED_MODEL))
    logging.info("Exported %s", os.path.join(write_dir, SAVED_MODEL))
    final = {name: float(values[-1]) for name, values in history.history.items() if values}
    return {"run_dir": run_dir, "resumed": resuming, **final}


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _fail(error: Exception, code: int):
    print(f"error: {error}", file=sys.stderr)
    sys.exit(code)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_from_flags()
    except ValueError as e:  # Config validation: a bad combination of flags
        _fail(e, code=2)
    try:
        result = run(config)
    except UserError as e:
        _fail(e, code=1)
    print(f"Finished {result['run_dir']}: test loss (negative ELBO) "
          f"{result.get('val_loss', float('nan')):.2f} nats per image.")


def console_main():
    """Entry point of `python -m vae_tf.train` and the `vae-tf-train` script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    console_main()
