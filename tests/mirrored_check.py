"""Run by test_distribute.py in a fresh process: logical devices must be set up
before TensorFlow initialises.

Splits the CPU into two logical devices and prints, as JSON, how one SGD update
of the architecture named by the first argument (default conv)
under MirroredStrategy compares with the single-device update on the same batch
(the latent noise fixed so that both see the same z), and what the latent noise
looks like on each replica, and how many steps the model counted.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vae_tf.config import Config  # noqa: E402
from vae_tf.models.build import build_vae
from vae_tf.models.vae import VAE  # noqa: E402

SHAPE = (16, 16, 1)
BATCH = 8


def fixed_noise(self, shape):
    """The same eps for every example, so the split of the batch cannot change z."""
    return tf.broadcast_to(tf.sin(1.0 + tf.range(shape[-1], dtype=tf.float32)), shape)


def one_update(model, images):
    # SGD, unlike Adam, passes the gradient's scale straight into the update, so a
    # wrong replica reduction shows as a wrong step size.
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0,
                        shuffle=False)
    after = [w.numpy() for w in model.trainable_weights]
    return [a - b for a, b in zip(after, before)], history.history["loss"][0]


def main(architecture="conv"):
    # float32: the two updates are compared at a float32 tolerance.
    config = Config(dataset="synthetic", latent_dim=4, conv_channels=(4, 8), batch_size=BATCH,
                    precision="float32")
    if architecture == "hierarchical":
        config = config.replace(architecture=architecture, conv_channels=(4,),
                                hierarchy="1x1,4x1,8x1", blocks_per_stage=1)
    keras.utils.set_random_seed(0)
    images = tf.constant(np.random.default_rng(0).random((BATCH, *SHAPE), dtype=np.float32))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    real_noise = VAE.noise
    VAE.noise = fixed_noise
    single = build_vae(config, SHAPE)
    with strategy.scope():
        mirrored = build_vae(config, SHAPE)
        mirrored.set_weights(single.get_weights())
    single_step, single_loss = one_update(single, images)
    with strategy.scope():
        mirrored_step, mirrored_loss = one_update(mirrored, images)
    VAE.noise = real_noise

    # The seeded generator under the strategy: one draw per replica.
    with strategy.scope():
        model = build_vae(config, SHAPE)
    noise = strategy.run(tf.function(lambda: model.noise(tf.constant([2, 3]))))
    per_replica = [v.numpy() for v in strategy.experimental_local_results(noise)]

    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single_step, mirrored_step))
    size = max(float(np.max(np.abs(a))) for a in single_step)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "max_update": size, "max_update_difference": diff,
        "single_loss": float(single_loss), "mirrored_loss": float(mirrored_loss),
        "single_steps": int(single.training_steps.numpy()),
        "mirrored_steps": int(mirrored.training_steps.numpy()),
        "noise_replicas_differ": bool(np.abs(per_replica[0] - per_replica[1]).max() > 1e-3),
        "noise_finite": bool(all(np.isfinite(v).all() for v in per_replica)),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
