"""The optimizer of a run: Adam with the learning-rate schedule, gradient clipping
and the moving average of the weights that the Config asks for.

Everything here is Keras' own: `keras.optimizers.schedules.CosineDecay` (with its
linear warm-up), the optimizer's `global_clipnorm`, and its `use_ema`, whose
averages `EMAWeights` swaps into the model for evaluation, the grids, the
checkpoints and the export. Skipping outlier updates lives in the model's
train_step, which sees the gradients' norm.
"""

import keras

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


def build(config: Config, total_steps: int = None) -> keras.optimizers.Optimizer:
    """Adam as the Config sets it up; `total_steps` (the run's length) ends the decay."""
    return keras.optimizers.Adam(
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
