"""The learned 2-D manifold: decoder means on a grid of codes (latent_dim=2 only).

    python -m vae_tf.manifold --run_dir=outputs/<run> [--grid_size=20]

The grid's codes are the prior's quantiles from 5% to 95% on each axis (z1 to the
right, z2 upwards). Writes <run>/pictures/manifold.png.
"""

from absl import flags

from vae_tf import cli
from vae_tf.run import rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "grid_size")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    grid = pictures.manifold(run, FLAGS.grid_size)
    path = run.output_path(FLAGS.output, rundir.MANIFOLD_PICTURE)
    grids.save_grid(path, grid, cols=FLAGS.grid_size)
    print(f"wrote {path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
