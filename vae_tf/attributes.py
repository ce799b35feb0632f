"""Attribute vectors of a CelebA run: "add a smile" by latent arithmetic.

    python -m vae_tf.attributes --run_dir=outputs/<celeba run> --attribute=Smiling --index=0:6
    python -m vae_tf.attributes --run_dir=outputs/<celeba run> --index=3      # all 40 on image 3

An attribute's vector is the mean code (the mean of q(z|x)) of the test images that
have it, minus the mean code of those that do not, by CelebA's list_attr_celeba.txt
(or the zip holding it, beside list_eval_partition.txt). With --attribute, each
chosen test image gets a row: the image, then the decoder means at its code plus
a times the vector, for each a of --amounts; the picture is
<run>/pictures/attribute_<name>_<index>.png. Without it, one row per attribute, all
on test image --index: <run>/pictures/attribute_all_<index>.png.
"""

import numpy as np
from absl import flags

from vae_tf import cli
from vae_tf.errors import UserError
from vae_tf.flag_defs import parse_index
from vae_tf.run import rundir
from vae_tf.views import grids, pictures


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "attribute", "index", "amounts", "num_images")


def _amounts():
    try:
        return np.array([float(a) for a in FLAGS.amounts], np.float32)
    except ValueError:
        raise UserError(f"--amounts={','.join(FLAGS.amounts)} is not a comma list of "
                        "numbers.") from None


def main(argv):
    from vae_tf.views import latent
    from vae_tf.views.trained import TrainedRun

    amounts = _amounts()
    start, stop = parse_index(FLAGS.index, allow_range=bool(FLAGS.attribute))
    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    names, has = run.test_attributes()
    column = run.attribute_column(names, FLAGS.attribute) if FLAGS.attribute else None
    run.check_index(start)
    run.check_index(stop - 1)
    path = run.output_path(FLAGS.output, rundir.attribute_picture(
        FLAGS.attribute or "all", start, stop))

    # The vectors come from the first --num_images test images (all when 0).
    used = FLAGS.num_images or len(has)
    images = run.test_images(max(used, stop))
    codes, _ = run.encode(images)
    vectors = latent.attribute_vectors(codes[:used], has[:used])
    counts = has[:used].sum(axis=0)
    columns = ["test image"] + [f"a={a:+g}" for a in amounts]
    about = (f"vector = mean code of the test images with it minus that of those without "
             f"({min(used, len(has))} test images)")
    if column is not None:
        if np.isnan(vectors[column]).any():
            raise UserError(f"{counts[column]} of the {min(used, len(has))} test images have "
                            f"{FLAGS.attribute}: its vector needs images with and without "
                            "it (use more with --num_images).")
        rows = pictures.attribute_rows(run, images[start:stop], codes[start:stop],
                                       vectors[column], amounts)
        row_names = [f"test image {i}" for i in range(start, stop)]
        title = (f"{FLAGS.attribute} ({counts[column]} with): code + a x vector; {about}")
    else:
        usable = ~np.isnan(vectors).any(axis=1)
        # A vector that cannot be formed moves nothing: its row stays the image itself.
        rows = pictures.attribute_rows(run, np.repeat(images[start:start + 1], len(names), 0),
                                       np.repeat(codes[start:start + 1], len(names), 0),
                                       np.where(usable[:, None], vectors, 0.0), amounts)
        row_names = [f"{name} ({n} with)" if ok else f"{name} (no vector: {n} with)"
                     for name, n, ok in zip(names, counts, usable)]
        title = f"Every attribute vector on test image {start}: code + a x vector; {about}"
    grids.save_labelled_grid(path, rows, len(columns), row_names, columns, title)
    from vae_tf.views import report_page

    report_page.wrote(run.run_dir, path)


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
