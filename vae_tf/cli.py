"""The one harness of every command: TensorFlow's environment defaults, flag parsing,
and the one-line `error: ...` with its exit status.

    python -m vae_tf <command> [flags]      (or `vae-tf <command>`, or
    python -m vae_tf.<command> [flags]       `vae-tf-<command>`)

A command module defines `main(argv)` and calls `run(main, flag_names)` under
`if __name__ == "__main__"`. Flags are parsed before anything imports TensorFlow,
so a mistyped flag is reported at once; TensorFlow is imported later, quietly, by
`vae_tf.tfenv.import_tensorflow`. Imports no TensorFlow.
"""

import importlib
import logging as pylogging
import sys
from typing import Callable, Iterable, Sequence

from absl import app, flags
from absl import logging as absl_logging

from vae_tf import flags as flag_defs
from vae_tf import presets, tfenv
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
    "attributes": "vae_tf.attributes",
    "manifold": "vae_tf.manifold",
    "animate": "vae_tf.animate",
    "report": "vae_tf.report",
    "gradcheck": "vae_tf.gradcheck",
}


def run(main: Callable, flag_names: Iterable[str] = (), required: Sequence[str] = (),
        positional: bool = False) -> None:
    """Defines the command's flags, parses them and runs `main(argv)`.

    A bad flag prints `error: ...` and exits with status 2; a UserError from `main`
    prints `error: ...` and exits with its `exit_code` (1 for bad input). Positional
    arguments are an error unless `positional`.
    """
    tfenv.set_tensorflow_defaults()
    _plain_log_lines()
    flag_names = tuple(flag_names)
    flag_defs.define(flag_names)
    # absl's --help lists the key flags of the module it runs: these.
    for name in flag_names:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

    def parse(argv):
        try:
            if "preset" in flag_names:
                rest = presets.parse(flags.FLAGS, argv)
            else:
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


class _PlainFormatter(pylogging.Formatter):
    """Log lines as a user reads them: the message, with the level only where it is
    a warning or an error (absl's default adds the date, thread and source line)."""

    def format(self, record):
        message = record.getMessage()
        if record.levelno >= pylogging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        return message


def _plain_log_lines() -> None:
    absl_logging.get_absl_handler().setFormatter(_PlainFormatter())


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
