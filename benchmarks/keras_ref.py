"""Plain Keras 3 reference for benchmarks/compare.py: the project's conv VAE written as
the keras.io example writes a VAE (a subclassed keras.Model with its own train_step,
trained with fit), without any of the project's code.

    python benchmarks/keras_ref.py --size 64 --channels 32,64,128,256 --latent 128 \\
        --batch 64 --steps 30 [--warmup 5] [--threads N] [--jit] [--bf16]
    python benchmarks/keras_ref.py --size 64 --channels 32,64,128,256 --latent 128 --print_params

The network is the project's `--architecture=conv --kernel_size=4 --activation=relu`:
per entry of --channels Conv2D(c, 4, strides=2, padding="same", activation="relu");
flatten; Dense(2 * latent) (mean and log-variance). The decoder mirrors it: Dense with
ReLU to the smallest feature map, Conv2DTranspose(c, 4, strides=2, padding="same")
with ReLU, the last one to 3 channels, cropped back to --size when that is not a
multiple of 2 ** len(channels).

Protocol (as torch_ref.py and the project's throughput.py): 8 * --batch random images
uniform in [0, 1] (not binarized) held in memory, cycled by a tf.data pipeline; the
loss is the negative ELBO, a Bernoulli likelihood (sigmoid cross-entropy on logits
summed over pixels) plus the analytic Gaussian KL summed over latents, averaged over
the batch; Adam, learning rate 1e-3; seed 0. One fit of --warmup + --steps steps; a
callback times the --steps steps after the warm-up, from the start of the first to
the end of the last (so neither tracing nor the end of fit counts). Prints a line
saying what ran, then `images_per_s=<float>`. --jit compiles the step with XLA,
--bf16 sets the mixed_bfloat16 policy (the loss stays float32), --threads sets
TensorFlow's intra-op threads. TensorFlow's other settings are left at its defaults,
as a plain user would run it.
"""

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

import ref_protocol  # noqa: E402  benchmarks/, beside this script

IMAGE_CHANNELS = 3


def build_networks(size, channels, latent):
    images = keras.Input((size, size, IMAGE_CHANNELS))
    h = images
    for c in channels:
        h = layers.Conv2D(c, 4, strides=2, padding="same", activation="relu")(h)
    side = h.shape[1]
    encoder = keras.Model(images, layers.Dense(2 * latent)(layers.Flatten()(h)), name="encoder")

    z = keras.Input((latent,))
    h = layers.Dense(side * side * channels[-1], activation="relu")(z)
    h = layers.Reshape((side, side, channels[-1]))(h)
    for c in reversed(channels[:-1]):
        h = layers.Conv2DTranspose(c, 4, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(IMAGE_CHANNELS, 4, strides=2, padding="same")(h)
    extra = side * 2 ** len(channels) - size
    if extra:
        h = layers.Cropping2D((extra // 2, extra - extra // 2))(h)
    return encoder, keras.Model(z, h, name="decoder")


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.noise_seed = keras.random.SeedGenerator(0)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, images):
        with tf.GradientTape() as tape:
            mean, logvar = ops.split(ops.cast(self.encoder(images), "float32"), 2, axis=-1)
            noise = keras.random.normal(ops.shape(mean), seed=self.noise_seed)
            z = mean + ops.exp(0.5 * logvar) * noise
            logits = ops.cast(self.decoder(z), "float32")
            nll = ops.sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits),
                          axis=(1, 2, 3))
            kl = 0.5 * ops.sum(ops.square(mean) + ops.exp(logvar) - 1.0 - logvar, axis=1)
            loss = ops.mean(nll + kl)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


class StepTimer(keras.callbacks.Callback):
    """Wall seconds from the start of step `first` to the end of step `last`."""

    def __init__(self, first, last):
        super().__init__()
        self.first, self.last, self.seconds = first, last, None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.first:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last:
            float(logs["loss"])  # the step's result is ready
            self.seconds = time.perf_counter() - self.start


def main():
    p = ref_protocol.parser(__doc__.split("\n\n")[0], "TensorFlow")
    p.add_argument("--jit", action="store_true", help="compile the step with XLA")
    p.add_argument("--bf16", action="store_true", help="mixed_bfloat16 dtype policy")
    a = ref_protocol.parse(p)

    if a.threads:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    if a.bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    vae = VAE(*build_networks(a.size, [int(c) for c in a.channels.split(",")], a.latent))
    if a.print_params:
        print(f"params={sum(math.prod(w.shape) for w in vae.trainable_weights)}")
        return
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), jit_compile=a.jit)

    images = np.random.default_rng(0).random((8 * a.batch, a.size, a.size, IMAGE_CHANNELS),
                                             dtype=np.float32)
    data = (tf.data.Dataset.from_tensor_slices(images).repeat()
            .batch(a.batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    timer = StepTimer(a.warmup, a.warmup + a.steps - 1)
    vae.fit(data, epochs=1, steps_per_epoch=a.warmup + a.steps, verbose=0, shuffle=False,
            callbacks=[timer])
    print(f"keras_ref: keras {keras.__version__}, tensorflow {tf.__version__}, jit={a.jit}, "
          f"bf16={a.bf16}; {a.steps} steps of batch {a.batch} at "
          f"{a.size}x{a.size}x{IMAGE_CHANNELS} in {timer.seconds:.2f} s")
    print(f"images_per_s={a.steps * a.batch / timer.seconds:.1f}")


if __name__ == "__main__":
    main()
