"""An animated GIF of a run's samples grid across epochs (the same latent codes each
epoch, so the GIF shows the decoder learning).

    python -m vae_tf.animate --run_dir=outputs/<run> [--frame_ms=500]

Reads <run>/images/samples_epoch_*.png, so it works on a run that is still training,
and writes <run>/pictures/samples.gif (training's own images/samples.gif, written
when it ends, is never touched by a command).
"""

from absl import flags

from vae_tf import cli
from vae_tf.errors import UserError
from vae_tf.run import rundir
from vae_tf.views import latent


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "output", "frame_ms")


def main(argv):
    run = rundir.open_existing(FLAGS.run_dir)
    frames = run.grids("samples")
    if not frames:
        raise UserError(f"No samples_epoch_*.png in {run.image_dir}: pass a run directory "
                        "that has trained for at least one epoch.")
    path = run.output_path(FLAGS.output, run.picture(rundir.SAMPLES_GIF))
    latent.save_gif(path, frames, FLAGS.frame_ms)
    print(f"wrote {path} ({len(frames)} frames)")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
