"""The only place that defines absl flags: one flag per `Config` field, same name.

Flags are defined inside a function so that tests can define them on a fresh
`flags.FlagValues()`; `main` modules call `define_flags()` then `config_from_flags()`.
"""

import dataclasses
from typing import get_args

from absl import flags

from vae_tf.config import Config


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one absl flag per `Config` field, with its help, enum and bounds."""
    for f in dataclasses.fields(Config):
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
    """Converts parsed flags to a validated `Config` (ValueError on bad values)."""
    values = {}
    for f in dataclasses.fields(Config):
        value = flag_values[f.name].value
        if _is_int_tuple(f.type):
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ValueError(f"--{f.name} must be a comma list of integers, got "
                                 f"{','.join(value)!r}.") from None
        values[f.name] = value
    return Config(**values)


def _is_int_tuple(annotation) -> bool:
    return annotation == "Tuple[int, ...]" or get_args(annotation) == (int, Ellipsis)


def define_report_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The flags of `python -m vae_tf.report` (not run settings, so not in Config)."""
    flags.DEFINE_string("run_dir", "", "Run directory whose report.html to (re)write.",
                        flag_values=flag_values)
    flags.DEFINE_bool("compare", False, "Compare the run directories given as arguments "
                      "on one page: overlaid curves and a table of final metrics.",
                      flag_values=flag_values)
    flags.DEFINE_string("output", "", "Where to write the page; by default report.html "
                        "in the run directory, or compare.html beside the first compared run.",
                        flag_values=flag_values)
