"""--architecture=hierarchical: the per-group KL against numpy, sampling at a
temperature, the importance bound against the model, and a run through the
commands, whose export samples without vae_tf."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import error_line, run_module, tiny_config
from vae_tf import gradcheck, train
from vae_tf.views import evaluation
from vae_tf.models import gaussian, hierarchical
from vae_tf.models.build import build_vae
from vae_tf.training import callbacks
from vae_tf.training.checkpoints import load_vae
from vae_tf.views import report_page
from vae_tf.views import latent
from vae_tf.views.latent import ACTIVE_UNITS_THRESHOLD
from vae_tf.views.trained import TrainedRun


def _config(**changes):
    values = dict(architecture="hierarchical", conv_channels=(8,), latent_dim=2,
                  hierarchy="1x1,7x1,14x1", blocks_per_stage=1, binarize="dynamic",
                  precision="float32")
    return tiny_config(**{**values, **changes})


def _numpy(t):
    return np.asarray(t, np.float64)


def test_per_group_kl_of_a_two_group_model_matches_numpy():
    config = _config(hierarchy="1x1,7x1")
    model = build_vae(config, (28, 28, 1))
    # Off the initial point, where every prior but the top one is N(0, I) by design.
    gradcheck.jitter_weights(model, scale=0.05)
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(5, 28, 28, 1)) > 0.5).astype(np.float32)
    eps = [rng.standard_normal((5, *shape)).astype(np.float32) for shape in model.noise_shapes()]
    assert [e.shape[1:] for e in eps] == [(1, 1, 2), (7, 7, 2)]
    rec, kl_groups = model.elbo_terms(tf.constant(x), eps=[tf.constant(e) for e in eps])

    # The two groups by hand from the model's own networks, the KLs in numpy.
    top_features, features = model._features(tf.constant(x))
    top, second = model.top_down.groups
    h = tf.zeros([5, 1, 1, 8])
    q = top.posterior(h, top_features, tf.float32)
    q_mean, q_logvar = _numpy(q.mean), _numpy(q.logvar)
    kl_top = 0.5 * np.sum(np.exp(q_logvar) + q_mean ** 2 - 1.0 - q_logvar, axis=(1, 2, 3))
    z = q_mean + np.exp(0.5 * q_logvar) * eps[0]
    h = tf.image.resize(top.merge(h, tf.constant(z, tf.float32)), [7, 7], method="nearest")
    p, h = second.prior(h, tf.float32)
    q = second.posterior(h, features, tf.float32)
    q_mean, q_logvar = _numpy(q.mean), _numpy(q.logvar)
    p_mean, p_logvar = _numpy(p.mean), _numpy(p.logvar)
    kl_second = 0.5 * np.sum(p_logvar - q_logvar - 1.0 + (np.exp(q_logvar) + (q_mean - p_mean) ** 2)
                             / np.exp(p_logvar), axis=(1, 2, 3))
    assert np.abs(p_mean).max() > 1e-3 and np.abs(p_logvar).max() > 1e-3  # a learned prior
    # atol: the top group's KL near the initial point is ~7e-4, a sum of terms near 1
    # that cancel, so float32 leaves it ~1e-7 off (1.0e-4 relative, seen once).
    np.testing.assert_allclose(kl_groups.numpy(), np.stack([kl_top, kl_second], 1), rtol=1e-4,
                               atol=1e-6)

    # Logged per group and in total.
    logs = model.test_on_batch(x, return_dict=True)
    assert {"kl_group0", "kl_group1"} <= set(logs)
    np.testing.assert_allclose(logs["kl_group0"] + logs["kl_group1"], logs["kl"], rtol=1e-5)


def _bilinear_numpy(x, side):
    """x [N, n, n, C] doubled by bilinear interpolation (half-pixel centres, edges
    repeated) until it covers `side`, then cut to side x side from the top left."""
    while x.shape[1] < side:
        n = x.shape[1]
        source = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, n - 1)
        weight = (source - low)[None, :, None, None]
        x = (1 - weight) * x[:, low] + weight * x[:, high]
        weight = weight.transpose(0, 2, 1, 3)
        x = (1 - weight) * x[:, :, low] + weight * x[:, :, high]
    return x[:, :side, :side]


@pytest.mark.parametrize("side, target", [(4, 8), (7, 14), (4, 7), (1, 7), (2, 8)])
def test_bilinear_upsampling_matches_numpy(side, target):
    x = np.random.default_rng(side).normal(size=(2, side, side, 3))
    got = hierarchical._resize(tf.constant(x, tf.float32), target, "bilinear").numpy()
    np.testing.assert_allclose(got, _bilinear_numpy(x, target), atol=1e-5)
    if target == 2 * side:  # one doubling is TensorFlow's own bilinear resize
        np.testing.assert_allclose(got, tf.image.resize(x, [target, target], "bilinear"),
                                   atol=1e-5)
    # Nearest repeats each cell: every 2x2 block of a doubled map is one value.
    nearest = hierarchical._resize(tf.constant(x, tf.float32), 2 * side).numpy()
    np.testing.assert_array_equal(nearest[:, ::2, ::2], nearest[:, 1::2, 1::2])


def test_the_residual_posterior_is_relative_to_the_prior_and_its_kl_is_nvaes():
    config = _config(hierarchy="1x1,7x1", residual_posterior=True)
    model = build_vae(config, (28, 28, 1))
    gradcheck.jitter_weights(model, scale=0.05)
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=(4, 28, 28, 1)) > 0.5).astype(np.float32)
    eps = [rng.standard_normal((4, *shape)).astype(np.float32) for shape in model.noise_shapes()]
    _, kl_groups = model.elbo_terms(tf.constant(x), eps=[tf.constant(e) for e in eps])

    # The second group by hand: the posterior network's raw output is (dmean, dlogvar).
    top_features, features = model._features(tf.constant(x))
    top, second = model.top_down.groups
    h = tf.zeros([4, 1, 1, 8])
    q = top.posterior(h, top_features, tf.float32)
    z = _numpy(q.mean) + np.exp(0.5 * _numpy(q.logvar)) * eps[0]
    h = tf.image.resize(top.merge(h, tf.constant(z, tf.float32)), [7, 7], method="nearest")
    p, h = second.prior(h, tf.float32)
    raw = _numpy(second.posterior_net(tf.concat([h, features], axis=-1)))
    shift, log_ratio = raw[..., :2], raw[..., 2:]
    p_logvar = _numpy(p.logvar)
    # NVAE's KL of N(mean_p + dmean, var_p * r) from N(mean_p, var_p), r = exp(dlogvar).
    kl_second = 0.5 * np.sum(shift ** 2 / np.exp(p_logvar) + np.exp(log_ratio) - 1.0 - log_ratio,
                             axis=(1, 2, 3))
    assert np.abs(shift).max() > 1e-3 and np.abs(p_logvar).max() > 1e-3
    np.testing.assert_allclose(kl_groups.numpy()[:, 1], kl_second, rtol=1e-4)
    q = second.posterior(h, features, tf.float32, prior=p)
    np.testing.assert_allclose(_numpy(q.mean), _numpy(p.mean) + shift, rtol=1e-5, atol=1e-6)


def _varied_images(n):
    """Binary images from nearly empty to nearly full, so that even the 1x1 top group's
    features differ between them."""
    rng = np.random.default_rng(0)
    density = rng.uniform(0.05, 0.95, size=(n, 1, 1, 1))
    return (rng.uniform(size=(n, 28, 28, 1)) < density).astype(np.float32)


def test_each_groups_posterior_mean_is_measured_in_its_priors_units():
    model = build_vae(_config(hierarchy="1x1,7x1"), (28, 28, 1))
    gradcheck.jitter_weights(model, scale=0.05)
    x = tf.constant(_varied_images(6))
    (top_mean, top_logvar), (second_mean, second_logvar) = model.group_posteriors(x)
    assert top_mean.shape == (6, 2) and second_mean.shape == (6, 7 * 7 * 2)
    # encode is the top group.
    np.testing.assert_allclose(top_mean, model.encode(x)[0], rtol=1e-6)
    np.testing.assert_allclose(top_logvar, model.encode(x)[1], rtol=1e-6)
    # The second group by hand: its prior and posterior with the top group at its mean.
    _, features = model._features(x)
    top, second = model.top_down.groups
    h = top.merge(tf.zeros([6, 1, 1, 8]), tf.reshape(top_mean, [6, 1, 1, 2]))
    p, h = second.prior(hierarchical._resize(h, 7), tf.float32)
    q = second.posterior(h, features, tf.float32)
    # In the prior's units: (mean_q - mean_p) / std_p.
    standardized = (_numpy(q.mean) - _numpy(p.mean)) / np.exp(0.5 * _numpy(p.logvar))
    np.testing.assert_allclose(second_mean, standardized.reshape(6, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second_logvar, (_numpy(q.logvar) - _numpy(p.logvar)).reshape(6, -1),
                               rtol=1e-5, atol=1e-6)
    assert np.abs(second_mean).max() > 1e-3 and np.abs(_numpy(p.logvar)).max() > 1e-3


def _numpy_active_units(means, logvars) -> int:
    means, logvars = _numpy(means).astype(np.float64), _numpy(logvars).astype(np.float64)
    return int(np.sum(np.var(means, axis=0) > ACTIVE_UNITS_THRESHOLD
                      * np.exp(logvars).mean(axis=0)))


def test_active_units_are_counted_per_group_and_summed():
    keras.utils.set_random_seed(0)  # a fixed model: the counts below depend on it
    model = build_vae(_config(), (28, 28, 1))
    # Far enough from the initial point that some posterior means move off their
    # priors' in the priors' units (at 0.1, on some orders of the tests, none did).
    gradcheck.jitter_weights(model, scale=0.3)
    x = _varied_images(40)
    logs = {}
    monitor = callbacks.CollapseMonitor(x, batch_size=16)  # 16 + 16 + 8 images
    monitor.set_model(model)
    monitor.on_epoch_end(0, logs)
    # Numpy's count, group by group, of the means' variances above the threshold
    # times the average posterior variance.
    expected = [_numpy_active_units(m, v) for m, v in model.group_posteriors(tf.constant(x))]
    assert [logs[f"active_units_group{g}"] for g in range(3)] == expected
    assert logs["active_units"] == sum(expected)
    assert 0 < sum(expected) < 2 + 98 + 392  # neither none nor all

    # The flat VAE logs its code's count alone, as before.
    flat = build_vae(tiny_config(precision="float32"), (28, 28, 1))
    logs = {}
    monitor.set_model(flat)
    monitor.on_epoch_end(0, logs)
    assert set(logs) == {"active_units", "step"}
    assert logs["active_units"] == _numpy_active_units(*flat.encode(x))


def _epoch_line(model, logs, capsys) -> str:
    summary = callbacks.EpochSummary()
    summary.set_model(model)
    summary.set_params({"epochs": 2, "steps": 20})
    summary.on_epoch_end(0, logs)
    return capsys.readouterr().out.strip()


def test_the_epoch_line_shows_each_groups_kl_and_active_units(capsys):
    model = build_vae(_config(), (28, 28, 1))
    logs = {"loss": 250.0, "reconstruction": 220.0, "kl": 30.0, "val_loss": 251.0,
            "val_reconstruction": 221.0, "val_kl": 30.0, "active_units": 43,
            "kl_group0": 0.5, "kl_group1": 20.0, "kl_group2": 9.5,
            "val_kl_group0": 0.44, "val_kl_group1": 21.26, "val_kl_group2": 8.3,
            "active_units_group0": 0, "active_units_group1": 40, "active_units_group2": 3}
    line = _epoch_line(model, logs, capsys)
    assert line.endswith(" - active units 43/492 - groups (validation KL nats, active units): "
                         "1x1 0.4/0 of 2 UNUSED | 7x7 21.3/40 of 98 | 14x14 8.3/3 of 392")
    # Without a validation split, the training KL.
    del logs["val_kl_group0"], logs["val_kl_group1"], logs["val_kl_group2"]
    assert _epoch_line(model, logs, capsys).endswith(
        "groups (KL nats, active units): 1x1 0.5/0 of 2 UNUSED | 7x7 20.0/40 of 98 "
        "| 14x14 9.5/3 of 392")
    # The flat VAE's line is as it was.
    flat = build_vae(tiny_config(precision="float32"), (28, 28, 1))
    assert _epoch_line(flat, {"loss": 1.0, "reconstruction": 0.5, "kl": 0.5,
                              "active_units": 3}, capsys).endswith(" - active units 3/4")


def test_free_bits_apply_per_group_scaled_by_its_size():
    config = _config(hierarchy="1x1,7x1", free_bits=0.5)
    model = build_vae(config, (28, 28, 1))
    kl_groups = tf.constant([[0.1, 30.0], [0.3, 20.0]])  # group sizes 2 and 98: floors 1, 49
    penalty = model.kl_penalty(kl_groups, tf.constant(1.0), 0).numpy()
    np.testing.assert_allclose(penalty, [1.0 + 49.0, 1.0 + 49.0])
    penalty = model.kl_penalty(tf.constant([[0.1, 60.0], [0.3, 50.0]]), tf.constant(1.0), 0)
    np.testing.assert_allclose(penalty.numpy(), [1.0 + 60.0, 1.0 + 50.0])


def test_the_fitted_sampling_prior_draws_every_group_in_its_priors_units():
    model = build_vae(_config(sample_prior="fitted"), (28, 28, 1))
    gradcheck.jitter_weights(model, scale=0.05)
    sizes = [2, 98, 392]  # 1x1, 7x7 and 14x14 maps of 2 channels
    rank = min(hierarchical.FITTED_PRIOR_RANK, sum(sizes))
    assert model.prior_factor.shape == (sum(sizes), rank)
    mean = np.zeros(sum(sizes), np.float32)
    mean[:2] = [1.5, -2.0]  # a top group far from N(0, I), as a trained model's is
    factor = np.zeros((sum(sizes), rank), np.float32)
    factor[:2, :3] = [[0.3, 0.0, 0.1], [0.2, -0.4, 0.0]]
    model.prior_mean.assign(mean)
    model.prior_factor.assign(factor)
    # The top group's marginal: what encode's codes and the explorer are compared with.
    prior_mean, scale_tril = (t.numpy() for t in model.sampling_prior())
    np.testing.assert_allclose(prior_mean, mean[:2])
    np.testing.assert_allclose(scale_tril @ scale_tril.T, factor[:2] @ factor[:2].T
                               + hierarchical.FITTED_PRIOR_RIDGE * np.eye(2), atol=1e-6)
    # Temperature 0: the fitted mean (below the top group 0: every group at its prior
    # mean), which is what decode(z) gives for z at the top group's mean.
    np.testing.assert_allclose(model.sample_images(4, 3, 0.0),
                               model.decode(np.tile(mean[:2], (4, 1))), atol=1e-6)
    # The top group alone at temperature 1: mean + F u, u the seed's first draw.
    u = tf.random.stateless_normal([4, rank], tf.constant([3, 1], tf.int64)).numpy()
    drawn = model.sample_images(4, 3, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(drawn, model.decode(mean[:2] + u @ factor[:2].T), atol=1e-6)
    assert np.abs(drawn - model.sample_images(4, 3, 0.0)).max() > 1e-4
    # Every group, each at its own temperature: z_g = mean_p + std_p * e_g for the e
    # computed here, split by group and shaped like its map.
    factor = np.random.default_rng(0).normal(0.0, 0.3, factor.shape).astype(np.float32)
    model.prior_factor.assign(factor)
    e = mean + np.repeat([1.0, 0.8, 0.5], sizes) * (u @ factor.T)
    parts = np.split(e, np.cumsum(sizes)[:-1], axis=1)
    noise = [tf.constant(p.reshape(4, side, side, 2)) for p, side in zip(parts, (1, 7, 14))]
    expected = model.likelihood.mean(
        model.top_down.prior(4, gaussian.fixed_draw(noise), tf.ones([3])))
    # (e in float64 here, in float32 there)
    np.testing.assert_allclose(model.sample_images(4, 3, [1.0, 0.8, 0.5]), expected,
                               atol=1e-5)
    # A mixture of two components over the standardized coordinates c: each sample's
    # c = mu_k + L_k u, k picked by the seed's second draw n (Phi(n) against the
    # running sum of the weights 0.3, 0.7), e = m + T_g F c.
    k_max = hierarchical.FITTED_PRIOR_COMPONENTS
    weights = np.zeros(k_max, np.float32)
    weights[:2] = [0.3, 0.7]
    rng = np.random.default_rng(4)
    mus = np.zeros((k_max, rank), np.float32)
    mus[:2] = rng.normal(0.0, 2.0, (2, rank))
    trils = np.zeros((k_max, rank, rank), np.float32)
    trils[:2] = np.tril(rng.normal(0.0, 0.5, (2, rank, rank)))
    model.prior_weights.assign(weights)
    model.prior_component_means.assign(mus)
    model.prior_component_scale_trils.assign(trils)
    n = tf.random.stateless_normal([8, 1], tf.constant([5, 2], tf.int64)).numpy()[:, 0]
    picked = np.where(0.5 * (1 + np.vectorize(math.erf)(n / np.sqrt(2))) <= 0.3, 0, 1)
    assert 0 < picked.sum() < 8  # both components drawn
    u = tf.random.stateless_normal([8, rank], tf.constant([5, 1], tf.int64)).numpy()
    c = mus[picked] + np.einsum("nij,nj->ni", trils[picked], u)
    e = mean + np.repeat([1.0, 0.8, 0.5], sizes) * (c @ factor.T)
    parts = np.split(e.astype(np.float32), np.cumsum(sizes)[:-1], axis=1)
    noise = [tf.constant(p.reshape(8, side, side, 2)) for p, side in zip(parts, (1, 7, 14))]
    expected = model.likelihood.mean(
        model.top_down.prior(8, gaussian.fixed_draw(noise), tf.ones([3])))
    np.testing.assert_allclose(model.sample_images(8, 5, [1.0, 0.8, 0.5]), expected,
                               atol=1e-5)
    # decode(z): the groups below the top at the fitted Gaussian's mean given the top
    # group at z, E[e | e_top = z] = m + F (F_top^T F_top + ridge I)^-1 F_top^T (z - m_top),
    # checked against the same conditional mean from the joint covariance (numpy) of
    # e = m + F u plus noise of the ridge's variance on the top group.
    z = np.array([[0.3, -0.7], [2.0, 1.0], [1.5, -2.0], [-1.0, 0.2]], np.float32)
    f = factor.astype(np.float64)
    cov = f @ f.T
    cov[:2, :2] += hierarchical.FITTED_CONDITIONAL_RIDGE * np.eye(2)
    e = mean + (z - mean[:2]) @ np.linalg.solve(cov[:2, :2], cov[:2, :])
    np.testing.assert_allclose(e[:, :2], z, atol=1e-6)  # the top group is z itself
    parts = np.split(e.astype(np.float32), np.cumsum(sizes)[:-1], axis=1)
    below = [tf.constant(p.reshape(4, side, side, 2)) for p, side in zip(parts[1:], (7, 14))]
    expected = model.likelihood.mean(
        model.top_down.prior(4, gaussian.fixed_draw(below), tf.ones([3]), top=z))
    np.testing.assert_allclose(model.decode(z), expected, atol=1e-5)
    # ... which differs from the groups below at their prior means (standard prior).
    assert np.abs(model.decode(z) - model.likelihood.mean(
        model.top_down.prior(4, top=z))).max() > 1e-3


def test_configuration_errors_are_one_line():
    with pytest.raises(ValueError, match="one width"):
        _config(conv_channels=(8, 16))
    with pytest.raises(ValueError, match="RESOLUTIONxGROUPS"):
        _config(hierarchy="1x1,7")
    with pytest.raises(ValueError, match="grow strictly"):
        _config(hierarchy="7x1,1x1")
    with pytest.raises(ValueError, match="--model=ae"):
        _config(model="ae")
    with pytest.raises(ValueError, match="--upsampling .* needs --architecture=hierarchical"):
        tiny_config(upsampling="bilinear")
    from vae_tf.errors import UserError
    with pytest.raises(UserError, match="not reached from the 28x28 images"):
        build_vae(_config(hierarchy="1x1,5x1"), (28, 28, 1))


@pytest.fixture(scope="module")
def hierarchical_run(tmp_path_factory):
    config = _config(output_dir=str(tmp_path_factory.mktemp("runs")), run_name="hier",
                     epochs=2, steps_per_epoch=20, kl_warmup_steps=10,
                     upsampling="bilinear")
    return config, train.run(config)["run_dir"]


@pytest.fixture(scope="module")
def fitted_hierarchical_run(tmp_path_factory):
    config = _config(output_dir=str(tmp_path_factory.mktemp("runs")), run_name="fitted",
                     epochs=2, steps_per_epoch=20, kl_warmup_steps=10, sample_prior="fitted")
    return config, train.run(config)["run_dir"]


def test_the_run_logs_each_groups_kl_and_draws_its_pictures(hierarchical_run, capsys):
    config, run_dir = hierarchical_run
    header = open(os.path.join(run_dir, "metrics.csv")).readline().strip().split(",")
    assert {f"{p}kl_group{g}" for p in ("", "val_") for g in range(3)} <= set(header)
    assert {f"active_units_group{g}" for g in range(3)} <= set(header)
    # Each epoch's line, from the run's own logged values.
    final = report_page.load_run(run_dir).rows[-1]
    assert final["active_units"] == sum(final[f"active_units_group{g}"] for g in range(3))
    line = _epoch_line(load_vae(run_dir), final, capsys)
    for g, (side, units) in enumerate([(1, 2), (7, 98), (14, 392)]):
        assert (f"{side}x{side} {final[f'val_kl_group{g}']:.1f}/"
                f"{final[f'active_units_group{g}']:.0f} of {units}") in line
    # The report's table of the groups.
    page = open(os.path.join(run_dir, "report.html")).read()
    assert "<h2>Latent groups</h2>" in page and "<td>14x14</td>" in page
    for kind in ("recon", "samples", "traversal"):
        assert os.path.exists(os.path.join(run_dir, "images", f"{kind}_epoch_0002.png"))


def test_each_epoch_fits_the_sampling_prior_to_every_groups_posterior_means(
        fitted_hierarchical_run):
    from vae_tf import datasets

    config, run_dir = fitted_hierarchical_run
    model = load_vae(run_dir)  # the last epoch's checkpoint, fitted after that epoch
    # The fit's images: the training split through the test pipeline (in order,
    # binarized once), as training fits them.
    data = datasets.load(config)
    batches = callbacks.prior_fit_batches(data, config)
    means = np.concatenate([model.prior_fit_codes(x)[0].numpy() for x in batches])
    assert means.shape == (data.num_train, 2 + 98 + 392)
    # Each group's posterior mean in its prior's units, side by side, top first.
    images = next(iter(batches))
    for g, (m, _) in enumerate(model.group_posteriors(images)):
        start = [0, 2, 100][g]
        np.testing.assert_allclose(means[:len(m), start:start + m.shape[1]], m, atol=1e-5)
    mean, factor, weights, _, _ = latent.fit_low_rank_mixture(
        means, model.prior_factor.shape[1], model.prior_weights.shape[0])
    np.testing.assert_allclose(model.prior_mean.numpy(), mean, atol=1e-5)
    fitted = model.prior_factor.numpy()
    np.testing.assert_allclose(fitted @ fitted.T, factor @ factor.T, atol=1e-4)
    assert np.abs(fitted).max() > 1e-2  # not the zeros it starts as
    # ... and its mixture: as many components as fitted here, their shares alike.
    held = model.prior_weights.numpy()
    assert np.count_nonzero(held) == np.count_nonzero(weights) > 1
    np.testing.assert_allclose(np.sort(held), np.sort(weights), atol=0.02)
    # The export's sample signature draws from it (the top group's marginal as its
    # sampling_prior).
    run = TrainedRun(run_dir)
    np.testing.assert_allclose(run.sample(5, 2, 0.7), model.sample_images(5, 2, 0.7),
                               atol=1e-5)
    # Its decode signature puts the groups below the top at their fitted mean given it.
    codes = np.random.default_rng(1).normal(size=(5, model.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(run.decode(codes), model.decode(codes), atol=1e-5)


def test_a_mirrored_fit_encodes_each_batch_then_its_mirror_images(fitted_hierarchical_run):
    from vae_tf import datasets

    config, _ = fitted_hierarchical_run
    data = datasets.load(config)
    batches = lambda c: list(callbacks.prior_fit_batches(data, c).as_numpy_iterator())
    plain = batches(config)
    both = batches(config.replace(prior_fit_mirrored=True))
    assert len(both) == len(plain)
    assert sum(map(len, both)) == 2 * sum(map(len, plain)) == 2 * data.num_train
    for images, pair in zip(plain, both):
        np.testing.assert_array_equal(pair[:len(images)], images)
        np.testing.assert_array_equal(pair[len(images):], images[:, :, ::-1])
        assert not np.array_equal(images, images[:, :, ::-1])


def test_a_checkpoint_from_before_the_mixture_loads_with_its_one_gaussian(
        fitted_hierarchical_run, tmp_path):
    import shutil

    import h5py

    _, run_dir = fitted_hierarchical_run
    fitted = load_vae(run_dir)
    # The same run as an older vae_tf wrote it: the model's own variables without the
    # mixture's three (training steps, fitted mean, fitted factor), then the noise
    # generator's state.
    old_run = shutil.copytree(run_dir, tmp_path / "old")
    path = old_run / "checkpoints" / "epoch_0002.weights.h5"  # the run's last
    with h5py.File(path, "r+") as f:
        own = f["vars"]
        assert sorted(own.keys(), key=int) == [str(i) for i in range(7)]
        seed_state = own["6"][()]
        for key in ("3", "4", "5", "6"):
            del own[key]
        own.create_dataset("3", data=seed_state)
    older = load_vae(str(old_run))
    for new, old in zip(fitted.weights, older.weights):
        if new.name in ("prior_weights", "prior_component_means",
                        "prior_component_scale_trils"):
            continue
        np.testing.assert_array_equal(new.numpy(), old.numpy(), err_msg=new.path)
    np.testing.assert_array_equal(older.noise_seed.state.numpy(), seed_state)
    # The mixture at its start, one component N(0, I): the one Gaussian e = m + T F u
    # that run drew from, u the seed's first draw.
    k, rank = older.prior_component_means.shape
    np.testing.assert_array_equal(older.prior_weights.numpy(), np.eye(k)[0])
    np.testing.assert_array_equal(older.prior_component_means.numpy(), 0.0)
    np.testing.assert_array_equal(older.prior_component_scale_trils.numpy(),
                                  np.broadcast_to(np.eye(rank), (k, rank, rank)))
    u = tf.random.stateless_normal([4, rank], tf.constant([3, 1], tf.int64)).numpy()
    e = older.prior_mean.numpy() + u @ older.prior_factor.numpy().T
    sizes = [2, 98, 392]
    parts = np.split(e.astype(np.float32), np.cumsum(sizes)[:-1], axis=1)
    noise = [tf.constant(p.reshape(4, side, side, 2)) for p, side in zip(parts, (1, 7, 14))]
    expected = older.likelihood.mean(
        older.top_down.prior(4, gaussian.fixed_draw(noise), tf.ones([3])))
    np.testing.assert_allclose(older.sample_images(4, 3, 1.0), expected, atol=1e-5)


def test_sampling_at_temperature_zero_is_deterministic(hierarchical_run):
    _, run_dir = hierarchical_run
    model = load_vae(run_dir)
    a, b = (model.sample_images(4, seed, 0.0).numpy() for seed in (1, 2))
    np.testing.assert_array_equal(a, b)  # no noise reaches the images
    np.testing.assert_allclose(a, np.broadcast_to(a[:1], a.shape), atol=1e-6)
    one, again, other = (model.sample_images(4, s, 1.0).numpy() for s in (1, 1, 2))
    np.testing.assert_array_equal(one, again)
    assert np.abs(one - other).max() > 1e-3
    # One temperature per group: the top group alone at 1 differs from all at 0.
    top_only = model.sample_images(4, 1, [1.0, 0.0, 0.0]).numpy()
    assert np.abs(top_only - a).max() > 1e-4
    with pytest.raises(Exception, match="one per group"):
        hierarchical.temperatures_for([1.0, 0.5], 3)


def test_iwae_with_one_sample_is_the_elbo_estimate_of_the_same_noise(hierarchical_run):
    _, run_dir = hierarchical_run
    run = TrainedRun(run_dir)
    images = run.test_images(16)
    rec, kl, nll, kl_groups = evaluation.importance_bounds(run, images, num_samples=1, seed=5)

    # The same noise, drawn here from the export's documented seeds: image n's group g
    # from the stateless seed (5, n) folded with g + 1.
    model = load_vae(run_dir)
    eps = []
    for g, shape in enumerate(model.noise_shapes()):
        draws = []
        for n in range(len(images)):
            seed = tf.random.experimental.stateless_fold_in(tf.constant([5, n], tf.int64), g + 1)
            draws.append(tf.random.stateless_normal([1, *shape], seed))
        eps.append(tf.concat(draws, 0))
    model_rec, model_kl = model.elbo_terms(tf.constant(images), eps=eps)
    np.testing.assert_allclose(rec, model_rec.numpy(), rtol=1e-4)
    np.testing.assert_allclose(kl, model_kl.numpy().sum(-1), rtol=1e-4)
    np.testing.assert_allclose(kl_groups, model_kl.numpy(), rtol=1e-4, atol=1e-5)
    # K = 1: -log w = -log p(x|z) + log q(z|x) - log p(z) at that z, whose mean over
    # images is the ELBO's (the analytic KL) up to sampling noise.
    seeds = np.stack([np.full(16, 5), np.arange(16)], 1)
    _, log_weight, _ = model.importance_terms(tf.constant(images), tf.constant(seeds), 0, 1)
    np.testing.assert_allclose(nll, -log_weight.numpy()[:, 0], rtol=1e-4)
    gap = nll - (rec + kl)
    assert abs(gap.mean()) < 4 * gap.std() / np.sqrt(len(gap)) + 1e-3


def test_evaluate_reports_each_groups_kl_and_active_units(hierarchical_run):
    _, run_dir = hierarchical_run
    run = TrainedRun(run_dir)
    r = evaluation.evaluate(run, num_samples=4, num_images=40)
    assert [(g["side"], g["units"]) for g in r["groups"]] == [(1, 2), (7, 98), (14, 392)]
    assert sum(g["kl"] for g in r["groups"]) == pytest.approx(r["kl"], rel=1e-6)
    # The export's group posteriors: the top one is encode's; each group's count is numpy's.
    images = run.test_images(40)
    posteriors = run.group_posteriors(images)
    for exported, encoded in zip(posteriors[0], run.encode(images)):
        np.testing.assert_allclose(exported, encoded, rtol=1e-6)
    expected = [_numpy_active_units(m, v) for m, v in posteriors]
    assert [g["active_units"] for g in r["groups"]] == expected
    assert r["active_units"] == sum(expected)
    table = evaluation.format_table(r)
    assert f"active units        {sum(expected)} of 492" in table
    assert "group 2 (14x14)" in table


def test_evaluate_reports_the_bounds_over_all_groups(hierarchical_run):
    _, run_dir = hierarchical_run
    result = run_module("vae_tf.evaluate", f"--run_dir={run_dir}", "--num_images=40",
                        "--num_importance_samples=8")
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(open(os.path.join(run_dir, "eval.json")).read())
    assert [set(g) for g in values["groups"]] == [{"side", "units", "kl", "active_units"}] * 3
    # IWAE's bound is tighter than the ELBO on average, both in nats of binary images.
    assert 0 < values["nll_iwae"] <= values["neg_elbo"] + 1.0
    assert values["neg_elbo"] == pytest.approx(values["reconstruction"] + values["kl"])
    assert values["nll_iwae_bits_per_dim"] == pytest.approx(
        values["nll_iwae"] / (784 * np.log(2)))
    for command, args in (("sample", ["--num=9", "--temperature=0.6"]),
                          ("traverse", ["--index=1", "--steps=3"])):
        result = run_module(f"vae_tf.{command}", f"--run_dir={run_dir}", *args)
        assert result.returncode == 0, result.stderr[-3000:]
    samples = np.load(os.path.join(run_dir, "pictures", "samples_t0.6_seed0.npy"))
    assert samples.shape == (9, 28, 28, 1)
    # One temperature per group, top first: the export's draw for the same seed.
    result = run_module("vae_tf.sample", f"--run_dir={run_dir}", "--num=9",
                        "--group_temperatures=1,0.5,0")
    assert result.returncode == 0, result.stderr[-3000:]
    per_group = np.load(os.path.join(run_dir, "pictures", "samples_t1-0.5-0_seed0.npy"))
    run = TrainedRun(run_dir)
    np.testing.assert_allclose(per_group, run.sample(9, 0, [1.0, 0.5, 0.0]), atol=1e-6)
    assert np.abs(per_group - run.sample(9, 0, 1.0)).max() > 1e-3
    result = run_module("vae_tf.sample", f"--run_dir={run_dir}", "--group_temperatures=1,0.5")
    assert result.returncode != 0
    assert "give 3 temperatures >= 0, one per group of --hierarchy=1x1,7x1,14x1, not 2" \
        in result.stderr
    # evaluate --fid takes them too, and refuses a wrong count before its long part.
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={run_dir}", "--fid",
                                 "--group_temperatures=1,0.5"))
    assert "give 3 temperatures >= 0" in line


_SAMPLER = textwrap.dedent("""
    import sys
    sys.modules["vae_tf"] = None  # any import of the project now fails
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    sample = model.signatures["sample"]
    draw = lambda seed, t: sample(num=tf.constant(6), seed=tf.constant(seed, tf.int64),
                                  temperature=tf.constant(t, tf.float32))["images"].numpy()
    np.savez(sys.argv[2], a=draw(3, [0.7]), again=draw(3, [0.7]), other=draw(4, [0.7]),
             groups=draw(3, [1.0, 0.5, 0.0]))
