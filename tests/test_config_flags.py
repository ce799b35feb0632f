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
    with pytest.raises(ValueError, match="prior_fit_mirrored applies to --sample_prior"):
        Config(prior_fit_mirrored=True)


def test_reference_documents_every_flag():
    with open(os.path.join(REPO, "docs", "reference.md")) as f:
        reference = f.read()
    missing = [f.name for f in dataclasses.fields(Config) if f"`--{f.name}`" not in reference]
    assert not missing, f"docs/reference.md's flag table lacks: {missing}"


def _train_flags(*argv):
    """Parses a training command line as `vae_tf.train` does, presets included."""
    from vae_tf import presets
    from vae_tf.flag_defs import define

    values = flags.FlagValues()
    define_flags(values)
    define(["preset"], values)
    presets.parse(values, ["prog", *argv])
    return values.preset, config_from_flags(values)


def test_a_dataset_starts_from_its_preset_and_flags_given_override_it(monkeypatch):
    monkeypatch.chdir(REPO)
    preset, config = _train_flags("--dataset=celeba", "--latent_dim=32")
    assert preset == "celeba_hierarchical"
    # flags/celeba_hierarchical.cfg's settings, but the latent size given.
    assert (config.architecture, config.recon_loss, config.crop, config.batch_size,
            config.epochs) == ("hierarchical", "discretized_mix_logistic", 148, 16, 24)
    assert config.latent_dim == 32
    # Given before --dataset or after it: the command line still wins.
    assert _train_flags("--latent_dim=32", "--dataset", "celeba")[1].latent_dim == 32
    assert _train_flags("--dataset=celeba")[1].latent_dim == 16
    # The flat conv VAE is a preset away.
    preset, config = _train_flags("--dataset=celeba", "--preset=celeba")
    assert preset == "celeba" and config.conv_channels == (32, 64, 128, 256)
    for dataset in ("mnist", "fashion_mnist", "frey", "cifar10"):
        preset, config = _train_flags(f"--dataset={dataset}")
        assert preset == dataset
        assert config == _parse(f"--flagfile={os.path.join(REPO, 'flags', dataset + '.cfg')}")


def test_preset_none_another_preset_and_an_explicit_flagfile(monkeypatch):
    monkeypatch.chdir(REPO)
    preset, config = _train_flags("--dataset=celeba", "--preset=none")
    assert preset == "none" and config == Config(dataset="celeba")
    preset, config = _train_flags("--dataset=mnist", "--preset=mnist_hierarchical")
    assert preset == "mnist_hierarchical" and config.architecture == "hierarchical"
    # An explicit --flagfile: no automatic preset, whatever the dataset.
    preset, config = _train_flags("--flagfile=flags/smoke.cfg", "--dataset=frey")
    assert preset == "none" and config.architecture == "conv" and config.epochs == 2
    # No preset for the synthetic shapes.
    assert _train_flags("--dataset=synthetic") == ("none", Config(dataset="synthetic"))
    from vae_tf.errors import FlagError
    with pytest.raises(FlagError, match="--preset=nope: there is no .*nope.cfg; one of: .*celeba"):
        _train_flags("--preset=nope")
    with pytest.raises(FlagError, match="alternatives"):
        _train_flags("--preset=celeba", "--flagfile=flags/smoke.cfg")


def test_schedules_that_do_not_fit_in_the_run_are_warned_about():
    config = Config(lr_warmup_steps=200, lr_decay="cosine", kl_warmup_steps=500)
    warnings = config.schedule_warnings(20)
    assert len(warnings) == 2
    assert "--lr_warmup_steps=200 is longer than this run's 20 training steps" in warnings[0]
    assert "never reaches --learning_rate=0.001" in warnings[0]
    assert "the KL weight ends at 0.04, not --kl_weight=1" in warnings[1]
    assert "more than half" in config.schedule_warnings(300)[0]
    assert config.schedule_warnings(1000) == []
    assert "capacity never reaches" in Config(kl_capacity=25, kl_capacity_steps=100) \
        .schedule_warnings(50)[0]
