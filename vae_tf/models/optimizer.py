"""The optimizer of a run: Adam with the learning-rate schedule, gradient clipping
and the moving average of the weights that the Config asks for.

Everything here is Keras' own (Adam's update in TensorFlow's fused kernel):
`keras.optimizers.schedules.CosineDecay` (with its
linear warm-up), the optimizer's `global_clipnorm`, and its `use_ema`, whose
averages `EMAWeights` swaps into the model for evaluation, the grids, the
checkpoints and the export. Skipping outlier updates lives in the model's
train_step, which sees the gradients' norm.
"""

import keras
import tensorflow as tf

from vae_tf.config import Config


def learning_rate(config: Config, total_steps: int = None):
    """--learning_rate, or a schedule of it when --lr_warmup_steps or --lr_decay ask."""
    if config.lr_warmup_steps == 0 and config.lr_decay == "none":
        return config.learning_rate
    total_steps = max(1, total_steps or 1)
    decay_steps = max(1, total_steps - config.lr_warmup_steps)
    return keras.optimizers.schedules.CosineDecay(
        # With a warm-up CosineDecay starts from its initial rate and rises linearly
        # to warmup_target; alpha=1 makes the "decay" a constant.
        initial_learning_rate=0.0 if config.lr_warmup_steps else config.learning_rate,
        warmup_target=config.learning_rate if config.lr_warmup_steps else None,
        warmup_steps=config.lr_warmup_steps,
        decay_steps=decay_steps,
        alpha=0.0 if config.lr_decay == "cosine" else 1.0)


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, each variable's update made by TensorFlow's fused kernel
    (`ResourceApplyAdam`) in one pass over the variable and its two moments, where
    Keras' `update_step` runs thirteen element-wise ops, each a pass over memory.
    The formula is the same: m += (g - m)(1 - beta_1), v += (g^2 - v)(1 - beta_2),
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon). Its state is
    Keras' own (the moments, the iteration count), so checkpoints do not change.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        # tf.constant, not tf.cast: a Python float cast to float64 passes float32 first.
        beta_1, beta_2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.constant(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype))


def build(config: Config, total_steps: int = None) -> keras.optimizers.Optimizer:
    """Adam as the Config sets it up; `total_steps` (the run's length) ends the decay."""
    return FusedAdam(
        learning_rate(config, total_steps),
        global_clipnorm=config.grad_clip or None,
        use_ema=config.ema_momentum > 0,
        ema_momentum=config.ema_momentum or 0.99)


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights with the averages in the model from each epoch's end to
    the next epoch's start, so that the test loss, the grids, the checkpoint and the
    export see them.

    A checkpoint therefore holds the averages as the model's weights and the raw
    weights as the optimizer's averages; `restored=True` says the model was just
    loaded from one, so that training swaps them back before its first step. After
    the last epoch Keras copies the averages over the raw weights (its finalize
    step), so the last checkpoint and the export hold the averages only.
    """

    def __init__(self, restored: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = restored