""")


def test_the_export_samples_without_vae_tf_as_the_model_does(hierarchical_run, tmp_path):
    _, run_dir = hierarchical_run
    script = tmp_path / "sample.py"
    script.write_text(_SAMPLER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(script), os.path.join(run_dir, "saved_model"),
                           str(tmp_path / "out.npz")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    model = load_vae(run_dir)
    np.testing.assert_array_equal(out["a"], out["again"])
    assert np.abs(out["a"] - out["other"]).max() > 1e-3
    np.testing.assert_allclose(out["a"], model.sample_images(6, 3, 0.7).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["groups"], model.sample_images(6, 3, [1.0, 0.5, 0.0]).numpy(),
                               atol=1e-5)


def test_a_killed_hierarchical_run_resumes_where_it_stopped(tmp_path):
    args = ["--dataset=synthetic", "--architecture=hierarchical", "--conv_channels=8",
            "--latent_dim=2", "--hierarchy=1x1,7x1,14x1", "--blocks_per_stage=1",
            "--binarize=dynamic", "--epochs=2", "--steps_per_epoch=20", "--eval_steps=2",
            "--batch_size=16", "--grid_size=2", f"--output_dir={tmp_path}", "--run_name=h"]
    killed = run_module("vae_tf.train", *args, env={"VAE_TF_KILL_AT": "batch@30"})
    assert killed.returncode != 0
    result = run_module("vae_tf.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming after epoch 1" in result.stderr
    with open(tmp_path / "h" / "metrics.csv") as f:
        header, *rows = [line.strip().split(",") for line in f]
    steps = [int(row[header.index("step")]) for row in rows]
    assert steps == [20, 40]  # the schedule's step counter continued from the checkpoint
