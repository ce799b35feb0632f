"""Draw samples from a trained run: codes from its sampling prior at temperature T
(N(0, T^2 I), or the fitted Gaussian of --sample_prior=fitted, a hierarchy's fitted
mixture) through the decoder.

    python -m vae_tf.sample --run_dir=outputs/<run> --num=64 [--temperature=T]
    python -m vae_tf.sample --run_dir=outputs/<hierarchical run> --group_temperatures=1,0.8,...
    python -m vae_tf.sample --run_dir=outputs/<run> --temperatures=1,0.9,0.8,0.7,0.6 --num=8

T defaults to the run's own --temperature (that of its sample grids). A hierarchical
run's groups can each have their own, top group first.

Writes a grid PNG (default <run>/pictures/samples_t<T>_seed<S>.png) and, beside it,
the images as a .npy array [num, H, W, C] of decoder means in [0, 1]. With
--temperatures, one picture with a row of --num samples per temperature, the same
seed in every row (samples_sweep_t<T1>-<T2>..._seed<S>.png, and its .npy).
"""

import io
import math
import os

import numpy as np
from absl import flags

from vae_tf import cli, temperatures
from vae_tf.run import files, rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num", "temperature", "temperatures",
              "group_temperatures", "seed")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    if FLAGS.temperatures:
        return temperature_sweep(run, temperatures.numbers("--temperatures", FLAGS.temperatures))
    given = FLAGS.temperature if FLAGS["temperature"].present else None
    temperature = temperatures.asked(run.config, given, FLAGS.group_temperatures)
    name = temperatures.label(temperature)
    path = run.output_path(FLAGS.output, rundir.samples_picture(name, FLAGS.seed))
    images = pictures.samples(run, FLAGS.num, temperature, FLAGS.seed)
    grids.save_grid(path, images, cols=math.ceil(math.sqrt(FLAGS.num)))
    print(f"wrote {path} and {save_array_beside(path, images)}")


def save_array_beside(path: str, images: np.ndarray) -> str:
    """Writes `images` as <path without .png>.npy; returns that path."""
    array_path = os.path.splitext(path)[0] + ".npy"
    buffer = io.BytesIO()
    np.save(buffer, images)
    files.write_bytes(array_path, buffer.getvalue())
    return array_path


def temperature_sweep(run, temps) -> None:
    """One labelled picture: a row of --num samples at each temperature, one seed; the
    images beside it as an array [temperatures, num, H, W, C]."""
    rows = np.stack([pictures.samples(run, FLAGS.num, t, FLAGS.seed) for t in temps])
    name = "sweep_" + temperatures.label(temps)
    path = run.output_path(FLAGS.output, rundir.samples_picture(name, FLAGS.seed))
    grids.save_labelled_grid(path, np.concatenate(rows), FLAGS.num,
                             [f"T={t:g}" for t in temps],
                             [""] * FLAGS.num, f"samples at temperature T, seed {FLAGS.seed}")
    print(f"wrote {path} and {save_array_beside(path, rows)}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
