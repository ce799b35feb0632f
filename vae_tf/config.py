"""Every setting of a run, in one frozen dataclass.

The absl flag, the `Config` field and the key in `config.json` share one name
(see `vae_tf/flags.py`, which builds the flags from the field metadata below).
This module imports neither TensorFlow nor absl, so it is cheap to use anywhere.
"""

import dataclasses
import json
from typing import Any, Optional, Tuple

DATASETS = ("synthetic", "mnist", "fashion_mnist")
RECON_LOSSES = ("bernoulli", "gaussian", "laplace")
LEARN_SCALE = ("none", "shared", "channel", "pixel")
ARCHITECTURES = ("conv", "dense")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "swish")
BINARIZE = ("none", "dynamic")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multi_worker")


def _field(default, help, enum=None, lower=None, upper=None):
    """A dataclass field whose metadata becomes the absl flag's help and bounds."""
    meta = {"help": help, "enum": enum, "lower": lower, "upper": upper}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one training run. Validated on construction."""

    # Data.
    dataset: str = _field("fashion_mnist", "Dataset to train on.", enum=DATASETS)
    data_dir: str = _field(
        "", "Local folder holding the dataset's files. When empty, the usual "
        "places are searched, then tensorflow-datasets.")
    binarize: str = _field(
        "none", "Binarization of pixel intensities: 'dynamic' resamples Bernoulli "
        "pixels each time a training image is seen and binarizes the test split "
        "once with a fixed seed (the standard MNIST likelihood benchmark).",
        enum=BINARIZE)

    # Where the run writes.
    output_dir: str = _field("outputs", "Folder under which each run gets its own directory.")
    run_name: str = _field(
        "", "Name of the run directory under --output_dir. When empty, an unfinished "
        "run with the same settings is resumed, or a new name is made from the "
        "dataset and the time.")

    # Optimisation.
    epochs: int = _field(10, "Number of training epochs (passes, or --steps_per_epoch steps each).", lower=1)
    steps_per_epoch: int = _field(
        0, "Training steps per epoch; 0 means one full pass over the training split.", lower=0)
    eval_steps: int = _field(
        0, "Test batches evaluated after each epoch; 0 means the whole test split.", lower=0)
    batch_size: int = _field(128, "Global batch size (images per training step).", lower=1)
    learning_rate: float = _field(1e-3, "Learning rate of the Adam optimizer.", lower=0.0)
    seed: int = _field(0, "Seed for weights, data order, binarization and latent noise.")
    jit_compile: bool = _field(False, "Compile the training step with XLA.")

    # Architecture.
    architecture: str = _field(
        "conv", "Network family: 'conv' (stride-2 convolutions mirrored by stride-2 "
        "transposed convolutions) or 'dense' (MLP, for small images).", enum=ARCHITECTURES)
    latent_dim: int = _field(16, "Dimension of the latent code z.", lower=1)
    conv_channels: Tuple[int, ...] = _field(
        (32, 64), "Comma list of encoder channels, one stride-2 convolution each; the "
        "decoder mirrors them with stride-2 transposed convolutions.")
    kernel_size: int = _field(4, "Convolution kernel size.", lower=1)
    dense_units: Tuple[int, ...] = _field(
        (512,), "Comma list of hidden layer widths for --architecture=dense "
        "(the decoder mirrors them).")
    activation: str = _field("relu", "Hidden-layer activation.", enum=ACTIVATIONS)

    # Objective.
    recon_loss: str = _field(
        "bernoulli", "Reconstruction likelihood p(x|z): 'bernoulli' (BCE on logits), "
        "'gaussian' (squared error) or 'laplace' (absolute error).", enum=RECON_LOSSES)
    recon_scale: float = _field(
        0.1, "Fixed scale of the gaussian (sigma) or laplace (b) likelihood, in pixel "
        "units of [0, 1] images; the initial value when the scale is learned.", lower=1e-6)
    learn_scale: str = _field(
        "none", "Learn the gaussian/laplace scale: 'shared' (one value), 'channel' "
        "(one per channel) or 'pixel' (one per pixel and channel).", enum=LEARN_SCALE)
    kl_weight: float = _field(1.0, "Weight beta of the KL term (1 gives the ELBO).", lower=0.0)
    kl_warmup_steps: int = _field(
        0, "Steps of linear warm-up of the KL weight from 0 to --kl_weight; 0 disables it.",
        lower=0)

    # Speed and scale (issue 6).
    precision: str = _field(
        "float32", "Keras dtype policy: 'mixed_bfloat16' or 'mixed_float16' compute in 16 "
        "bits with float32 weights (mixed_float16 adds dynamic loss scaling); the ELBO "
        "is always summed in float32.", enum=PRECISIONS)
    strategy: str = _field(
        "default", "tf.distribute strategy: 'default' (one device), 'mirrored' (every "
        "local GPU, or CPU) or 'multi_worker' (several machines, described by the "
        "TF_CONFIG environment variable; needs --run_name). --batch_size is the global "
        "batch, split across replicas.", enum=STRATEGIES)

    # Monitoring.
    grid_size: int = _field(
        8, "Rows and columns of the image grids saved each epoch.", lower=1, upper=32)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if meta.get("enum") and value not in meta["enum"]:
                raise ValueError(
                    f"--{f.name}={value!r} is not one of {', '.join(meta['enum'])}.")
            if meta.get("lower") is not None and value < meta["lower"]:
                raise ValueError(f"--{f.name}={value} must be >= {meta['lower']}.")
            if meta.get("upper") is not None and value > meta["upper"]:
                raise ValueError(f"--{f.name}={value} must be <= {meta['upper']}.")
        for name in ("conv_channels", "dense_units"):
            value = tuple(int(v) for v in getattr(self, name))
            if not value or min(value) < 1:
                raise ValueError(f"--{name} must be a non-empty comma list of positive integers.")
            object.__setattr__(self, name, value)
        if self.strategy == "multi_worker" and not self.run_name:
            raise ValueError("--strategy=multi_worker needs --run_name, the same on every "
                             "worker, so that all of them train the same run.")
        if self.learn_scale != "none" and self.recon_loss == "bernoulli":
            raise ValueError("--learn_scale applies to --recon_loss=gaussian or laplace, "
                             "not bernoulli.")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Builds a Config from a dict such as a run's config.json (unknown keys rejected)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown settings in config: {', '.join(unknown)}.")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path: str) -> "Config":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def differences(self, other: "Config", ignore=("run_name",)) -> list:
        """Names of settings that differ from `other` (for resume checks)."""
        return [f.name for f in dataclasses.fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def field_metadata(name: str) -> Optional[dict]:
    for f in dataclasses.fields(Config):
        if f.name == name:
            return dict(f.metadata)
    return None
