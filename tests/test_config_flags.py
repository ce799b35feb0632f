"""Flags, Config fields and config.json share one set of names; bad values fail clearly."""

import dataclasses
import glob
import os

import pytest
from absl import flags

from conftest import REPO
from vae_tf.config import Config
from vae_tf.flag_defs import config_from_flags, define_flags


def _parse(*argv):
    values = flags.FlagValues()
    define_flags(values)
    values(["prog", *argv])
    return config_from_flags(values)


def test_every_field_has_a_flag_with_help():
    values = flags.FlagValues()
    define_flags(values)
    for f in dataclasses.fields(Config):
        assert f.name in values, f.name
        assert len(values[f.name].help) > 20, f.name


def test_flags_convert_to_config_and_json_round_trips():
    config = _parse("--dataset=mnist", "--conv_channels=16,32,64", "--kl_weight=0.5")
    assert config.conv_channels == (16, 32, 64)
    assert config.kl_weight == 0.5
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "flags", "*.cfg"))))
def test_flagfiles_parse(path, monkeypatch):
    # A flagfile may include another by a path relative to the repository's root,
    # where the README runs every command.
    monkeypatch.chdir(REPO)
    config = _parse(f"--flagfile={path}")
    assert config.dataset


def test_bad_values_raise_one_line_errors():
    with pytest.raises(flags.IllegalFlagValueError):
        _parse("--recon_loss=poisson")
    with pytest.raises(ValueError, match="conv_channels"):
        _parse("--conv_channels=16,x")
    with pytest.raises(ValueError, match="learn_scale"):
        Config(recon_loss="bernoulli", learn_scale="pixel")
    with pytest.raises(ValueError, match="must be >= 1"):
        Config(epochs=0)


def test_reference_documents_every_flag():
    with open(os.path.join(REPO, "docs", "reference.md")) as f:
        reference = f.read()
    missing = [f.name for f in dataclasses.fields(Config) if f"`--{f.name}`" not in reference]
    assert not missing, f"docs/reference.md's flag table lacks: {missing}"
