"""Show test images beside their reconstructions (decoder mean at the mean code).

    python -m vae_tf.reconstruct --run_dir=outputs/<run> --index=7
    python -m vae_tf.reconstruct --run_dir=outputs/<run> --index=0:16

Writes <run>/pictures/reconstruct_<index>.png: each test image, then its
reconstruction to its right; a range gives up to 4 such pairs per row.
"""

from absl import flags

from vae_tf import images as image_utils
from vae_tf import rundir
from vae_tf.errors import UserError

FLAGS = flags.FLAGS
PAIRS_PER_ROW = 4


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_string("index", "0", "Test image to reconstruct: an index N (from 0), or "
                        "a range START:STOP of indices START to STOP-1.",
                        flag_values=flag_values)


def parse_index(text: str):
    """'7' -> (7, 8); '0:16' -> (0, 16); UserError otherwise."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts.append(parts[0] + 1)
    if len(parts) != 2 or parts[1] <= parts[0]:
        raise UserError(f"--index={text} is neither an index N nor a range START:STOP "
                        "with START < STOP.")
    return parts[0], parts[1]


def main(argv):
    start, stop = parse_index(FLAGS.index)
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    run.check_index(start)
    run.check_index(stop - 1)
    name = f"{start}" if stop == start + 1 else f"{start}-{stop - 1}"
    path = run.output_path(FLAGS.output, f"reconstruct_{name}.png")
    originals = run.test_images(stop)[start:]
    pairs = image_utils.interleave(originals, run.reconstruct(originals))
    image_utils.save_grid(path, pairs, cols=2 * min(PAIRS_PER_ROW, stop - start))
    print(f"wrote {path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
