"""Quality at a fixed training budget: the MNIST config's test negative ELBO.

    python benchmarks/mnist_elbo.py --data_dir=/path/to/mnist [--epochs=5]

Trains flags/mnist.cfg (dynamically binarized MNIST, Bernoulli likelihood) for the
given budget and prints the test negative ELBO in nats per image (a bound on
-log p(x); lower is better), computed on the fixed binarization of the full
10,000-image test split. Any training flag can be added to change the setting.
"""

import os
import sys
import time

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.run.tfenv import set_tensorflow_defaults  # noqa: E402

set_tensorflow_defaults()  # before TensorFlow loads, as every command does
from vae_tf.flag_defs import config_from_flags, define_flags  # noqa: E402
from vae_tf import train  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    config = config_from_flags().replace(eval_steps=0)
    start = time.perf_counter()
    result = train.run(config)
    seconds = time.perf_counter() - start
    print(f"mnist_elbo: {config.epochs} epochs x "
          f"{config.steps_per_epoch or 'full'} steps, batch {config.batch_size}, "
          f"{seconds:.0f} s")
    print(f"test negative ELBO: {result['val_loss']:.2f} nats per image "
          f"(reconstruction {result['val_reconstruction']:.2f}, KL {result['val_kl']:.2f}); "
          f"train {result['loss']:.2f}; run {result['run_dir']}")


if __name__ == "__main__":
    define_flags()
    # The budget and output place come after the flagfile so that they override it,
    # and before the user's flags so that those override both.
    argv = (sys.argv[:1] + [f"--flagfile={os.path.join(REPO, 'flags', 'mnist.cfg')}",
                            "--epochs=5", f"--output_dir={os.path.join(REPO, 'outputs', 'benchmarks')}"]
            + sys.argv[1:])
    app.run(main, argv=argv)
