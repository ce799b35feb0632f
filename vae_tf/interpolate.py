"""Interpolate between two test images in latent space.

    python -m vae_tf.interpolate --run_dir=outputs/<run> --index_a=0 --index_b=1 --steps=10

Writes <run>/pictures/interpolate_<a>_<b>.png: one row, image a, the decoder means at
`steps` codes on the straight line between the two images' mean codes, image b.
"""

import numpy as np
from absl import flags

from vae_tf import images as image_utils
from vae_tf import latent, rundir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_integer("index_a", 0, "Test image at the start of the line.",
                         flag_values=flag_values)
    flags.DEFINE_integer("index_b", 1, "Test image at the end of the line.",
                         flag_values=flag_values)
    flags.DEFINE_integer("steps", 10, "Number of decoded codes, both ends included.",
                         lower_bound=2, flag_values=flag_values)


def interpolation_row(run, index_a: int, index_b: int, steps: int) -> np.ndarray:
    """[steps + 2, H, W, C]: image a, the decoded line of codes, image b."""
    run.check_index(index_a, "--index_a")
    run.check_index(index_b, "--index_b")
    test = run.test_images(max(index_a, index_b) + 1)
    ends = test[[index_a, index_b]]
    mean, _ = run.encode(ends)
    decoded = run.decode(latent.interpolation_codes(mean[0], mean[1], steps))
    return np.concatenate([ends[:1], decoded, ends[1:]])


def main(argv):
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    row = interpolation_row(run, FLAGS.index_a, FLAGS.index_b, FLAGS.steps)
    path = run.output_path(FLAGS.output, f"interpolate_{FLAGS.index_a}_{FLAGS.index_b}.png")
    image_utils.save_grid(path, row, cols=len(row))
    print(f"wrote {path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
