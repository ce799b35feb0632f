"""Interpolate between two test images in latent space.

    python -m vae_tf.interpolate --run_dir=outputs/<run> --index_a=0 --index_b=1 --steps=10

Writes <run>/pictures/interpolate_<a>_<b>.png: one row, image a, the decoder means at
`steps` codes on the straight line between the two images' mean codes, image b.
"""

from absl import flags

from vae_tf import cli
from vae_tf.run import rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "index_a", "index_b", "steps")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    a, b = FLAGS.index_a, FLAGS.index_b
    run.check_index(a, "--index_a")
    run.check_index(b, "--index_b")
    test = run.test_images(max(a, b) + 1)
    row = pictures.interpolation(run, test[a], test[b], FLAGS.steps)
    path = run.output_path(FLAGS.output, rundir.interpolate_picture(a, b))
    grids.save_grid(path, row, cols=len(row))
    print(f"wrote {path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
