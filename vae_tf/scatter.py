"""Scatter plot of the test split's mean codes, coloured by label.

    python -m vae_tf.scatter --run_dir=outputs/<run> [--num_images=5000]

With latent_dim=2 the codes are plotted as they are, otherwise their first two
principal components. Writes <run>/pictures/scatter.png (800 x 800 pixels).
"""

from absl import flags

from vae_tf import latent, rundir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    rundir.define_run_flags(flag_values)
    flags.DEFINE_integer("num_images", 0, "Plot the first this many test images; 0 means "
                         "the whole test split.", lower_bound=0, flag_values=flag_values)


def save_code_scatter(run, path: str, num_images: int = 0) -> None:
    images, labels = run.test_images(num_images or None, with_labels=True)
    mean, _ = run.encode(images)
    points, axis_names = latent.project_2d(mean)
    title = (f"{run.config.dataset} test codes ({run.config.model}, "
             f"latent_dim={run.latent_dim})")
    latent.save_scatter(path, points, labels, axis_names, title)


def main(argv):
    run = rundir.Run(FLAGS.run_dir, FLAGS.data_dir)
    path = run.output_path(FLAGS.output, "scatter.png")
    save_code_scatter(run, path, FLAGS.num_images)
    print(f"wrote {path}")


if __name__ == "__main__":
    rundir.console_main(main, define_flags)
