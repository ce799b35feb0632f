"""Explore a trained run's latent space in the browser: samples at a temperature,
sliders along the main directions of the codes, your own images and their
reconstructions, blends of two codes and (CelebA) attribute vectors, live.

    python -m vae_tf.explore --run_dir=outputs/<run> [--port=8765] [--host=127.0.0.1]

Prints the address to open and serves until Ctrl-C. Everything is decoded by the
run's SavedModel; see vae_tf/views/explorer.py for the server and its routes.
"""

from absl import flags

from vae_tf import cli


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "host", "port")


def main(argv):
    from vae_tf.views import explorer

    explorer.serve(FLAGS.run_dir, FLAGS.data_dir, FLAGS.host, FLAGS.port)


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
