"""Runs compared at equal wall-clock training time, from their metrics.csv.

    python benchmarks/equal_time.py outputs/<new run> outputs/<old run> [...]

For each run: its epochs, its training time (the sum of the logged epoch_seconds:
training, the validation loss and the per-epoch callbacks), and its last validation loss;
then every run's validation loss at the epoch that ended closest to (not after) the
shortest run's total time. Losses are nats per image; bits per dimension are
exact for discrete likelihoods. For a density on [0, 1] pixels (gaussian, laplace)
bits/dim are given as the density times the 1/255 width of an 8-bit bin, marked
"~": the usual conversion, close where the density is smooth at that scale.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vae_tf.models import likelihoods  # noqa: E402
from vae_tf.run import rundir


def bits_per_dim(loss: float, config, dims: int) -> str:
    if likelihoods.describe(config)[1]:
        return f"{loss / (dims * math.log(2)):.3f}"
    return f"~{(loss + dims * math.log(255)) / (dims * math.log(2)):.3f}"


def main(paths):
    runs = []
    for path in paths:
        run = rundir.RunDir(path)
        config, rows = run.read_config(), run.read_metrics()
        if not rows or "epoch_seconds" not in rows[0]:
            sys.exit(f"error: {path} has no metrics with epoch_seconds.")
        elapsed = [sum(r["epoch_seconds"] for r in rows[:i + 1]) for i in range(len(rows))]
        runs.append((path, config, rows, elapsed))
    budget = min(elapsed[-1] for _, _, _, elapsed in runs)
    print(f"equal time: {budget / 60:.1f} min (the shortest run)")
    for path, config, rows, elapsed in runs:
        dims = _dims(config, path)
        at = max(i for i, t in enumerate(elapsed) if t <= budget + 1e-6)
        last, same = rows[-1], rows[at]
        print(f"{path}: {config.architecture}/{config.recon_loss}, {len(rows)} epochs in "
              f"{elapsed[-1] / 60:.1f} min, validation loss {last['val_loss']:.1f} nats "
              f"({bits_per_dim(last['val_loss'], config, dims)} bits/dim); at "
              f"{elapsed[at] / 60:.1f} min (epoch {int(same['epoch'])}): "
              f"{same['val_loss']:.1f} nats ({bits_per_dim(same['val_loss'], config, dims)} "
              "bits/dim)")


def _dims(config, path) -> int:
    """Pixels times channels of the run's images, from its SavedModel's signature."""
    import tensorflow as tf

    encode = tf.saved_model.load(os.path.join(path, rundir.SAVED_MODEL)).signatures["encode"]
    return math.prod(encode.structured_input_signature[1]["images"].shape[1:])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
