"""Dataset presets: the flagfile of flags/ that `vae_tf.train` starts from.

    python -m vae_tf.train --dataset=celeba            # flags/celeba_hierarchical.cfg, then the flags given
    python -m vae_tf.train --dataset=celeba --preset=none   # the bare defaults

Without --flagfile, training starts from the preset of its dataset (the one whose
figures the README reports) and the flags on the command line override it: the
preset is read first, as if `--flagfile=flags/<preset>.cfg` came before them. An
explicit --flagfile replaces the automatic preset. Imports no TensorFlow.
"""

import os
from typing import Optional, Sequence

from vae_tf.errors import FlagError


# The repository's flags/ folder, beside the vae_tf package.
PRESETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")
# The preset of each dataset that has one. CelebA's is the hierarchical VAE, which beat
# flags/celeba.cfg on validation in likelihood and in the FID of samples.
DATASET_PRESETS = {
    "celeba": "celeba_hierarchical",
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "frey": "frey",
    "cifar10": "cifar10",
}
NONE = "none"


def parse(flag_values, argv: Sequence[str]) -> list:
    """Parses `argv` into `flag_values` over the preset it chooses; returns the
    arguments that are not flags. `flag_values.preset` then names the preset
    training started from, or is 'none'.

    The dataset is known once the flags are parsed; then the preset is read first
    and the command line's flags once more over it.
    """
    rest = flag_values(argv)
    name = choose(flag_values.dataset, flag_values.preset, has_flagfile(argv))
    if name is not None:
        rest = flag_values(with_preset(argv, name))
    flag_values.preset = name or NONE
    return rest


def has_flagfile(argv: Sequence[str]) -> bool:
    """Whether the command line gives a --flagfile (absl's -flagfile too)."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg.lstrip("-").split("=", 1)[0] == "flagfile" and arg.startswith("-"):
            return True
    return False


def choose(dataset: str, preset: str, flagfile_given: bool) -> Optional[str]:
    """The preset's name that training starts from, or None for the bare defaults.

    `preset` is --preset: empty for the dataset's own, 'none', or a flagfile's name in
    flags/. FlagError where --preset names no flagfile or comes with --flagfile.
    """
    if flagfile_given:
        if preset and preset != NONE:
            raise FlagError(f"--preset={preset} and --flagfile are alternatives: give one.")
        return None
    if preset == NONE:
        return None
    name = preset or DATASET_PRESETS.get(dataset)
    if name is None:
        return None
    if not os.path.isfile(path(name)):
        available = sorted(f[:-4] for f in os.listdir(PRESETS_DIR) if f.endswith(".cfg")) \
            if os.path.isdir(PRESETS_DIR) else []
        if preset:
            raise FlagError(f"--preset={preset}: there is no {path(name)}; one of: "
                            f"{', '.join(available + [NONE]) }.")
        raise FlagError(f"--dataset={dataset} starts from the preset {path(name)}, which is "
                        "not there (vae_tf installed without the repository's flags/ folder): "
                        "give --flagfile=PATH, or --preset=none for the bare defaults.")
    return name


def path(name: str) -> str:
    """The flagfile of preset `name`."""
    return os.path.join(PRESETS_DIR, f"{name}.cfg")


def with_preset(argv: Sequence[str], name: Optional[str]) -> list:
    """`argv` with the preset's flagfile read before every flag given, so they override it."""
    if name is None:
        return list(argv)
    return [argv[0], f"--flagfile={path(name)}", *argv[1:]]


def summaries() -> dict:
    """{preset name: the first line of its comment} of the flags/*.cfg files."""
    found = {}
    if os.path.isdir(PRESETS_DIR):
        for name in sorted(os.listdir(PRESETS_DIR)):
            if name.endswith(".cfg"):
                with open(os.path.join(PRESETS_DIR, name)) as f:
                    comment = []
                    for line in f:
                        if not line.startswith("#"):
                            break
                        comment.append(line.lstrip("# ").strip())
                found[name[:-len(".cfg")]] = " ".join(comment).split(". ")[0].rstrip(".")
    return found
