"""The training run: a run directory chosen, resumed or made; the dataset and the
model built; `fit` with the callbacks; the test split evaluated once; the export.
`python -m vae_tf.train` calls `run(config)`; so can a script (docs/export.md)."""

import json
import os
import shutil

from absl import logging

from vae_tf.config import Config
from vae_tf.errors import Interrupted, UserError
from vae_tf.run import files, rundir, tfenv


class TrainingFailed(UserError):
    """Training stopped on a non-finite loss."""


def run(config: Config, dataset_override=None) -> dict:
    """Trains, writes the run directory and exports the SavedModel.

    `dataset_override` (a `datasets.ImageData`) replaces the dataset `config` names.
    Returns {"run_dir": ..., "resumed": bool, plus the last epoch's metrics}, with
    "already_finished": True (and nothing trained) when the --run_name named is a
    finished run of the same settings.
    Raises UserError for problems a user can fix (data, paths, a full disk, a NaN
    loss). The run directory stays locked for this process until it returns.
    """
    tfenv.import_tensorflow()  # first, with its environment defaults, quietly
    from vae_tf.models import distribute

    # Before any other TensorFlow op: MultiWorkerMirroredStrategy must set up
    # collective ops first.
    strategy = distribute.make_strategy(config.strategy)
    lock = None
    if distribute.is_chief(strategy):
        try:
            config, run_dir, resuming, lock = rundir.resolve(config)
        except rundir.RunFinished as finished:
            rows = finished.run.read_metrics()
            final = rows[-1] if rows else {}
            return {"run_dir": finished.run.path, "resumed": False, "already_finished": True,
                    **{k: v for k, v in final.items() if k != "epoch"},
                    **{f"test_{k}": v for k, v in finished.run.read_test_metrics().items()}}
    else:  # the chief creates, locks and checks the run directory; others only read it
        run_dir, resuming = rundir.RunDir(os.path.join(config.output_dir, config.run_name)), False
        if run_dir.is_finished():
            raise UserError(f"Run {run_dir.path} is already finished; choose another --run_name.")
    write_dir = rundir.RunDir(distribute.worker_write_dir(strategy, run_dir.path))
    try:
        return _train(config, dataset_override, strategy, run_dir, write_dir, resuming)
    except UserError:
        if lock is not None:
            run_dir.remove_if_unused()
        raise
    except Exception as e:  # noqa: BLE001  a full disk surfaces from TensorFlow as well
        disk_error = files.disk_error(e)
        if disk_error is None:
            raise
        raise disk_error from None
    finally:
        if write_dir.path != run_dir.path:
            shutil.rmtree(write_dir.path, ignore_errors=True)
        if lock is not None:
            lock.release()


