"""Scatter plot of the test split's mean codes, coloured by label, mapped to 2-D by
PCA, t-SNE or UMAP; optionally beside a second run's codes of the same images.

    python -m vae_tf.scatter --run_dir=outputs/<run> [--method=pca|tsne|umap] [--num_images=5000]
    python -m vae_tf.scatter --run_dir=outputs/<vae> --beside_run_dir=outputs/<ae> --method=umap
    python -m vae_tf.scatter --run_dir=outputs/<celeba run> --attribute=Male

Writes <run>/pictures/scatter_<method>.png (800 x 800 pixels a panel), or
scatter_<method>_beside_<other run>.png, with _<attribute> after the method when
coloured by one. PCA plots the codes themselves when latent_dim=2. CelebA has no class label: --attribute colours its codes by one of
its 40 attributes.
"""

import time

from absl import flags

from vae_tf import cli
from vae_tf.errors import UserError
from vae_tf.run import rundir
from vae_tf.views import pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num_images", "method", "beside_run_dir",
              "attribute", "seed")


def main(argv):
    from vae_tf.views.trained import TrainedRun

    # First: it imports TensorFlow quietly; vae_tf.datasets would import it loudly.
    runs = [TrainedRun(FLAGS.run_dir, FLAGS.data_dir)]
    from vae_tf.datasets import CLASS_NAMES
    from vae_tf.views.embedding import NAMES

    if FLAGS.beside_run_dir:
        runs.append(TrainedRun(FLAGS.beside_run_dir, FLAGS.data_dir))
        first, second = runs[0].config, runs[1].config
        if (first.dataset, runs[0].image_shape) != (second.dataset, runs[1].image_shape):
            raise UserError(f"--beside_run_dir={FLAGS.beside_run_dir} was trained on "
                            f"{second.dataset} {runs[1].image_shape}, --run_dir on "
                            f"{first.dataset} {runs[0].image_shape}: they need the same "
                            "test images.")
    run = runs[0]
    beside = runs[1].dir.name if len(runs) > 1 else ""
    path = run.output_path(FLAGS.output, rundir.scatter_picture(FLAGS.method, beside,
                                                                  FLAGS.attribute))
    images, labels = run.test_images(FLAGS.num_images or None, with_labels=True)
    class_names = CLASS_NAMES.get(run.config.dataset, ())
    if FLAGS.attribute:
        names, has = run.test_attributes()
        labels = has[:len(images), run.attribute_column(names, FLAGS.attribute)].astype(int)
        class_names = (f"not {FLAGS.attribute}", FLAGS.attribute)
    titles = [f"{r.dir.name}: {r.config.dataset} test codes ({r.config.model}, "
              f"latent_dim={r.latent_dim})" for r in runs]
    start = time.perf_counter()
    pictures.save_code_scatter(runs, images, labels, path, titles, class_names,
                               FLAGS.method, FLAGS.seed)
    print(f"{NAMES[FLAGS.method]} of {len(images)} codes x {len(runs)} run(s) in "
          f"{time.perf_counter() - start:.1f} s")
    from vae_tf.views import report_page

    report_page.wrote(run.run_dir, path)


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
