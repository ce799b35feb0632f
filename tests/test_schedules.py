"""KL weight schedules and the capacity ramp, at given steps; their flag checks."""

import numpy as np
import pytest

from conftest import tiny_config
from vae_tf import schedules


def _weights(config, steps, total_steps=None):
    return schedules.kl_weight(np.array(steps), config, total_steps).numpy()


def test_constant():
    config = tiny_config(kl_weight=0.5)
    assert config.kl_schedule == "constant"
    np.testing.assert_allclose(_weights(config, [0, 10, 10**6]), [0.5, 0.5, 0.5])
    assert schedules.kl_weight(7, config).shape == ()  # a scalar for the training step


def test_linear_and_the_warmup_flag_alone():
    config = tiny_config(kl_weight=2.0, kl_schedule="linear", kl_warmup_steps=100)
    np.testing.assert_allclose(_weights(config, [0, 25, 100, 500]), [0.0, 0.5, 2.0, 2.0])
    # --kl_warmup_steps predates --kl_schedule and keeps meaning a linear warm-up.
    assert tiny_config(kl_warmup_steps=100) == config.replace(kl_weight=1.0)


def test_cyclical_follows_fu_et_al():
    # 1000 steps in 4 cycles of 250; the weight rises over the first half of each.
    config = tiny_config(kl_schedule="cyclical", kl_cycles=4, kl_cycle_ramp=0.5, kl_weight=2.0)
    steps = [0, 25, 100, 125, 249, 250, 300, 500, 999]
    expected = [0.0, 0.4, 1.6, 2.0, 2.0, 0.0, 0.8, 0.0, 2.0]
    np.testing.assert_allclose(_weights(config, steps, total_steps=1000), expected, atol=1e-6)
    # Periods are whole steps: 1001 steps in 4 cycles gives periods of ceil(250.25) = 251.
    np.testing.assert_allclose(_weights(config, [250, 251], total_steps=1001), [2.0, 0.0])
    with pytest.raises(ValueError, match="total number of training steps"):
        schedules.kl_weight(0, config)


def test_capacity_ramp():
    config = tiny_config(kl_capacity=25.0, kl_capacity_steps=10_000)
    got = schedules.kl_capacity(np.array([0, 5000, 10_000, 20_000]), config).numpy()
    np.testing.assert_allclose(got, [0.0, 12.5, 25.0, 25.0])
    held = tiny_config(kl_capacity=25.0)
    np.testing.assert_allclose(schedules.kl_capacity(np.array([0, 9]), held).numpy(), [25, 25])


@pytest.mark.parametrize("changes, message", [
    (dict(kl_schedule="linear"), "needs --kl_warmup_steps"),
    (dict(kl_schedule="cyclical", kl_warmup_steps=10), "applies to --kl_schedule=linear"),
    (dict(free_bits=0.5, kl_capacity=10.0), "set only one"),
    (dict(kl_capacity_steps=100), "needs a --kl_capacity"),
    (dict(kl_cycle_ramp=1.5), "must be <= 1.0"),
])
def test_bad_combinations_fail_clearly(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)
