"""Draw samples from a trained run: codes from its sampling prior at temperature T
(N(0, T^2 I), or the fitted Gaussian of --sample_prior=fitted) through the decoder.

    python -m vae_tf.sample --run_dir=outputs/<run> --num=64 [--temperature=T]

T defaults to the run's own --temperature (that of its sample grids).

Writes a grid PNG (default <run>/pictures/samples_t<T>_seed<S>.png) and, beside it,
the images as a .npy array [num, H, W, C] of decoder means in [0, 1].
"""

import io
import math
import os

import numpy as np
from absl import flags

from vae_tf import cli, files, pictures
from vae_tf import images as image_utils

FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num", "temperature", "seed")


def main(argv):
    from vae_tf.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    # Unless given, the temperature the run was trained to show its samples at.
    temperature = FLAGS.temperature if FLAGS["temperature"].present else run.config.temperature
    path = run.output_path(FLAGS.output, f"samples_t{temperature:g}_seed{FLAGS.seed}.png")
    images = pictures.samples(run, FLAGS.num, temperature, FLAGS.seed)
    image_utils.save_grid(path, images, cols=math.ceil(math.sqrt(FLAGS.num)))
    array_path = os.path.splitext(path)[0] + ".npy"
    buffer = io.BytesIO()
    np.save(buffer, images)
    files.write_bytes(array_path, buffer.getvalue())
    print(f"wrote {path} and {array_path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
