"""Draw samples from a trained run: codes z ~ N(0, T^2 I) through the decoder.

    python -m vae_tf.sample --run_dir=outputs/<run> --num=64 [--temperature=1.0]

Writes a grid PNG (default <run>/pictures/samples_t<T>_seed<S>.png) and, beside it,
the images as a .npy array [num, H, W, C] of decoder means in [0, 1].
"""

import math
import os

import numpy as np
from absl import flags

from vae_tf import images as image_utils
from vae_tf import rundir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_integer("num", 64, "Number of samples to draw.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_float("temperature", 1.0, "Standard deviation of the codes: 1 samples "
                       "the prior, smaller values give more typical, less varied images.",
                       lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of the codes, so that a grid can be drawn again.",
                         flag_values=flag_values)


def sample(run, num: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """`num` decoder means at codes drawn from N(0, temperature^2 I)."""
    z = np.random.default_rng(seed).standard_normal((num, run.latent_dim)) * temperature
    return run.decode(z.astype(np.float32))


def main(argv):
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    path = run.output_path(FLAGS.output, f"samples_t{FLAGS.temperature:g}_seed{FLAGS.seed}.png")
    images = sample(run, FLAGS.num, FLAGS.temperature, FLAGS.seed)
    image_utils.save_grid(path, images, cols=math.ceil(math.sqrt(FLAGS.num)))
    array_path = os.path.splitext(path)[0] + ".npy"
    with open(array_path + ".tmp", "wb") as f:
        np.save(f, images)
    os.replace(array_path + ".tmp", array_path)
    print(f"wrote {path} and {array_path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
