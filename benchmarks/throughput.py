"""Training throughput: images per second of the training step, and of the input pipeline.

    python benchmarks/throughput.py --conv_channels=32,64,128,256 --kernel_size=4 \\
        --latent_dim=128 --image_size=64 --batch_size=64
    python benchmarks/throughput.py --flagfile=flags/fashion_mnist.cfg --jit_compile

Takes every training flag. The training step is timed on random images of
--image_size x --image_size x --image_channels held in memory (as
benchmarks/torch_ref.py and keras_ref.py do), so the input pipeline does not
count; after --warmup_steps, each of --repeats epochs of --steps steps is timed and
the median is printed. With the flags of the first command it is the same network
as those references. The input pipeline (the --dataset's loader and
`make_batches`, cast included) is timed on its own afterwards.

--network_only times the encoder's and decoder's forward pass and weight gradients
alone, without the loss, the optimizer or `fit` (with XLA under --jit_compile, as
the training step): the ceiling for any training step of this network on
TensorFlow's kernels.
"""

import os
import resource
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.tfenv import resolve_precision, set_tensorflow_defaults  # noqa: E402

set_tensorflow_defaults()  # before TensorFlow loads, as every command does
from vae_tf.config import IMAGE_FILE_DATASETS  # noqa: E402
from vae_tf.errors import UserError  # noqa: E402
from vae_tf.flags import config_from_flags, define_flags  # noqa: E402

FLAGS = flags.FLAGS


def define_benchmark_flags():
    flags.DEFINE_integer("image_channels", 3, "Channels of the random images.", lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 10, "Untimed steps first (tracing, XLA compile, "
                         "oneDNN's first-call set-up).", lower_bound=1)
    flags.DEFINE_integer("steps", 20, "Timed steps per repeat.", lower_bound=1)
    flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.", lower_bound=1)
    flags.DEFINE_integer("pipeline_batches", 50, "Batches read to time the input pipeline; "
                         "0 skips it.", lower_bound=0)
    flags.DEFINE_bool("network_only", False, "Time only the encoder's and decoder's forward "
                      "pass and weight gradients (no loss, no optimizer, no fit loop): the "
                      "ceiling that TensorFlow's kernels put on any training step of this "
                      "network.")


def time_training_step(config, image_shape):
    """Images/s of each repeat of `fit` on in-memory random images."""
    import keras
    import numpy as np
    import tensorflow as tf

    from vae_tf import distribute
    from vae_tf.datasets.pipeline import PREFETCH_BATCHES, fixed_options
    from vae_tf.model import build_vae

    strategy = distribute.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_vae(config, image_shape)
    images = np.random.default_rng(0).random((8 * config.batch_size, *image_shape),
                                             dtype=np.float32)
    ds = (tf.data.Dataset.from_tensor_slices(images).repeat()
          .batch(config.batch_size, drop_remainder=True).prefetch(PREFETCH_BATCHES)
          .with_options(fixed_options()))  # the training pipeline's settings

    class EpochTimes(keras.callbacks.Callback):
        """Wall seconds of each epoch, and the process's CPU seconds and minor page
        faults over them (what tells a starved or page-faulting run from a slow one)."""

        def __init__(self):
            super().__init__()
            self.seconds, self.cpu, self.faults = [], 0.0, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu += (usage.ru_utime + usage.ru_stime
                         - self.usage.ru_utime - self.usage.ru_stime)
            self.faults += usage.ru_minflt - self.usage.ru_minflt

    model.fit(ds, epochs=1, steps_per_epoch=FLAGS.warmup_steps, verbose=0, shuffle=False)
    timer = EpochTimes()
    model.fit(ds, epochs=FLAGS.repeats, steps_per_epoch=FLAGS.steps, verbose=0, shuffle=False,
              callbacks=[timer])
    steps = FLAGS.repeats * FLAGS.steps
    print(f"per step: {1000 * sum(timer.seconds) / steps:.1f} ms wall, "
          f"{1000 * timer.cpu / steps:.1f} ms CPU, {timer.faults / steps:.0f} minor page faults")
    return [FLAGS.steps * config.batch_size / s for s in timer.seconds]


