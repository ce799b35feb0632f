"""Every setting of a run, in one frozen dataclass.

The absl flag, the `Config` field and the key in `config.json` share one name
(see `vae_tf/flag_defs.py`, which builds the flags from the field metadata below).
This module imports neither TensorFlow nor absl, so it is cheap to use anywhere.
"""

import dataclasses
import json
from typing import Any, List, Tuple

from vae_tf import registry


DATASETS = registry.DATASETS.names()
# Datasets read from image files: decoded, cropped and resized once into a cache.
IMAGE_FILE_DATASETS = ("celeba", "folder")
RECON_LOSSES = registry.LIKELIHOODS.names()
# The likelihoods with a scale parameter that --learn_scale may learn.
SCALED_LOSSES = ("gaussian", "laplace")
LEARN_SCALE = ("none", "shared", "channel", "pixel")
ARCHITECTURES = registry.ARCHITECTURES.names()
SAMPLE_PRIORS = ("standard", "fitted")
NORMALIZATIONS = ("none", "batch", "group")
LR_DECAYS = ("none", "cosine")
UPSAMPLINGS = ("nearest", "bilinear")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "swish", "gelu")
BINARIZE = ("none", "dynamic")
KL_SCHEDULES = ("constant", "linear", "cyclical")
MODELS = ("vae", "ae")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
EXPORT_PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multi_worker")