def _train(config, dataset_override, strategy, run_dir, write_dir, resuming):
    from vae_tf import datasets
    from vae_tf.datasets.pipeline import make_batches
    from vae_tf.models import likelihoods
    from vae_tf.training import callbacks as callbacks_lib
    from vae_tf.training import checkpoints, export

    data = datasets.with_validation(dataset_override, config) if dataset_override \
        else datasets.load(config)
    validation = f"{data.num_validation} validation" if data.validation is not None \
        else "no validation"
    logging.info("Data: %s; %d train / %s / %d test images of shape %s.", data.source,
                 data.num_train, validation, data.num_test, data.image_shape)
    logging.info("Likelihood: %s.", likelihoods.describe(config)[0])

    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")  # export's INFO lines bury the run's own log

    from vae_tf.models.build import build_vae

    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = config.steps_per_epoch or data.num_train // config.batch_size
    for warning in config.schedule_warnings(config.epochs * steps_per_epoch):
        logging.warning("%s", warning)
    with strategy.scope():
        model = build_vae(config, data.image_shape,
                          total_steps=config.epochs * steps_per_epoch)
        done = checkpoints.restore_latest(model, run_dir)
    logging.info("Precision: %s%s.", tfenv.resolve_precision(config.precision, config.jit_compile),
                 " (--precision=auto on this machine)" if config.precision == "auto" else "")
    train_ds = make_batches(data, config, training=True)
    if done and config.steps_per_epoch:
        # One repeated stream of batches: a resumed run continues it where the
        # checkpoint left it, so it trains on the batches an uninterrupted run would.
        train_ds = train_ds.skip(done * config.steps_per_epoch)
    # Epochs are evaluated on the validation split; the test split only once, at the end.
    val_ds = make_batches(data, config, training=False, split="validation") \
        if data.validation is not None else None
    monitor_n = callbacks_lib.num_monitor_images(config.grid_size)
    monitor_images = next(iter(make_batches(
        data, config.replace(batch_size=monitor_n), training=False,
        split="validation" if data.validation is not None else "train"))).numpy()

    if write_dir.path == run_dir.path:
        if not resuming:
            run_dir.write_config(config)
        # Rows of epochs after the checkpoint resumed from are trained again.
        run_dir.keep_metrics_before(done + 1)
    if resuming and done:
        logging.info("Resuming after epoch %d of run %s", done, run_dir.path)
    elif resuming:
        logging.info("Continuing run %s from its first epoch (none had finished)", run_dir.path)
    else:
        logging.info("Starting run %s", run_dir.path)

    prior_fit_batches = callbacks_lib.prior_fit_batches(data, config) \
        if config.sample_prior == "fitted" else None
    callbacks, nan_guard = callbacks_lib.make_callbacks(config, run_dir, monitor_images,
                                                        write_dir, restored=done > 0,
                                                        prior_fit_batches=prior_fit_batches)
    stopper = next(c for c in callbacks if isinstance(c, callbacks_lib.StopOnInterrupt))
    try:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=done,
                  steps_per_epoch=config.steps_per_epoch or None,
                  validation_data=val_ds,
                  validation_steps=(config.eval_steps or None) if val_ds is not None else None,
                  callbacks=callbacks, verbose=0, shuffle=False)  # EpochSummary prints
    except callbacks_lib.StopTraining:
        finished = max(dict(write_dir.checkpoints()), default=0)
        raise Interrupted((f"interrupted after epoch {finished}" if finished else
                           "interrupted before the first epoch finished")
                          + "; run the same command to continue") from None
    finally:
        stopper.restore()
    if nan_guard.failed_at:
        epoch, step = nan_guard.failed_at
        raise TrainingFailed(
            f"Training stopped: the loss became NaN or infinite at epoch {epoch}, step {step}. "
            f"Lower --learning_rate (now {config.learning_rate}) or raise --recon_scale; "
            f"checkpoints up to the last finished epoch are in {run_dir.join(rundir.CHECKPOINTS)}.")
    # Before the export, which marks the run finished: a run killed in between
    # evaluates again when resumed.
    test = _final_evaluation(model, data, config)
    if write_dir.path == run_dir.path:
        files.write_text(run_dir.test_metrics_path, json.dumps(test, indent=2) + "\n")
    export.export_saved_model(model, write_dir.saved_model_dir, config.export_precision)
    logging.info("Exported %s (computing in %s; trained in %s)", write_dir.saved_model_dir,
                 config.export_precision, model.dtype_policy.name)
    if write_dir.path == run_dir.path:
        from vae_tf.views import report_page

        report_page.write_report(run_dir.path)  # with the test figures and the export
    rows = run_dir.read_metrics()
    final = rows[-1] if rows else {}
    return {"run_dir": run_dir.path, "resumed": resuming,
            **{k: v for k, v in final.items() if k != "epoch"},
            **{f"test_{k}": v for k, v in test.items()}}


def _final_evaluation(model, data, config) -> dict:
    """The test split's figures of the trained (exported) weights, once, after the
    last epoch: {"loss", "reconstruction", "kl", ... in nats per image}."""
    from vae_tf.datasets.pipeline import make_batches

    test_ds = make_batches(data, config, training=False, split="test")
    logs = model.evaluate(test_ds, steps=config.eval_steps or None, verbose=0,
                          return_dict=True)
    test = {k: float(v) for k, v in logs.items()}
    bits = f", {test['bits_per_dim']:.3f} bits/dim" if "bits_per_dim" in test else ""
    logging.info("Test split (final evaluation): negative ELBO %.2f nats per image "
                 "(reconstruction %.2f + KL %.2f)%s.", test["loss"], test["reconstruction"],
                 test["kl"], bits)
    return test
