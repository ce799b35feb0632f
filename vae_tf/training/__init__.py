"""What fit() runs: the training run, its callbacks, checkpoints and the SavedModel export."""