def _field(default, help, enum=None, lower=None, upper=None):
    """A dataclass field whose metadata becomes the absl flag's help and bounds."""
    meta = {"help": help, "enum": enum, "lower": lower, "upper": upper}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one training run. Validated on construction."""

    # Data: what is read, and how it is prepared.
    dataset: str = _field("fashion_mnist", "Dataset to train on.", enum=DATASETS)
    data_dir: str = _field(
        "", "Local folder holding the dataset's files. When empty, the usual places are "
        "searched, then tensorflow-datasets (for a command on a trained run: the run's "
        "own --data_dir).")
    binarize: str = _field(
        "none", "Binarization of pixel intensities: 'dynamic' resamples Bernoulli "
        "pixels each time a training image is seen and binarizes the test split "
        "once with a fixed seed (the standard MNIST likelihood benchmark).",
        enum=BINARIZE)
    image_size: int = _field(
        0, "Side in pixels of the square images that image-file datasets (celeba, "
        "folder) are resized to; 0 means 64.", lower=0, upper=1024)
    crop: int = _field(
        0, "Side in source pixels of the centered square cut from each image of an "
        "image-file dataset before resizing; 0 means the dataset's default (148 for "
        "celeba, the largest centered square for folder). A box larger than an image "
        "is shrunk to its largest centered square.", lower=0)
    channels: int = _field(
        0, "Color channels of an image-file dataset: 1 (grayscale) or 3 (RGB); 0 means "
        "3 for celeba and, for folder, 1 when every image is grayscale, else 3.",
        lower=0, upper=3)
    celeba_subset: str = _field(
        "", "For --dataset=celeba with --data_dir: a file naming the images to use, one "
        "file name a line (the official split still applies); "
        "vae_tf/datasets/celeba_subset.txt names the 6,031 images of the README's CelebA "
        "figures. Empty: every image found.")
    cache_dir: str = _field(
        "", "Folder for the decoded-image cache of image-file datasets (built once per "
        "source and preprocessing); empty means $XDG_CACHE_HOME/vae_tf or ~/.cache/vae_tf.")

    # The run directory.
    output_dir: str = _field("outputs", "Folder under which each run gets its own directory.")
    run_name: str = _field(
        "", "Name of the run directory under --output_dir. When empty, an unfinished "
        "run with the same settings is resumed, or a new name is made from the "
        "dataset and the time.")

    # The model: family, networks and latent space.
    model: str = _field(
        "vae", "Model family: 'vae' (variational autoencoder) or 'ae' (the deterministic "
        "autoencoder baseline: the same encoder and decoder, the encoder's mean as the "
        "code, no sampling and no KL term).", enum=MODELS)
    architecture: str = _field(
        "conv", "Network family: 'conv' (stride-2 convolutions mirrored by stride-2 "
        "transposed convolutions), 'resnet' (stages of residual blocks, one stage per "
        "--conv_channels entry, --blocks_per_stage blocks each), 'dense' (MLP, for "
        "small images) or 'hierarchical' (a top-down hierarchy of latent groups, "
        "shaped by --hierarchy).", enum=ARCHITECTURES)
    latent_dim: int = _field(
        16, "Dimension of the latent code z (for --architecture=hierarchical: the "
        "channels of every group's latent map).", lower=1)
    hierarchy: str = _field(
        "1x1,7x2,14x2", "Groups of latent maps of --architecture=hierarchical, from the "
        "top: comma list of RESOLUTIONxGROUPS, e.g. 1x1,7x2,14x2 is one group at 1x1, "
        "two at 7x7 and two at 14x14 (resolutions reached from the image size by "
        "halving, rounded up).")
    residual_posterior: bool = _field(
        False, "Parameterize each latent group's posterior of --architecture=hierarchical "
        "relative to its prior (NVAE, Vahdat & Kautz 2020): q = N(mean_p + dmean, "
        "var_p * exp(dlogvar)), the posterior network giving dmean and dlogvar, so that "
        "a group whose posterior follows its prior costs nothing and the KL depends on "
        "the prior only through the ratio.")
    upsampling: str = _field(
        "nearest", "How the top-down path of --architecture=hierarchical enlarges its "
        "maps: 'nearest' repeats each cell, so the decoder's output shows the lowest "
        "group's cells as blocks until its convolutions learn to smooth them; "
        "'bilinear' doubles them by linear interpolation (as the skip path of NVAE's "
        "upsampling cells).",
        enum=UPSAMPLINGS)
    conv_channels: Tuple[int, ...] = _field(
        (32, 64), "Comma list of encoder channels, one stride-2 convolution each (for "
        "--architecture=resnet: the widths of its stages, each at half the resolution "
        "of the one before); the decoder mirrors them.")
    blocks_per_stage: int = _field(
        2, "Residual blocks per stage of --architecture=resnet, in the encoder and in "
        "the decoder.", lower=1)
    normalization: str = _field(
        "none", "Normalization inside the residual blocks of --architecture=resnet: "
        "'none', 'batch' (batch statistics in training, moving averages after) or "
        "'group' (per image, groups of channels).", enum=NORMALIZATIONS)
    squeeze_excite: bool = _field(
        False, "Squeeze-and-excitation in the residual blocks of --architecture=resnet "
        "and hierarchical (Hu et al. 2018; NVAE's cells): each block's output channels "
        "scaled by a gate in (0, 1) computed from their means over the map.")
    kernel_size: int = _field(4, "Convolution kernel size.", lower=1)
    dense_units: Tuple[int, ...] = _field(
        (512,), "Comma list of hidden layer widths for --architecture=dense "
        "(the decoder mirrors them).")
    activation: str = _field("relu", "Hidden-layer activation.", enum=ACTIVATIONS)

    # The likelihood p(x|z).
    recon_loss: str = _field(
        "bernoulli", "Reconstruction likelihood p(x|z): 'bernoulli' (BCE on logits, for "
        "binary pixels), 'gaussian' (squared error) or 'laplace' (absolute error), "
        "densities of [0, 1] pixel values; or, for 8-bit images, with bits per dimension "
        "comparable with papers, 'discretized_logistic' (one logistic per channel, "
        "location and scale from the decoder) or 'discretized_mix_logistic' "
        "(PixelCNN++: --num_mixtures logistics, colour channels coupled).",
        enum=RECON_LOSSES)
    recon_scale: float = _field(
        0.1, "Fixed scale of the gaussian (sigma) or laplace (b) likelihood, in pixel "
        "units of [0, 1] images; the initial value when the scale is learned.", lower=1e-6)
    learn_scale: str = _field(
        "none", "Learn the gaussian/laplace scale: 'shared' (one value), 'channel' "
        "(one per channel) or 'pixel' (one per pixel and channel).", enum=LEARN_SCALE)
    num_mixtures: int = _field(
        10, "Mixture components per pixel of --recon_loss=discretized_mix_logistic "
        "(PixelCNN++ and VDVAE use 10).", lower=1, upper=64)

    # The KL term: its weight, schedule and penalty.
    kl_weight: float = _field(1.0, "Weight beta of the KL term (1 gives the ELBO).", lower=0.0)
    kl_schedule: str = _field(
        "constant", "How the KL weight moves over training steps: 'constant' "
        "(--kl_weight throughout), 'linear' (warm-up over --kl_warmup_steps) or "
        "'cyclical' (Fu et al. 2019: --kl_cycles cycles over the run, each rising "
        "from 0).",
        enum=KL_SCHEDULES)
    kl_warmup_steps: int = _field(
        0, "Steps of linear warm-up of the KL weight from 0 to --kl_weight, for "
        "--kl_schedule=linear (setting this flag alone selects that schedule); 0: none.",
        lower=0)
    kl_cycles: int = _field(
        4, "Number of cycles of --kl_schedule=cyclical over the whole run.", lower=1)
    kl_cycle_ramp: float = _field(
        0.5, "Proportion of each cycle of --kl_schedule=cyclical over which the KL weight "
        "rises linearly from 0 to --kl_weight; it stays there for the rest of the cycle.",
        lower=0.01, upper=1.0)
    free_bits: float = _field(
        0.0, "Free bits (Kingma et al. 2016), in nats per latent dimension: a dimension "
        "whose KL, averaged over the batch, is below this floor is not penalized (and "
        "gets no KL gradient); 0 disables it.", lower=0.0)
    kl_balance: bool = _field(
        False, "KL balancing of a hierarchical VAE (Vahdat & Kautz 2020, NVAE): while the "
        "KL weight is below 1 (its warm-up), each latent group's KL is weighted by the "
        "group's batch-mean KL per latent dimension, the weights normalized to a mean of "
        "1, so that groups holding few nats per dimension cost less and are used. The "
        "reported ELBO is unchanged.")
    kl_capacity: float = _field(
        0.0, "Target capacity C in nats of the capacity-annealed beta-VAE (Burgess et al. "
        "2018): the KL term becomes --kl_weight * |KL - C(t)|; 0 disables it.", lower=0.0)
    kl_capacity_steps: int = _field(
        0, "Steps over which the capacity C(t) rises linearly from 0 to --kl_capacity; "
        "0 holds it at --kl_capacity from the start.", lower=0)

    # Optimisation.
    epochs: int = _field(10, "Number of training epochs (passes, or --steps_per_epoch steps each).", lower=1)
    steps_per_epoch: int = _field(
        0, "Training steps per epoch; 0 means one full pass over the training split.", lower=0)
    batch_size: int = _field(128, "Global batch size (images per training step).", lower=1)
    learning_rate: float = _field(1e-3, "Learning rate of the Adam optimizer.", lower=0.0)
    lr_warmup_steps: int = _field(
        0, "Steps over which the learning rate rises linearly from 0 to "
        "--learning_rate; 0: none.", lower=0)
    lr_decay: str = _field(
        "none", "Learning-rate decay after the warm-up: 'none' or 'cosine' (to 0 at the "
        "run's last step).", enum=LR_DECAYS)
    grad_clip: float = _field(
        0.0, "Clip the gradients' global norm to this value before each update; 0: off.",
        lower=0.0)
    grad_skip: float = _field(
        0.0, "Skip the update of a step whose gradients' global norm (before clipping) "
        "is above this value, or not finite (VDVAE's guard against the rare outlier "
        "batch that would throw a deep VAE off); 0: off. The number skipped is logged.",
        lower=0.0)
    ema_momentum: float = _field(
        0.0, "Keep an exponential moving average of the weights with this momentum "
        "(e.g. 0.999) and use it for the validation and test losses, the grids, the checkpoints' "
        "evaluated weights and the export; 0: off.", lower=0.0, upper=0.99999)
    seed: int = _field(
        0, "Seed of every random draw: initial weights, data order, binarization and "
        "latent noise in training; the codes and importance samples the commands draw.")

    # Monitoring and evaluation during training.
    validation_size: int = _field(
        -1, "Training images held out as the validation split, which the epoch lines, "
        "metrics.csv, TensorBoard and the report evaluate after each epoch (the test split "
        "is used only by the final evaluation at the end of training and by evaluate): the "
        "last this many of the training split, the same for every run. -1: the dataset's "
        "default (celeba: its official validation split; mnist, fashion_mnist, cifar10: "
        "5000; frey: 200, the frames before the test frames; others: a tenth). 0: none, "
        "training uses the whole training split and the epochs show no held-out figure.",
        lower=-1)
    eval_steps: int = _field(
        0, "Validation batches evaluated after each epoch, and test batches at the end of "
        "training; 0 means the whole split.", lower=0)
    temperature: float = _field(
        1.0, "Standard deviation of the prior codes z ~ N(0, t^2 I) of the sample grids, "
        "and the default of the sample command on this run: below 1 trades variety "
        "for cleaner images.", lower=0.0)
    sample_prior: str = _field(
        "standard", "Where sampling draws its codes: 'standard', the prior N(0, I) the "
        "ELBO is computed with; 'fitted', a full-covariance Gaussian fitted after each "
        "epoch to the training images' posterior codes (the aggregate posterior), which "
        "avoids the regions of N(0, I) that no image's code reaches (for a hierarchy: "
        "a mixture of 20 Gaussians on the first 128 principal directions of every "
        "group's posterior means in its prior's units, so that the groups' cells are "
        "drawn coupled as a face's are). The sample grids, the sample command, FID and "
        "the export's sample and sampling_prior signatures use it; the ELBO, IWAE and "
        "bits/dim stay those of the model's own prior.", enum=SAMPLE_PRIORS)
    prior_fit_mirrored: bool = _field(
        False, "With --sample_prior=fitted, fit the sampling prior to the codes of the "
        "training images and of their left-right mirror images: twice the codes from the "
        "same images, for datasets whose mirror images are as likely as the images "
        "(faces, scenes; not digits or letters).")
    grid_size: int = _field(
        8, "Rows and columns of the image grids: those saved after each epoch, and the "
        "manifold command's grid of codes.", lower=1, upper=64)

    # Speed and scale.
    precision: str = _field(
        "auto", "Keras dtype policy: 'mixed_bfloat16' or 'mixed_float16' compute in 16 "
        "bits with float32 weights (mixed_float16 adds dynamic loss scaling); the ELBO "
        "is always summed in float32. 'auto' picks mixed_bfloat16 where the hardware "
        "computes bfloat16 natively (a GPU of compute capability 8.0 or more; a CPU "
        "with AVX-512 BF16 or AMX, unless --jit_compile, whose CPU kernels are slower "
        "in bfloat16) and float32 elsewhere.", enum=PRECISIONS)
    export_precision: str = _field(
        "float32", "Keras dtype policy the SavedModel computes in: 'float32' (the "
        "trained weights, whatever --precision trained them) serves on every CPU, GPU "
        "and TFLite; 'mixed_bfloat16' or 'mixed_float16' keep 16-bit compute, for "
        "hardware that runs it natively. saved_model/precision.json records both.",
        enum=EXPORT_PRECISIONS)
    strategy: str = _field(
        "default", "tf.distribute strategy: 'default' (one device), 'mirrored' (every "
        "local GPU, or CPU) or 'multi_worker' (several machines, described by the "
        "TF_CONFIG environment variable; needs --run_name). --batch_size is the global "
        "batch, split across replicas.", enum=STRATEGIES)
    jit_compile: bool = _field(False, "Compile the training step with XLA.")
    fused_likelihood: bool = _field(
        True, "Compute the discretized logistic's loss and gradient in the training step "
        "with vae_tf's fused C++ kernel (built on first use with the machine's C++ "
        "compiler, $CXX or g++, and cached), 3x faster than TensorFlow's ops for it; "
        "TensorFlow's ops where it cannot be built, under --jit_compile, in evaluation "
        "and in the export.")

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
        self._check_hierarchical_settings()
        for name in ("conv_channels", "dense_units"):
            value = tuple(int(v) for v in getattr(self, name))
            if not value or min(value) < 1:
                raise ValueError(f"--{name} must be a non-empty comma list of positive integers.")
            object.__setattr__(self, name, value)
        if self.strategy == "multi_worker" and not self.run_name:
            raise ValueError("--strategy=multi_worker needs --run_name, the same on every "
                             "worker, so that all of them train the same run.")
        if self.learn_scale != "none" and self.recon_loss not in SCALED_LOSSES:
            raise ValueError(f"--learn_scale applies to --recon_loss="
                             f"{' or '.join(SCALED_LOSSES)}, not {self.recon_loss} (whose "
                             "decoder predicts its scales).")
        if self.prior_fit_mirrored and self.sample_prior != "fitted":
            raise ValueError("--prior_fit_mirrored applies to --sample_prior=fitted, the "
                             "only sampling prior fitted to codes.")
        self._check_dataset_settings()
        self._check_kl_settings()

    def _check_hierarchical_settings(self):
        if self.architecture != "hierarchical":
            return
        parse_hierarchy(self.hierarchy)
        if len(self.conv_channels) != 1:
            raise ValueError("--architecture=hierarchical takes one width in --conv_channels "
                             f"(every network of it has that many channels), not "
                             f"{','.join(map(str, self.conv_channels))}.")
        if self.model == "ae":
            raise ValueError("--model=ae has one deterministic code, not a hierarchy of "
                             "latent groups: use --architecture=conv, resnet or dense.")

    def _check_dataset_settings(self):
        """Image-file settings must not be given where they would be ignored."""
        if self.channels not in (0, 1, 3):
            raise ValueError(f"--channels={self.channels} must be 0 (inferred), 1 or 3.")
        if self.dataset not in IMAGE_FILE_DATASETS:
            given = [name for name in ("image_size", "crop", "channels") if getattr(self, name)]
            if given:
                raise ValueError(f"--{given[0]} applies to --dataset="
                                 f"{' or '.join(IMAGE_FILE_DATASETS)}, not {self.dataset}.")

    def _check_kl_settings(self):
        # --kl_warmup_steps predates --kl_schedule; given alone it still means a
        # linear warm-up, and config.json records that schedule by name.
        if self.kl_schedule == "constant" and self.kl_warmup_steps > 0:
            object.__setattr__(self, "kl_schedule", "linear")
        if self.kl_schedule == "linear" and self.kl_warmup_steps == 0:
            raise ValueError("--kl_schedule=linear needs --kl_warmup_steps > 0.")
        if self.kl_schedule == "cyclical" and self.kl_warmup_steps > 0:
            raise ValueError("--kl_warmup_steps applies to --kl_schedule=linear, "
                             "not cyclical (use --kl_cycle_ramp).")
        if self.free_bits > 0 and self.kl_capacity > 0:
            raise ValueError("--free_bits and --kl_capacity are alternative KL penalties; "
                             "set only one of them.")
        if self.kl_capacity_steps > 0 and self.kl_capacity == 0:
            raise ValueError("--kl_capacity_steps needs a --kl_capacity target > 0.")
        for name, what in (("kl_balance", "weighs the KL of latent groups"),
                           ("residual_posterior", "parameterizes latent groups' posteriors")):
            if getattr(self, name) and self.architecture != "hierarchical":
                raise ValueError(f"--{name} {what}: it needs --architecture=hierarchical.")
        if self.upsampling != "nearest" and self.architecture != "hierarchical":
            raise ValueError("--upsampling is how the top-down path of latent groups "
                             "enlarges its maps: it needs --architecture=hierarchical.")
        if self.squeeze_excite and self.architecture not in ("resnet", "hierarchical"):
            raise ValueError("--squeeze_excite gates residual blocks: it needs "
                             "--architecture=resnet or hierarchical.")
        if self.kl_balance and (self.free_bits > 0 or self.kl_capacity > 0):
            raise ValueError("--kl_balance, --free_bits and --kl_capacity are alternative "
                             "KL penalties; set only one of them.")

    def schedule_warnings(self, total_steps: int) -> List[str]:
        """Warnings for warm-ups and ramps that do not fit in a run of `total_steps`
        training steps (a preset shortened to a quick try keeps its warm-up)."""
        shorten = "shorten it or train longer (--epochs, --steps_per_epoch)"
        warnings = []
        if self.lr_warmup_steps >= total_steps:
            warnings.append(
                f"--lr_warmup_steps={self.lr_warmup_steps} is longer than this run's "
                f"{total_steps} training steps: the learning rate never reaches "
                f"--learning_rate={self.learning_rate:g} and the model learns little; "
                f"{shorten}.")
        elif self.lr_warmup_steps > total_steps // 2:
            warnings.append(
                f"--lr_warmup_steps={self.lr_warmup_steps} is more than half of this run's "
                f"{total_steps} training steps: the learning rate reaches "
                f"--learning_rate={self.learning_rate:g} only at step "
                f"{self.lr_warmup_steps}; {shorten}.")
        if self.kl_schedule == "linear" and self.kl_warmup_steps > total_steps:
            warnings.append(
                f"--kl_warmup_steps={self.kl_warmup_steps} is longer than this run's "
                f"{total_steps} training steps: the KL weight ends at "
                f"{self.kl_weight * total_steps / self.kl_warmup_steps:.3g}, not "
                f"--kl_weight={self.kl_weight:g}; {shorten}.")
        if self.kl_capacity > 0 and self.kl_capacity_steps > total_steps:
            warnings.append(
                f"--kl_capacity_steps={self.kl_capacity_steps} is longer than this run's "
                f"{total_steps} training steps: the capacity never reaches "
                f"--kl_capacity={self.kl_capacity:g}; {shorten}.")
        return warnings

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Builds a Config from a dict such as a run's config.json (unknown keys
        rejected); a setting the dict predates takes the value its run was trained
        with (PREDATED)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown settings in config: {', '.join(unknown)}.")
        return cls(**{**predated(values), **values})

    @classmethod
    def from_json_file(cls, path: str) -> "Config":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def differences(self, other: "Config", ignore=("run_name",)) -> list:
        """Names of settings that differ from `other` (for resume checks)."""
        return [f.name for f in dataclasses.fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]


# Settings added after runs were written, with what an older config.json without
# them means: those runs evaluated every epoch on the test split and trained on the
# whole training split.
PREDATED = {"validation_size": 0}


def predated(written: dict) -> dict:
    """The PREDATED settings a run's config.json lacks, at the values it was trained with."""
    return {name: value for name, value in PREDATED.items() if name not in written}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parse_hierarchy(spec: str) -> List[Tuple[int, int]]:
    """'1x1,7x2,14x2' -> [(1, 1), (7, 2), (14, 2)]: (resolution, groups), top first."""
    levels = []
    for part in spec.split(","):
        try:
            resolution, groups = (int(v) for v in part.strip().split("x"))
        except ValueError:
            raise ValueError(f"--hierarchy={spec!r}: {part!r} is not RESOLUTIONxGROUPS "
                             "(e.g. 1x1,7x2,14x2).") from None
        if resolution < 1 or groups < 1:
            raise ValueError(f"--hierarchy={spec!r}: resolutions and group counts must be >= 1.")
        levels.append((resolution, groups))
    resolutions = [r for r, _ in levels]
    if resolutions != sorted(set(resolutions)):
        raise ValueError(f"--hierarchy={spec!r}: resolutions must grow strictly from the "
                         "top (coarsest) to the bottom.")
    return levels


def group_sides(spec: str) -> List[int]:
    """'1x1,7x2,14x2' -> [1, 7, 7, 14, 14]: each latent group's side, top first."""
    return [resolution for resolution, groups in parse_hierarchy(spec) for _ in range(groups)]
