"""Where an epoch goes: its training steps, the validation loss, and each callback's
work after the epoch (the sampling prior's fit, active units, the grids, the report,
the checkpoint), in seconds, one column per epoch.

    python benchmarks/epoch_end.py --flagfile=flags/celeba_hierarchical.cfg \\
        --data_dir=/path/to/celeba --epochs=2 --steps_per_epoch=150 --output_dir=/tmp/epoch_end

Takes every training flag and trains a real run (into --output_dir, a new run
directory each time). The first epoch holds the tracing of every traced call; read
the second. The figures of docs/speed.md's end-of-epoch table come from the command
above.
"""

import os
import sys
import time
from collections import defaultdict

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.run.tfenv import set_tensorflow_defaults  # noqa: E402

set_tensorflow_defaults()  # before TensorFlow loads, as every command does
from vae_tf.flag_defs import config_from_flags, define_flags  # noqa: E402


def timed_callbacks(seconds):
    """make_callbacks, with each callback's on_epoch_end timed into `seconds[name]`,
    and a first callback that times the epoch's steps and its validation loss."""
    import keras

    from vae_tf.training import callbacks as callbacks_lib

    make_callbacks = callbacks_lib.make_callbacks

    class StepsAndValidation(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_test_begin(self, logs=None):
            seconds["training steps"].append(time.perf_counter() - self.start)
            self.start = time.perf_counter()

        def on_test_end(self, logs=None):
            seconds["validation loss"].append(time.perf_counter() - self.start)

    def timed(*args, **kwargs):
        callbacks, nan_guard = make_callbacks(*args, **kwargs)
        for callback in callbacks:
            def on_epoch_end(epoch, logs=None, inner=callback.on_epoch_end,
                             name=type(callback).__name__):
                start = time.perf_counter()
                inner(epoch, logs)
                seconds[name].append(time.perf_counter() - start)
            callback.on_epoch_end = on_epoch_end
        return [StepsAndValidation(), *callbacks], nan_guard

    return timed


def main(argv):
    from vae_tf.training import callbacks as callbacks_lib
    from vae_tf.training import fit

    config = config_from_flags()
    seconds = defaultdict(list)
    callbacks_lib.make_callbacks = timed_callbacks(seconds)
    result = fit.run(config)
    print(f"run {result['run_dir']}: seconds per epoch")
    for name, values in seconds.items():
        print(f"  {name:22s}" + "".join(f"{v:8.1f}" for v in values))
    after = [sum(v[e] for name, v in seconds.items() if name != "training steps")
             for e in range(len(seconds["training steps"]))]
    print(f"  {'all after the steps':22s}" + "".join(f"{v:8.1f}" for v in after))


if __name__ == "__main__":
    define_flags()
    app.run(main)
