"""An animated GIF of a run's samples grid across epochs (the same latent codes each
epoch, so the GIF shows the decoder learning).

    python -m vae_tf.animate --run_dir=outputs/<run> [--frame_ms=500]

Reads <run>/images/samples_epoch_*.png, so it works on an unfinished run too, and
writes <run>/images/samples.gif. Training writes the same GIF when it ends.
"""

import os

from absl import flags

from vae_tf import latent, rundir
from vae_tf.errors import UserError

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values, data=False)
    flags.DEFINE_integer("frame_ms", 500, "How long each epoch's frame shows, in "
                         "milliseconds.", lower_bound=10, flag_values=flag_values)


def main(argv):
    if not os.path.isdir(FLAGS.run_dir):
        raise UserError(f"--run_dir={FLAGS.run_dir} does not exist.")
    image_dir = os.path.join(FLAGS.run_dir, "images")
    frames = latent.epoch_sample_grids(image_dir)
    if not frames:
        raise UserError(f"No samples_epoch_*.png in {image_dir}: pass a run directory "
                        "that has trained for at least one epoch.")
    path = FLAGS.output or os.path.join(image_dir, latent.SAMPLES_GIF)
    latent.save_gif(path, frames, FLAGS.frame_ms)
    print(f"wrote {path} ({len(frames)} frames)")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
