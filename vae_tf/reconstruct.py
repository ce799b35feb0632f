"""Show test images beside their reconstructions (decoder mean at the mean code).

    python -m vae_tf.reconstruct --run_dir=outputs/<run> --index=7
    python -m vae_tf.reconstruct --run_dir=outputs/<run> --index=0:16

Writes <run>/pictures/reconstruct_<index>.png: each test image, then its
reconstruction to its right; a range gives up to 4 such pairs per row.
"""

from absl import flags

from vae_tf import cli
from vae_tf.flag_defs import parse_index
from vae_tf.run import rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "index")
PAIRS_PER_ROW = 4


def main(argv):
    from vae_tf.views.trained import TrainedRun

    start, stop = parse_index(FLAGS.index)
    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    run.check_index(start)
    run.check_index(stop - 1)
    name = f"{start}" if stop == start + 1 else f"{start}-{stop - 1}"
    path = run.output_path(FLAGS.output, rundir.reconstruct_picture(name))
    pairs = pictures.reconstruction_pairs(run, run.test_images(stop)[start:])
    grids.save_grid(path, pairs, cols=2 * min(PAIRS_PER_ROW, stop - start))
    print(f"wrote {path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
