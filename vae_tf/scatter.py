"""Scatter plot of the test split's mean codes, coloured by label.

    python -m vae_tf.scatter --run_dir=outputs/<run> [--num_images=5000]

With latent_dim=2 the codes are plotted as they are, otherwise their first two
principal components. Writes <run>/pictures/scatter.png (800 x 800 pixels).
"""

from absl import flags

from vae_tf import cli, pictures

FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num_images")


def main(argv):
    from vae_tf.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    path = run.output_path(FLAGS.output, "scatter.png")
    images, labels = run.test_images(FLAGS.num_images or None, with_labels=True)
    title = (f"{run.config.dataset} test codes ({run.config.model}, "
             f"latent_dim={run.latent_dim})")
    from vae_tf.datasets import CLASS_NAMES

    pictures.save_code_scatter(run, images, labels, path, title,
                               CLASS_NAMES.get(run.config.dataset, ()))
    print(f"wrote {path}")


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
