"""Latent traversal: sweep each latent dimension while the others keep a test image's
mean code.

    python -m vae_tf.traverse --run_dir=outputs/<run> --index=0 [--steps=9 --limit=3]

Writes <run>/pictures/traverse_<index>.png: row u shows the decoder means as
dimension u goes from -limit to +limit (prior standard deviations).
"""

import numpy as np
from absl import flags

from vae_tf import images as image_utils
from vae_tf import latent, rundir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_integer("index", 0, "Test image whose mean code the other dimensions keep.",
                         flag_values=flag_values)
    flags.DEFINE_integer("steps", 9, "Values per dimension (columns of the grid).",
                         lower_bound=2, flag_values=flag_values)
    flags.DEFINE_float("limit", 3.0, "Each dimension is swept from -limit to +limit.",
                       lower_bound=0.0, flag_values=flag_values)


def traversal_grid(run, index: int, steps: int, limit: float) -> np.ndarray:
    """[latent_dim * steps, H, W, C], row-major: one row per latent dimension."""
    mean, _ = run.encode(run.test_image(index)[None])
    values = np.linspace(-limit, limit, steps, dtype=np.float32)
    return run.decode(latent.traversal_codes(mean[0], values))


def main(argv):
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    grid = traversal_grid(run, FLAGS.index, FLAGS.steps, FLAGS.limit)
    path = run.output_path(FLAGS.output, f"traverse_{FLAGS.index}.png")
    image_utils.save_grid(path, grid, cols=FLAGS.steps)
    print(f"wrote {path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
