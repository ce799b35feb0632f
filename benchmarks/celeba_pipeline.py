"""Input pipeline against training step: is JPEG decoding off the critical path?

    python benchmarks/celeba_pipeline.py --data_dir=/path/to/celeba [--steps=30]

Builds the CelebA image cache from scratch in a temporary folder (the one-time
cost: decode, crop, resize, in one thread per core), then prints
  - the cache build time and its images/s (what decoding every epoch would give),
  - the training pipeline's images/s reading the cache (a second pass, as in epoch 2),
  - the training step's images/s on a batch already in memory (flags/celeba.cfg model).
The pipeline should be many times faster than the step. Any training flag can be
added (e.g. --batch_size, --conv_channels) to change the setting.
"""

import glob
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.run.tfenv import set_tensorflow_defaults  # noqa: E402

set_tensorflow_defaults()  # before TensorFlow loads, as every command does
from vae_tf import datasets  # noqa: E402
from vae_tf.datasets.pipeline import make_batches  # noqa: E402
from vae_tf.flag_defs import config_from_flags, define_flags  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_integer("steps", 30, "Training steps timed (after a warm-up of 5).", lower_bound=1)


def images_per_second(batches, batch_size: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in batches)
    return count * batch_size / (time.perf_counter() - start)


def main(argv):
    import keras
    import tensorflow as tf
    from vae_tf.models.build import build_vae

    cache_dir = tempfile.mkdtemp(prefix="vae_tf_bench_cache_")
    try:
        config = config_from_flags().replace(cache_dir=cache_dir)
        start = time.perf_counter()
        data = datasets.load(config)
        load_seconds = time.perf_counter() - start
        (manifest_path,) = glob.glob(os.path.join(cache_dir, "*", "manifest.json"))
        with open(manifest_path) as f:
            manifest = json.load(f)
        build, files = manifest["build_seconds"], manifest["files"]
        print(f"cache build (one time, {os.cpu_count()} threads): {files} files in {build:.1f} s "
              f"({files / build:,.0f} images/s decoded, cropped, resized); the load, with "
              f"listing the folder, took {load_seconds:.1f} s; {data.num_train} train / "
              f"{data.num_test} test images of {data.image_shape}")

        train_ds = make_batches(data, config, training=True)
        first = images_per_second(train_ds, config.batch_size)
        cached = images_per_second(train_ds, config.batch_size)
        print(f"pipeline, first pass: {first:,.0f} images/s; second pass (epoch 2, "
              f"cached): {cached:,.0f} images/s")

        keras.utils.set_random_seed(config.seed)
        model = build_vae(config, data.image_shape)
        batch = next(iter(train_ds))
        in_memory = tf.data.Dataset.from_tensors(batch).repeat()
        model.fit(in_memory, steps_per_epoch=5, epochs=1, verbose=0)  # traces the step
        start = time.perf_counter()
        model.fit(in_memory, steps_per_epoch=flags.FLAGS.steps, epochs=1, verbose=0)
        step = flags.FLAGS.steps * config.batch_size / (time.perf_counter() - start)
        print(f"training step ({','.join(map(str, config.conv_channels))} conv, batch "
              f"{config.batch_size}): {step:,.0f} images/s")
        print(f"summary: pipeline {cached:,.0f} images/s vs step {step:,.0f} images/s "
              f"({cached / step:.0f}x); one-time cache build {build:.1f} s "
              f"({files / build:,.0f} images/s, what decoding every epoch would give)")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    argv = (sys.argv[:1] + [f"--flagfile={os.path.join(REPO, 'flags', 'celeba.cfg')}"]
            + sys.argv[1:])
    app.run(main, argv=argv)
