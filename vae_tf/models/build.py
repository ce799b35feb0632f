"""Building a run's model from its Config: the flat VAE (or autoencoder) or the
hierarchy, with its KL schedule and penalty, optimizer and dtype policy."""

import contextlib

import keras
import tensorflow as tf

from vae_tf.config import Config
from vae_tf.models import hierarchical
from vae_tf.models import kl as kl_lib
from vae_tf.models import optimizer as optimizer_lib
from vae_tf.models import vae as flat
from vae_tf.run import tfenv


@contextlib.contextmanager
def compute_precision(config: Config):
    """Layers created inside take the dtype policy of --precision ('auto' resolved
    for this machine and --jit_compile); the global policy is restored afterwards, so
    other models made in this process are unaffected. float32 leaves the caller's
    policy in force (the gradient check builds in float64)."""
    precision = tfenv.resolve_precision(config.precision, config.jit_compile)
    if precision == "float32":
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_vae(config: Config, image_shape, total_steps: int = None) -> flat.VAE:
    """A compiled, built VAE (built so that export, checkpoints and resume work);
    an `Autoencoder` for --model=ae.

    The KL weight schedule and penalty come from `config`; `total_steps`, the run's
    number of training steps, sets the cyclical schedule's period. Call it inside
    `strategy.scope()` to train under tf.distribute.
    """
    if config.architecture == "hierarchical":
        model_class = hierarchical.HierarchicalVAE
        # Free bits per group: the floor per latent dimension times the group's size.
        sizes = hierarchical.Hierarchy(config, image_shape).group_sizes()
    else:
        model_class, sizes = (flat.Autoencoder if config.model == "ae" else flat.VAE), None
    kl_parts = dict(kl_schedule=kl_lib.weight_schedule(config, total_steps),
                    kl_penalty=kl_lib.penalty(config, sizes))
    with compute_precision(config):
        model = model_class(config, image_shape, **kl_parts)
    # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer.
    model.compile(optimizer=optimizer_lib.build(config, total_steps),
                  jit_compile=config.jit_compile)
    model(tf.zeros((1, *image_shape)))
    # Built now, not at the first step: a skipped update (tf.cond) cannot create
    # the optimizer's variables, and checkpoints load into them.
    model.optimizer.build(model.trainable_variables)
    return model
