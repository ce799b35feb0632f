"""tf.data pipelines: uint8 (image, label) elements -> float32 batches in [0, 1].

Batching comes before the cast and the binarization so that those run once per
batch rather than once per image.

tf.data's autotuner is turned off: in TF 2.21 its thread held up the end of every
pass over a dataset (measured in docs/speed.md, "The settings"); a cast and a
comparison per batch need only fixed parallelism and two batches of prefetch.
"""

import os

import tensorflow as tf

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData


# Test-split binarization uses this seed whatever --seed is, so that test figures of
# different runs are computed on the same binary images.
TEST_BINARIZATION_SEED = 12345
_SHUFFLE_BUFFER = 60_000
PARALLEL_CALLS = os.cpu_count() or 1
PREFETCH_BATCHES = 2


def fixed_options() -> tf.data.Options:
    """Options of every pipeline here: no autotuner (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def make_batches(data: ImageData, config: Config, training: bool,
                 with_labels: bool = False, split: str = "test") -> tf.data.Dataset:
    """Batches of the train split (shuffled, repeated when epochs have fixed steps)
    or, for evaluation, of `split` (in order, binarized once with a fixed seed)."""
    ds = data.train if training else data.split(split)
    if training:
        ds = ds.shuffle(min(data.num_train, _SHUFFLE_BUFFER), seed=config.seed,
                        reshuffle_each_iteration=True)
        if config.steps_per_epoch:
            ds = ds.repeat()
    # Full training batches keep shapes static (XLA, tf.distribute); the test split
    # keeps its last partial batch so every test image counts.
    ds = ds.batch(config.batch_size, drop_remainder=training)
    ds = ds.map(lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels),
                num_parallel_calls=PARALLEL_CALLS)
    if config.binarize == "dynamic":
        ds = _binarize(ds, seed=config.seed if training else TEST_BINARIZATION_SEED,
                       fresh_each_epoch=training)
    if not with_labels:
        ds = ds.map(lambda images, labels: images)
    return ds.prefetch(PREFETCH_BATCHES).with_options(fixed_options())


def _binarize(ds: tf.data.Dataset, seed: int, fresh_each_epoch: bool) -> tf.data.Dataset:
    """Replaces each pixel p by a Bernoulli(p) sample, from stateless per-batch seeds.

    Training batches draw new seeds every time (dynamic binarization); the test
    split's seeds are the batch indices, so its binary images are the same each epoch.
    """
    if fresh_each_epoch:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    else:
        seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.constant(seed, tf.int64), i]))
    return tf.data.Dataset.zip((ds, seeds)).map(
        lambda batch, s: (tf.cast(tf.random.stateless_uniform(tf.shape(batch[0]), seed=s)
                                  < batch[0], tf.float32), batch[1]),
        num_parallel_calls=PARALLEL_CALLS)
