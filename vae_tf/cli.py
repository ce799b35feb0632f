"""The one harness of every command: TensorFlow's environment defaults, flag parsing,
and the one-line `error: ...` with its exit status.

    python -m vae_tf <command> [flags]      (or `vae-tf <command>`, or
    python -m vae_tf.<command> [flags]       `vae-tf-<command>`)

A command module defines `main(argv)` and calls `run(main, flag_names)` under
`if __name__ == "__main__"`. Flags are parsed before anything imports TensorFlow,
so a mistyped flag is reported at once; TensorFlow is imported later, quietly, by
`vae_tf.run.tfenv.import_tensorflow`. Imports no TensorFlow.
"""

import logging as pylogging
import os
import sys
from typing import Callable, Iterable, Sequence

from absl import app, flags
from absl import logging as absl_logging

from vae_tf import flag_defs, presets, registry
from vae_tf.errors import FlagError, Interrupted, UserError
from vae_tf.run import tfenv


COMMANDS = registry.COMMANDS


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

    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        try:
            print(help_text(flag_names), flush=True)
        except BrokenPipeError:  # `--help | head`
            os._exit(0)
        sys.exit(0)

    def parse(argv):
        try:
            try:
                if "preset" in flag_names:
                    rest = presets.parse(flags.FLAGS, argv)
                else:
                    rest = flags.FLAGS(argv)
            except SystemExit as e:  # absl's --helpfull/--helpxml exit 1: help is no failure
                sys.exit(0 if e.code == 1 and _asked_absl_help(argv) else e.code)
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
        except Interrupted as e:
            print(str(e), file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:  # Ctrl-C outside training's safe points
            print("interrupted", file=sys.stderr)
            sys.exit(Interrupted.exit_code)

    app.run(guarded, argv=sys.argv, flags_parser=parse)


# What asks for a command's help (absl's own --helpfull and --helpxml still work).
HELP_ARGS = ("-h", "--help", "-?", "--helpshort")


def _asked_absl_help(argv) -> bool:
    return any(arg.split("=")[0] in ("--helpfull", "--helpxml") for arg in argv[1:])


def _program() -> str:
    """The command as the user typed it: `vae-tf train`, `vae-tf-train` or
    `python -m vae_tf.train` (sys.argv[0] is a path to the module under -m)."""
    name = sys.argv[0]
    if name.endswith(".py"):
        return f"python -m vae_tf.{os.path.splitext(os.path.basename(name))[0]}"
    return name if name.startswith("vae-tf ") else os.path.basename(name)


def help_text(flag_names: Sequence[str]) -> str:
    """A command's --help: usage, what it does, the presets (for commands that
    train), the other commands, then its flags."""
    program = _program()
    lines = [f"usage: {program} [--flagfile=FILE] [--<flag>=<value> ...]", ""]
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    if doc:
        lines += [doc, ""]
    if "dataset" in flag_names and presets.summaries():
        lines.append("presets: --dataset=X starts from the one marked [X]; --preset=<name> "
                     "or --flagfile=flags/<name>.cfg picks one, --preset=none the bare "
                     "defaults; flags given override it:")
        datasets = {name: dataset for dataset, name in presets.DATASET_PRESETS.items()}
        for name, first in presets.summaries().items():
            if name in datasets:
                first = f"[{datasets[name]}] {first}"
            lines.append(f"  {name:<25}" + (first if len(first) <= 70 else first[:67] + "..."))
        lines.append("")
    lines += [f"commands: {', '.join(COMMANDS)} (`vae-tf <command> --help` for each).", ""]
    # absl's listing of the command's flags, without its header line (a source path).
    listing = flags.FLAGS.module_help(sys.argv[0]).strip("\n").split("\n", 1)
    lines += ["flags:", listing[1] if len(listing) > 1 else "  (none)", "",
              "--helpfull lists TensorFlow's and absl's flags as well."]
    return "\n".join(lines)


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
    module = COMMANDS.get(argv[1])
    sys.argv = [f"vae-tf {argv[1]}"] + argv[2:]
    sys.modules["__main__"].__doc__ = module.__doc__  # what absl's --help prints first
    module.console_main()
