"""What the moving average of the weights (--ema_momentum) buys: each checkpoint's
test loss with the averaged weights and with the raw ones.

    python benchmarks/ema_effect.py outputs/<run trained with --ema_momentum>

A checkpoint holds both (the averages as the model's weights, the raw weights in
the optimizer), so one run gives the comparison at every epoch but the last: after
the last epoch Keras keeps only the averages. Prints nats per
image, and bits/dim for discrete likelihoods, on the whole test split.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.run.tfenv import import_tensorflow  # noqa: E402


def main(path):
    import_tensorflow()
    from vae_tf import datasets
    from vae_tf.models import optimizer
    from vae_tf.run import rundir
    from vae_tf.datasets.pipeline import make_batches
    from vae_tf.training.checkpoints import load_vae

    run = rundir.RunDir(path)
    config = run.read_config()
    if config.ema_momentum == 0:
        sys.exit(f"error: {path} was trained without --ema_momentum.")
    test = make_batches(datasets.load(config), config, training=False)
    for epoch, _ in sorted(run.checkpoints())[:-1]:
        model = load_vae(path, epoch)
        bits = math.prod(model.image_shape) * math.log(2)
        averaged = model.evaluate(test, verbose=0, return_dict=True)["loss"]
        swap = optimizer.EMAWeights(restored=True)  # averages in the model: swap back
        swap.set_model(model)
        swap.on_epoch_begin(0)
        raw = model.evaluate(test, verbose=0, return_dict=True)["loss"]
        print(f"epoch {epoch:3d}: test loss with averaged weights {averaged:10.1f} nats "
              f"({averaged / bits:.3f} bits/dim), raw weights {raw:10.1f} "
              f"({raw / bits:.3f}); difference {raw - averaged:+.1f} nats")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
