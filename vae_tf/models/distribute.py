"""tf.distribute for --strategy, and which worker writes the run's files.

  default       one device (TensorFlow's default strategy)
  mirrored      tf.distribute.MirroredStrategy over every local GPU (or the CPU)
  multi_worker  tf.distribute.MultiWorkerMirroredStrategy; each process reads its
                place in the cluster from the TF_CONFIG environment variable

Under every strategy `fit` splits the global batch across replicas and sums the
gradients (the VAE divides its loss by the number of replicas to match the
single-device update); only the chief writes the run directory. The training step's
replica mechanics (its loss share, per-replica noise, the gradient norm, a skipped
update taken by all replicas together) live here too.
"""

import tempfile

import keras
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


# -- what a training step needs from the replicas ----------------------------------
def replica_share(loss: tf.Tensor) -> tf.Tensor:
    """The loss a replica differentiates: fit() sums gradients over replicas, so each
    takes its share, and an update under tf.distribute equals the single-device one."""
    return loss / tf.distribute.get_strategy().num_replicas_in_sync


def replica_noise(shape, seed_generator: keras.random.SeedGenerator) -> tf.Tensor:
    """Standard-normal noise of `shape` from a seeded generator.

    Under tf.distribute every replica holds the same generator state and would
    draw the same numbers, so each takes its own slice of one draw for all.
    """
    replicas = tf.distribute.get_replica_context()
    if replicas is None or replicas.num_replicas_in_sync == 1:
        return keras.random.normal(shape, seed=seed_generator)
    draws = keras.random.normal(tf.concat([[replicas.num_replicas_in_sync], shape], 0),
                                seed=seed_generator)
    return draws[replicas.replica_id_in_sync_group]


def global_norm(grads, optimizer) -> tf.Tensor:
    """The gradients' global norm in the units of the objective: without the loss
    scale of mixed_float16 and the division by the replicas (replica_share)."""
    norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads])
    norm *= tf.distribute.get_strategy().num_replicas_in_sync
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        norm /= tf.cast(optimizer.scale_loss(tf.constant(1.0)), tf.float32)
    return norm


def on_every_replica(flag: tf.Tensor) -> tf.Tensor:
    """True only if `flag` is true on every replica, so that all decide together."""
    replicas = tf.distribute.get_replica_context()
    if replicas is None or replicas.num_replicas_in_sync == 1:
        return flag
    return replicas.all_reduce("MIN", tf.cast(flag, tf.float32)) > 0.5


def apply_gradients_if(apply: tf.Tensor, optimizer, grads, variables) -> None:
    """Applies `grads` to `variables` where `apply` (the same on every replica) is true.

    Under tf.distribute an update synchronizes the replicas, which TensorFlow
    does not allow inside a tf.cond taken in one replica; as Keras'
    LossScaleOptimizer does when it skips non-finite steps, the cond is taken
    once for all replicas and each applies its gradients in its branch.
    """
    def update(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if (not tf.distribute.has_strategy()
            or tf.__internal__.distribute.strategy_supports_no_merge_call()):
        tf.cond(apply, lambda: update(grads), lambda: None)
        return

    def for_all_replicas(strategy, apply, grads):
        apply = strategy.experimental_local_results(apply)[0]
        tf.cond(apply, lambda: strategy.extended.call_for_each_replica(update, args=(grads,)),
                lambda: None)

    tf.distribute.get_replica_context().merge_call(for_all_replicas, args=(apply, grads))


def reducible_logs(logs: dict) -> dict:
    """A train or test step's logs in the shape fit() can average across workers.

    Keras 3's fit averages the logs across workers over their axis 0, which fails on
    scalars ("Invalid reduction dimension", tensorflow#72388). Metrics' variables are
    already summed over all replicas, so every replica holds the same value, and a
    [1]-shaped copy averages back to it.
    """
    if not across_workers():
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
