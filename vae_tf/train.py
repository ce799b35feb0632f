"""Train a VAE.

    python -m vae_tf.train --dataset=mnist --data_dir=/path/to/mnist

A dataset's run starts from its preset in flags/ (vae_tf/presets.py); flags given
override it.

Everything the run writes goes under <output_dir>/<run_name>/ (see vae_tf/run/rundir.py).
Running the same command again after a crash resumes the unfinished run; after the
run finished, it prints the run's result and exits 0.
"""

from absl import flags, logging

from vae_tf import cli, presets
from vae_tf.flag_defs import TRAINING_FLAGS, config_from_flags
# The Python API: vae_tf.train.run(config) trains as the command does.
from vae_tf.training.fit import TrainingFailed, run  # noqa: F401


def main(argv):
    config = config_from_flags()
    if flags.FLAGS.preset != presets.NONE:
        logging.info("Preset: flags/%s.cfg (the flags given on the command line override it; "
                     "--preset=none starts from the bare defaults).", flags.FLAGS.preset)
    result = run(config)
    if "test_loss" in result:
        print(f"{'Already finished' if result.get('already_finished') else 'Finished'} "
              f"{result['run_dir']}: test loss (negative ELBO) {result['test_loss']:.2f} "
              "nats per image.")
    else:  # finished before the test split was evaluated at the end of training
        print(f"Already finished {result['run_dir']}: no test figure recorded; "
              f"`python -m vae_tf.evaluate --run_dir={result['run_dir']}` computes it.")


def console_main():
    """`python -m vae_tf.train`, `vae-tf train` and `vae-tf-train`."""
    cli.run(main, TRAINING_FLAGS + ("preset",))


if __name__ == "__main__":
    console_main()
