"""tf.distribute for --strategy, and which worker writes the run's files.

  default       one device (TensorFlow's default strategy)
  mirrored      tf.distribute.MirroredStrategy over every local GPU (or the CPU)
  multi_worker  tf.distribute.MultiWorkerMirroredStrategy; each process reads its
                place in the cluster from the TF_CONFIG environment variable

Under every strategy `fit` splits the global batch across replicas and sums the
gradients (the VAE divides its loss by the number of replicas to match the
single-device update); only the chief writes the run directory.
"""

import tempfile

import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named by --strategy.

    MultiWorkerMirroredStrategy configures TensorFlow's collective ops, which is
    only possible before anything else runs a TensorFlow op: call this first.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (TensorFlow's own notion of the
    chief: the 'chief' task, else worker 0; always true on one machine)."""
    return strategy.extended.should_checkpoint


def worker_write_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """Where this process writes: the run directory on the chief; a fresh temporary
    folder on other workers, which still run every callback and the export (their
    steps can hold collective ops the chief waits for) but must not write the
    chief's files (Keras' multi-worker guide does the same)."""
    if is_chief(strategy):
        return run_dir
    task = strategy.cluster_resolver.task_id
    return tempfile.mkdtemp(prefix=f"vae_tf_worker{task}_")



def across_workers() -> bool:
    """Whether the current strategy has replicas in other processes."""
    strategy = tf.distribute.get_strategy()
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices))
