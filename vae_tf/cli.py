"""The one harness of every command: TensorFlow's environment defaults, flag parsing,
and the one-line `error: ...` with its exit status.

    python -m vae_tf <command> [flags]      (or `vae-tf <command>`, or
    python -m vae_tf.<command> [flags]       `vae-tf-<command>`)

A command module defines `main(argv)` and calls `run(main, flag_names)` under
`if __name__ == "__main__"`. Flags are parsed before anything imports TensorFlow,
so a mistyped flag is reported at once. Imports no TensorFlow.
"""

import importlib
import os
import sys
from typing import Callable, Iterable, Sequence

from absl import app, flags

from vae_tf import flags as flag_defs
from vae_tf.errors import FlagError, UserError

# Every command, by the name `vae-tf <command>` takes, and its module.
COMMANDS = {
    "train": "vae_tf.train",
    "evaluate": "vae_tf.evaluate",
    "sample": "vae_tf.sample",
    "reconstruct": "vae_tf.reconstruct",
    "interpolate": "vae_tf.interpolate",
    "traverse": "vae_tf.traverse",
    "scatter": "vae_tf.scatter",
    "manifold": "vae_tf.manifold",
    "animate": "vae_tf.animate",
    "report": "vae_tf.report",
    "gradcheck": "vae_tf.gradcheck",
}


def set_tensorflow_defaults() -> None:
    """Environment settings that TensorFlow reads once, when it is first imported.

    Call before importing TensorFlow; a value already in the environment wins.
    """
    # TensorFlow's C++ start-up chatter (CPU feature notices) hides the run's own
    # messages; warnings and errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's convolution kernels instead of Eigen's: 1.8-2.2x the training images/s
    # of the conv VAE on 2 AMD EPYC (AVX2) cores, where TensorFlow leaves them off by
    # default (it turns them on only on CPUs with AVX-512 VNNI/BF16 or AMX), so the
    # same command ran at two speeds depending on the CPU.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def run(main: Callable, flag_names: Iterable[str] = (), required: Sequence[str] = (),
        positional: bool = False) -> None:
    """Defines the command's flags, parses them and runs `main(argv)`.

    A bad flag prints `error: ...` and exits with status 2; a UserError from `main`
    prints `error: ...` and exits with its `exit_code` (1 for bad input). Positional
    arguments are an error unless `positional`.
    """
    set_tensorflow_defaults()
    flag_names = tuple(flag_names)
    flag_defs.define(flag_names)
    # absl's --help lists the key flags of the module it runs: these.
    for name in flag_names:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

    def parse(argv):
        try:
            rest = flags.FLAGS(argv)
            missing = [name for name in required if flags.FLAGS[name].value is None]
            if missing:
                raise FlagError(f"--{missing[0]} is required.")
            if len(rest) > 1 and not positional:
                raise FlagError(f"Unexpected arguments: {' '.join(rest[1:])}")
        except (flags.Error, FlagError) as e:
            fail(e, 2)
        return rest

    def guarded(argv):
        try:
            main(argv)
        except UserError as e:
            fail(e, e.exit_code)

    app.run(guarded, argv=sys.argv, flags_parser=parse)


def fail(error: Exception, code: int) -> None:
    """Prints `error: <message>` on one line and exits with `code`."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def dispatch(argv: Sequence[str] = None) -> None:
    """`vae-tf <command> [flags]`: runs the command's module as its own `-m` would."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        names = ", ".join(COMMANDS)
        if len(argv) >= 2 and argv[1] not in ("-h", "--help", "help"):
            fail(f"Unknown command {argv[1]!r}; one of: {names}.", 2)
        print(f"usage: vae-tf <command> [flags]\ncommands: {names}\n"
              "`vae-tf <command> --help` lists a command's flags.")
        return
    module = importlib.import_module(COMMANDS[argv[1]])
    sys.argv = [f"vae-tf {argv[1]}"] + argv[2:]
    sys.modules["__main__"].__doc__ = module.__doc__  # what absl's --help prints first
    module.console_main()
