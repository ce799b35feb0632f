"""Evaluate a trained run on its test split: likelihood bounds, reconstruction error,
active latent units. --split=validation reads its validation images instead, for the
choices that the test split must not make (a temperature, a checkpoint, a preset).

    python -m vae_tf.evaluate --run_dir=outputs/<run> [--num_importance_samples=1000]
    python -m vae_tf.evaluate --run_dir=outputs/<run> --fid [--fid_weights=inception-2015-12-05.tgz]
                              [--temperature=T | --group_temperatures=T1,T2,...]

Reads only the run directory (config.json and saved_model/) and the dataset it names
(--data_dir overrides where the files are). Prints a table and writes
<run>/eval.json, or <run>/eval_validation.json (see docs/evaluation.md). For each
image x, with K samples z_k ~ q(z|x) and w_k = p(x|z_k) p(z_k) / q(z_k|x):

    negative ELBO  = mean_k[-log p(x|z_k)] + KL(q(z|x) || N(0, I))
                     (a hierarchy: + mean_k sum_g KL(q(z_g|x, z_<g) || p(z_g|z_<g)))
    NLL_IWAE(K)    = -log (1/K) sum_k w_k      (Burda et al. 2015; <= negative ELBO
                                                in expectation, tightening as K grows)

both in nats per image, averaged over the images. --fid adds FID and KID of samples
and reconstructions against the same images (vae_tf/views/fid.py) under "fid";
the samples are drawn at --temperature, by default the run's own (that of its grids),
or at --group_temperatures.
"""

from absl import flags

from vae_tf import cli, temperatures
from vae_tf.run import files
from vae_tf.errors import UserError
from vae_tf.views.evaluation import decoder_pairs, evaluate, format_table


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "data_dir", "output", "num_importance_samples", "num_images",
              "decoder_batch_size", "seed", "fid", "fid_weights", "temperature",
              "group_temperatures", "split")


def main(argv):
    from vae_tf.views import report_page
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(FLAGS.run_dir, FLAGS.data_dir)
    path = run.dir.output_path(FLAGS.output, run.dir.evaluation_path(FLAGS.split))
    network = None
    if FLAGS.fid:  # before the long part, so that a missing network stops it at once
        from vae_tf.views import inception

        given = FLAGS.temperature if FLAGS["temperature"].present else None
        temperature = temperatures.asked(run.config, given, FLAGS.group_temperatures)
        network = inception.Inception(inception.network_file(FLAGS.fid_weights))
    import tensorflow as tf

    try:
        results = evaluate(run, FLAGS.num_importance_samples, FLAGS.num_images, FLAGS.seed,
                           FLAGS.decoder_batch_size, FLAGS.split)
    except tf.errors.ResourceExhaustedError:
        pairs = decoder_pairs(FLAGS.decoder_batch_size, run.image_shape)
        raise UserError(f"Out of memory with {pairs} (image, sample) pairs per decoder "
                        f"call: give a smaller --decoder_batch_size.") from None
    if network is not None:
        from vae_tf.views import fid

        images = run.split_images(FLAGS.split, FLAGS.num_images or None)
        results["fid"] = fid.sample_quality(run, images, network, FLAGS.seed, temperature)
    else:
        # A finished run's export never changes: an earlier FID of it stays true.
        results["fid"] = report_page.fid_section(files.read_json_object(path))
    files.write_json(path, results)
    print(format_table(results))
    report_page.wrote(run.run_dir, path)


def console_main():
    cli.run(main, FLAG_NAMES, required=("run_dir",))


if __name__ == "__main__":
    console_main()
