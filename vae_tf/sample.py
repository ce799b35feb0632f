"""Draw samples from a trained run: codes from its sampling prior at temperature T
(N(0, T^2 I), or the fitted Gaussian of --sample_prior=fitted) through the decoder.

    python -m vae_tf.sample --run_dir=outputs/<run> --num=64 [--temperature=T]
    python -m vae_tf.sample --run_dir=outputs/<hierarchical run> --group_temperatures=1,0.8,...

T defaults to the run's own --temperature (that of its sample grids). A hierarchical
run's groups can each have their own, top group first.

Writes a grid PNG (default <run>/pictures/samples_t<T>_seed<S>.png) and, beside it,
the images as a .npy array [num, H, W, C] of decoder means in [0, 1].
"""

import io
import math
import os

import numpy as np
from absl import flags

from vae_tf import cli
from vae_tf.run import files, rundir
from vae_tf.views import grids, pictures
from vae_tf.config import parse_hierarchy
from vae_tf.errors import UserError

FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num", "temperature", "group_temperatures",
              "seed")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    # Unless given, the temperature the run was trained to show its samples at.
    temperature = FLAGS.temperature if FLAGS["temperature"].present else run.config.temperature
    name = f"t{temperature:g}"
    if FLAGS.group_temperatures:
        temperature = group_temperatures(run.config, FLAGS.group_temperatures)
        name = "t" + "-".join(f"{t:g}" for t in temperature)
    path = run.output_path(FLAGS.output, rundir.samples_picture(name, FLAGS.seed))
    images = pictures.samples(run, FLAGS.num, temperature, FLAGS.seed)
    grids.save_grid(path, images, cols=math.ceil(math.sqrt(FLAGS.num)))
    array_path = os.path.splitext(path)[0] + ".npy"
    buffer = io.BytesIO()
    np.save(buffer, images)
    files.write_bytes(array_path, buffer.getvalue())
    print(f"wrote {path} and {array_path}")


def group_temperatures(config, values) -> list:
    """--group_temperatures as floats, one per group of the run's hierarchy."""
    if config.architecture != "hierarchical":
        raise UserError(f"--group_temperatures needs a hierarchical run; this one is "
                        f"--architecture={config.architecture} (use --temperature).")
    num_groups = sum(groups for _, groups in parse_hierarchy(config.hierarchy))
    try:
        temperatures = [float(v) for v in values]
    except ValueError:
        raise UserError(f"--group_temperatures={','.join(values)}: not all numbers.") from None
    if len(temperatures) != num_groups or min(temperatures) < 0:
        raise UserError(f"--group_temperatures: give {num_groups} temperatures >= 0, one per "
                        f"group of --hierarchy={config.hierarchy}, not {len(temperatures)}.")
    return temperatures


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
