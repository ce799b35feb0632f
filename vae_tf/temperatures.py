"""The sampling temperature a command is asked for: --temperature, one for every
latent (by default the run's own, that of its sample grids), or --group_temperatures,
one per latent group of a hierarchical run, top group first."""

from vae_tf.config import parse_hierarchy
from vae_tf.errors import UserError


def asked(config, temperature=None, group_values=()):
    """`group_values` as floats, one per group, when given; else `temperature` when
    given (not None); else the run's own (`config.temperature`)."""
    if group_values:
        return per_group(config, group_values)
    return config.temperature if temperature is None else temperature


def label(temperature) -> str:
    """t0.8 for one temperature, t1-1-0.5 for one per group (file names)."""
    return "t" + text(temperature).replace(",", "-")


def text(temperature) -> str:
    """0.8 for one temperature, 1,1,0.5 for one per group (tables, pages)."""
    values = temperature if isinstance(temperature, (list, tuple)) else [temperature]
    return ",".join(f"{t:g}" for t in values)


def numbers(flag: str, values) -> list:
    """A comma list flag's values as floats >= 0 (UserError otherwise)."""
    try:
        found = [float(v) for v in values]
    except ValueError:
        raise UserError(f"{flag}={','.join(values)}: not all numbers.") from None
    if min(found) < 0:
        raise UserError(f"{flag}={','.join(values)}: temperatures are >= 0.")
    return found


def per_group(config, values) -> list:
    """--group_temperatures as floats, one per group of the run's hierarchy."""
    if config.architecture != "hierarchical":
        raise UserError(f"--group_temperatures needs a hierarchical run; this one is "
                        f"--architecture={config.architecture} (use --temperature).")
    num_groups = sum(groups for _, groups in parse_hierarchy(config.hierarchy))
    temperatures = numbers("--group_temperatures", values)
    if len(temperatures) != num_groups:
        raise UserError(f"--group_temperatures: give {num_groups} temperatures >= 0, one per "
                        f"group of --hierarchy={config.hierarchy}, not {len(temperatures)}.")
    return temperatures
