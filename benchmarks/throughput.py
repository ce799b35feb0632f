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
TensorFlow's kernels. --fraction times both, a repeat of each in turn in one process,
and prints the training step's fraction of that ceiling.

    python benchmarks/throughput.py --flagfile=flags/celeba.cfg --fraction --pipeline_batches=0
"""

import os
import resource
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.run.tfenv import resolve_precision, set_tensorflow_defaults  # noqa: E402

set_tensorflow_defaults()  # before TensorFlow loads, as every command does
from vae_tf.config import IMAGE_FILE_DATASETS  # noqa: E402
from vae_tf.errors import UserError  # noqa: E402
from vae_tf.flag_defs import config_from_flags, define_flags  # noqa: E402

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
    flags.DEFINE_bool("fraction", False, "Time the training step and the network-only "
                      "pass in turn in one process, a repeat of each at a time, and print "
                      "the training step's fraction of that ceiling: the median of the "
                      "repeats' ratios, so that what else the machine runs cancels out.")


def training_step_timer(config, image_shape):
    """A function that runs `fit` for --steps steps on in-memory random images and
    returns their images/s, adding the process's CPU seconds and minor page faults
    over them (what tells a starved or page-faulting run from a slow one) to its
    `usage` list."""
    import keras
    import numpy as np
    import tensorflow as tf

    from vae_tf.models import distribute
    from vae_tf.datasets.pipeline import PREFETCH_BATCHES, fixed_options
    from vae_tf.models.build import build_vae

    strategy = distribute.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_vae(config, image_shape)
    images = np.random.default_rng(0).random((8 * config.batch_size, *image_shape),
                                             dtype=np.float32)
    ds = (tf.data.Dataset.from_tensor_slices(images).repeat()
          .batch(config.batch_size, drop_remainder=True).prefetch(PREFETCH_BATCHES)
          .with_options(fixed_options()))  # the training pipeline's settings

    class EpochTime(keras.callbacks.Callback):
        """The epoch's wall seconds, CPU seconds and minor page faults, not counting
        fit's set-up around it."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start
            after = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu = (after.ru_utime + after.ru_stime
                        - self.before.ru_utime - self.before.ru_stime)
            self.faults = after.ru_minflt - self.before.ru_minflt

    model.fit(ds, epochs=1, steps_per_epoch=FLAGS.warmup_steps, verbose=0, shuffle=False)
    epoch = EpochTime()
    usage = []

    def timed_steps():
        model.fit(ds, epochs=1, steps_per_epoch=FLAGS.steps, verbose=0, shuffle=False,
                  callbacks=[epoch])
        usage.append((epoch.seconds, epoch.cpu, epoch.faults))
        return FLAGS.steps * config.batch_size / epoch.seconds

    timed_steps.usage = usage
    return timed_steps


def network_only_timer(config, image_shape):
    """A function that runs the networks' forward pass and weight gradients --steps
    times and returns their images/s."""
    import tensorflow as tf

    from vae_tf.models import architectures, likelihoods
    from vae_tf.models.build import build_vae, compute_precision

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
            output = tf.cast(forward(x, training=True), tf.float32)
            # Half the sum of squares, whose gradient is the output itself. Under a
            # plain sum the gradient (ones) would not depend on the output, and
            # TensorFlow's graph optimizer then pruned the last layer's forward pass
            # and constant-folded its bias gradient: a ceiling above the network.
            total = 0.5 * tf.reduce_sum(tf.square(output))
        return total, tape.gradient(total, weights)

    for _ in range(FLAGS.warmup_steps):
        gradients(images)

    def timed_steps():
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            total, _ = gradients(images)
        total.numpy()  # waits for the last step
        return FLAGS.steps * config.batch_size / (time.perf_counter() - start)

    return timed_steps


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
    timers = {}
    if not FLAGS.network_only:
        timers["train_step"] = training_step_timer(config, image_shape)
    if FLAGS.network_only or FLAGS.fraction:
        timers["network_only"] = network_only_timer(config, image_shape)
    rates = {what: [] for what in timers}
    for _ in range(FLAGS.repeats):
        for what, timed_steps in timers.items():
            rates[what].append(timed_steps())
    for what, each in rates.items():
        print(f"{what} images_per_s per repeat: " + " ".join(f"{r:.1f}" for r in each))
        print(f"{what} images_per_s={statistics.median(each):.1f} "
              f"(median of {len(each)} x {FLAGS.steps} steps; min {min(each):.1f}, "
              f"max {max(each):.1f})")
    if "train_step" in timers:
        steps = FLAGS.repeats * FLAGS.steps
        seconds, cpu, faults = (sum(u) for u in zip(*timers["train_step"].usage))
        print(f"train_step per step: {1000 * seconds / steps:.1f} ms wall, "
              f"{1000 * cpu / steps:.1f} ms CPU, {faults / steps:.0f} minor page faults")
    if len(rates) == 2:
        ratios = [t / n for t, n in zip(rates["train_step"], rates["network_only"])]
        print(f"fraction_of_ceiling={statistics.median(ratios):.3f} (train_step / "
              f"network_only, median of {len(ratios)} interleaved repeats; min "
              f"{min(ratios):.3f}, max {max(ratios):.3f})")
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
