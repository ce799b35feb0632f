"""The learned 2-D manifold: decoder means on a grid of codes (latent_dim=2 only).

    python -m vae_tf.manifold --run_dir=outputs/<run> [--grid_size=20]

The grid's codes are the prior's quantiles from 5% to 95% on each axis (z1 to the
right, z2 upwards). Writes <run>/pictures/manifold.png.
"""

from absl import flags

from vae_tf import images as image_utils
from vae_tf import latent, rundir
from vae_tf.errors import UserError

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_integer("grid_size", 20, "Rows and columns of the grid.", lower_bound=2,
                         upper_bound=64, flag_values=flag_values)


def manifold_grid(run, grid_size: int):
    if run.latent_dim != 2:
        raise UserError(f"The manifold grid needs a 2-D latent space; this run has "
                        f"latent_dim={run.latent_dim} (use vae_tf.traverse instead).")
    return run.decode(latent.manifold_codes(grid_size))


def main(argv):
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    grid = manifold_grid(run, FLAGS.grid_size)
    path = run.output_path(FLAGS.output, "manifold.png")
    image_utils.save_grid(path, grid, cols=FLAGS.grid_size)
    print(f"wrote {path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