def time_network_only(config, image_shape):
    """Images/s of each repeat of the networks' forward pass and weight gradients."""
    import tensorflow as tf

    from vae_tf import architectures, likelihoods
    from vae_tf.model import build_vae, compute_precision

    if config.architecture == "hierarchical":
        # Bottom-up and top-down paths with every group at its posterior mean.
        model = build_vae(config, image_shape)
        weights, forward = model.trainable_variables, model
    else:
        # In the training step's precision, so that the two figures compare.
        with compute_precision(config):
            encoder = architectures.build_encoder(config, image_shape)
            channels = likelihoods.build(config, image_shape).decoder_channels(image_shape[-1])
            decoder = architectures.build_decoder(config, image_shape, channels)
        weights = encoder.trainable_variables + decoder.trainable_variables
        forward = lambda x, training: decoder(encoder(x)[:, :config.latent_dim])
    images = tf.random.uniform((config.batch_size, *image_shape), seed=config.seed)

    @tf.function(jit_compile=config.jit_compile)
    def gradients(x):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.cast(forward(x, training=True), tf.float32))
        return tape.gradient(total, weights)

    for _ in range(FLAGS.warmup_steps):
        gradients(images)
    rates = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            result = gradients(images)
        result[0].numpy()  # waits for the last step
        rates.append(FLAGS.steps * config.batch_size / (time.perf_counter() - start))
    return rates


def time_input_pipeline(config):
    """Images/s of the --dataset's training batches as `train.run` reads them."""
    from vae_tf import datasets
    from vae_tf.datasets.pipeline import make_batches

    data = datasets.load(config)
    batches = iter(make_batches(data, config.replace(steps_per_epoch=1), training=True))
    for _ in range(5):
        next(batches)
    start = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        next(batches)
    seconds = time.perf_counter() - start
    return FLAGS.pipeline_batches * config.batch_size / seconds, data.source


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    # --image_size (Config's, 0 meaning 64) sizes the random images timed here; for
    # datasets that do not read image files Config rejects it, so it is cleared.
    size = FLAGS.image_size or 64
    if FLAGS.dataset not in IMAGE_FILE_DATASETS:
        FLAGS.image_size = 0
    try:
        config = config_from_flags()
    except ValueError as e:
        sys.exit(f"error: {e}")
    image_shape = (size, size, FLAGS.image_channels)
    print(f"throughput: {config.architecture} {','.join(map(str, config.conv_channels))} "
          f"k{config.kernel_size} latent {config.latent_dim}, images {image_shape}, "
          f"batch {config.batch_size}, precision {config.precision} "
          f"({resolve_precision(config.precision, config.jit_compile)}), "
          f"jit_compile {config.jit_compile}, strategy {config.strategy}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if FLAGS.network_only:
        what, rates = "network_only", time_network_only(config, image_shape)
    else:
        what, rates = "train_step", time_training_step(config, image_shape)
    print(f"{what} images_per_s per repeat: " + " ".join(f"{r:.1f}" for r in rates))
    print(f"{what} images_per_s={statistics.median(rates):.1f} "
          f"(median of {len(rates)} x {FLAGS.steps} steps; min {min(rates):.1f}, "
          f"max {max(rates):.1f})")
    if FLAGS.pipeline_batches and not FLAGS.network_only:
        try:
            rate, source = time_input_pipeline(config)
            print(f"input_pipeline images_per_s={rate:.1f} ({source}, batch {config.batch_size})")
        except UserError as e:
            print(f"input_pipeline skipped: {e}")


if __name__ == "__main__":
    define_flags()
    define_benchmark_flags()
    app.run(main)
