"""The names a flag or a command line chooses among, each bound to the code behind it.

Every family that grows (likelihoods, architectures, datasets, commands) is one
`Registry` here: its names are what `--recon_loss`, `--architecture`, `--dataset` and
`vae-tf <command>` accept, and `get(name)` imports the implementation only when it
is asked for. So the flags' enums, `--help` and setup.py's console scripts read the
names without importing TensorFlow, and a name is spelled in one place.

Imports nothing from the package but errors (setup.py reads it by path).
"""

import importlib
from typing import Dict, Iterator, Tuple


class Registry:
    """name -> "module" or "module:attribute", imported on first `get`."""

    def __init__(self, kind: str, entries: Dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> Tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def target(self, name: str) -> str:
        """The dotted path `name` is bound to ("module" or "module:attribute")."""
        if name not in self._entries:
            from vae_tf.errors import UserError
            raise UserError(f"Unknown {self.kind} {name!r}; one of: {', '.join(self._entries)}.")
        return self._entries[name]

    def get(self, name: str):
        """The module or object `name` is bound to."""
        module, _, attribute = self.target(name).partition(":")
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded

    def items(self):
        """(name, object) for every name, importing each."""
        return [(name, self.get(name)) for name in self._entries]


# p(x|z): a `Likelihood` class each (vae_tf/models/likelihoods.py).
LIKELIHOODS = Registry("likelihood", {
    "bernoulli": "vae_tf.models.likelihoods:Bernoulli",
    "gaussian": "vae_tf.models.likelihoods:Gaussian",
    "laplace": "vae_tf.models.likelihoods:Laplace",
    "discretized_logistic": "vae_tf.models.likelihoods:DiscretizedLogistic",
    "discretized_mix_logistic": "vae_tf.models.likelihoods:DiscretizedMixLogistic",
})

# Encoder/decoder families: a module each with build_encoder and build_decoder
# (vae_tf/models/architectures/); the hierarchy builds its own networks.
ARCHITECTURES = Registry("architecture", {
    "conv": "vae_tf.models.architectures.conv",
    "dense": "vae_tf.models.architectures.dense",
    "resnet": "vae_tf.models.architectures.resnet",
    "hierarchical": "vae_tf.models.hierarchical",
})

# Loaders: config -> datasets.base.ImageData (vae_tf/datasets/).
DATASETS = Registry("dataset", {
    "synthetic": "vae_tf.datasets.synthetic:load",
    "mnist": "vae_tf.datasets.mnist:load_mnist",
    "fashion_mnist": "vae_tf.datasets.mnist:load_fashion_mnist",
    "celeba": "vae_tf.datasets.celeba:load",
    "frey": "vae_tf.datasets.frey:load",
    "folder": "vae_tf.datasets.folder:load",
    "cifar10": "vae_tf.datasets.cifar10:load",
})

# `vae-tf <command>` and `python -m vae_tf.<command>`: a module each with `console_main`.
COMMANDS = Registry("command", {
    name: f"vae_tf.{name}" for name in (
        "train", "evaluate", "sample", "reconstruct", "interpolate", "traverse", "scatter",
        "attributes", "manifold", "animate", "report", "gradcheck", "explore")
})
