"""Latent traversal: sweep each latent dimension while the others keep a test image's
mean code.

    python -m vae_tf.traverse --run_dir=outputs/<run> --index=0 [--steps=9 --limit=3]

Writes <run>/pictures/traverse_<index>.png: row u shows the decoder means as
dimension u goes from -limit to +limit (prior standard deviations).
"""

from absl import flags

from vae_tf import cli
from vae_tf.flag_defs import parse_index
from vae_tf.run import rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "index", "steps", "limit")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    index, _ = parse_index(FLAGS.index, allow_range=False)
    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    grid = pictures.traversal(run, run.test_image(index), FLAGS.steps, FLAGS.limit)
    path = run.output_path(FLAGS.output, rundir.traverse_picture(index))
    grids.save_grid(path, grid, cols=FLAGS.steps)
    print(f"wrote {path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
