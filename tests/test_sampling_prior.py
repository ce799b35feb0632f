"""The sampling prior: the Gaussian fitted to the aggregate posterior against direct
computations, and a run with --sample_prior=fitted whose export, sample command and
checkpoints hold the Gaussian fitted to its own training codes."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module, tiny_config
from vae_tf import datasets, train
from vae_tf.views import latent
from vae_tf.views.trained import TrainedRun


def test_fitted_gaussian_is_the_aggregate_posteriors_moments():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(400, 3)) @ np.array([[2.0, 0, 0], [1.0, 0.5, 0], [0, 0, 0.1]])
    logvars = rng.uniform(-3.0, 0.0, size=(400, 3))
    mean, scale_tril = latent.fit_gaussian(means, logvars)
    # Monte Carlo: draws from the mixture (1/N) sum_n N(means[n], diag(exp(logvars[n]))).
    pick = rng.integers(0, 400, size=400_000)
    draws = means[pick] + np.exp(0.5 * logvars[pick]) * rng.standard_normal((400_000, 3))
    np.testing.assert_allclose(mean, draws.mean(0), atol=0.02)
    np.testing.assert_allclose(scale_tril @ scale_tril.T, np.cov(draws, rowvar=False),
                               rtol=0.03, atol=0.01)
    assert np.allclose(scale_tril, np.tril(scale_tril))
    # Codes drawn through it have those moments; temperature scales the spread only.
    codes = latent.prior_codes(200_000, 3, 1, 0.5, mean, scale_tril).astype(np.float64)
    np.testing.assert_allclose(codes.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(codes, rowvar=False), 0.25 * scale_tril @ scale_tril.T,
                               rtol=0.03, atol=0.01)


def test_low_rank_gaussian_is_the_means_leading_principal_directions():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    cov = np.cov(means, rowvar=False, bias=True)
    # At full rank: the means' covariance itself.
    mean, factor = latent.fit_low_rank_gaussian(means, rank=6)
    np.testing.assert_allclose(mean, means.mean(0))
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=1e-10, atol=1e-10)
    # At rank 2: the covariance's two leading eigenpairs.
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, -2:] * np.sqrt(values[-2:])
    _, factor = latent.fit_low_rank_gaussian(means, rank=2)
    np.testing.assert_allclose(factor @ factor.T, top @ top.T, rtol=1e-8, atol=1e-10)
    # Draws mean + F u have that covariance.
    draws = mean + rng.standard_normal((200_000, 2)) @ factor.T
    np.testing.assert_allclose(np.cov(draws, rowvar=False), top @ top.T, rtol=0.03, atol=0.02)
    # A rank beyond what the codes span: the extra columns are zero.
    _, factor = latent.fit_low_rank_gaussian(means[:4], rank=8)
    assert factor.shape == (6, 8) and np.all(factor[:, 4:] == 0)


def test_low_rank_gaussian_of_many_dimensions_matches_the_exact_principal_directions():
    # 300 dimensions at rank 8: the randomized range finder's path (8 + its
    # oversampling < 300), against numpy's eigendecomposition of the covariance.
    rng = np.random.default_rng(2)
    scales = np.geomspace(10.0, 0.1, 40)
    means = (rng.normal(size=(500, 40)) * scales) @ rng.normal(size=(40, 300))
    values, vectors = np.linalg.eigh(np.cov(means, rowvar=False, bias=True))
    top = vectors[:, -8:] * np.sqrt(values[-8:])
    _, factor = latent.fit_low_rank_gaussian(means, rank=8)
    np.testing.assert_allclose(factor @ factor.T, top @ top.T,
                               atol=1e-6 * np.abs(top @ top.T).max())


def test_low_rank_mixture_finds_the_clusters_in_the_gaussians_standardized_coordinates():
    # Three clusters of codes (shares 0.5, 0.3, 0.2) in 30 dimensions, each spread
    # along its own directions.
    rng = np.random.default_rng(3)
    centres = rng.normal(0.0, 4.0, size=(3, 30))
    counts = [600, 360, 240]
    means = np.concatenate([c + rng.normal(size=(n, 5)) @ rng.normal(0.0, 0.5, size=(5, 30))
                            for c, n in zip(centres, counts)])
    mean, factor, weights, component_means, scale_trils = latent.fit_low_rank_mixture(
        means, rank=10, components=3)
    # The same Gaussian as fit_low_rank_gaussian; the codes' coordinates c on it
    # (e = mean + F c) by least squares.
    reference_mean, reference_factor = latent.fit_low_rank_gaussian(means, rank=10)
    np.testing.assert_allclose(mean, reference_mean)
    np.testing.assert_allclose(factor @ factor.T, reference_factor @ reference_factor.T,
                               atol=1e-8)
    coords = np.linalg.lstsq(factor, (means - mean).T, rcond=None)[0].T
    np.testing.assert_allclose(coords.mean(0), 0.0, atol=1e-8)
    np.testing.assert_allclose(np.cov(coords, rowvar=False, bias=True), np.eye(10), atol=1e-8)
    # One component per cluster: its share, its coordinates' mean and covariance.
    order = np.argsort(-weights)
    np.testing.assert_allclose(weights[order], [0.5, 0.3, 0.2], atol=1e-6)
    start = np.cumsum([0] + counts)
    for k, (a, b) in zip(order, zip(start[:-1], start[1:])):
        np.testing.assert_allclose(component_means[k], coords[a:b].mean(0), atol=1e-6)
        covariance = np.cov(coords[a:b], rowvar=False, bias=True)
        np.testing.assert_allclose(scale_trils[k] @ scale_trils[k].T,
                                   covariance + latent.MIXTURE_COVARIANCE_RIDGE * np.eye(10),
                                   atol=1e-6)
        assert np.allclose(scale_trils[k], np.tril(scale_trils[k]))
    # Fewer codes than components and directions: the rest have weight 0 and zeros.
    _, factor, weights, component_means, scale_trils = latent.fit_low_rank_mixture(
        means[:4], rank=8, components=6)
    assert weights.shape == (6,) and np.all(weights[4:] == 0) and abs(weights.sum() - 1) < 1e-9
    # (4 centred codes span 3 directions.)
    assert np.all(component_means[:, 3:] == 0) and np.all(scale_trils[:, 3:, :] == 0)
    assert np.all(np.isfinite(scale_trils)) and np.abs(component_means).max() < 10
    # Codes all alike: one component at the mean.
    mean, _, weights, component_means, _ = latent.fit_low_rank_mixture(
        np.ones((5, 4)), rank=2, components=3)
    np.testing.assert_allclose(mean, 1.0)
    assert list(weights) == [1, 0, 0] and np.all(component_means == 0)


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    config = tiny_config(output_dir=str(tmp_path_factory.mktemp("runs")),
                         sample_prior="fitted", precision="float32", run_name="fitted")
    return config, train.run(config)["run_dir"]


def test_the_export_holds_the_gaussian_of_the_training_codes(fitted_run):
    config, run_dir = fitted_run
    run = TrainedRun(run_dir)
    prior = {k: v.numpy() for k, v in run.signatures["sampling_prior"]().items()}
    # The fit's images: the synthetic shapes' training split, in order (all 2048).
    data = datasets.load(config)
    images = np.concatenate([x for x, _ in data.train.batch(512).as_numpy_iterator()])
    mean, scale_tril = latent.fit_gaussian(*run.encode(images.astype(np.float32) / 255.0))
    np.testing.assert_allclose(prior["mean"], mean, atol=1e-4)
    np.testing.assert_allclose(prior["scale_tril"], scale_tril, atol=1e-4)
    assert np.abs(scale_tril - np.eye(config.latent_dim)).max() > 0.05  # not N(0, I)

    # The sample command decodes mean + T * L e for the seed's e.
    result = run_module("vae_tf.sample", f"--run_dir={run_dir}", "--num=6",
                        "--temperature=0.5", "--seed=4")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(f"{run_dir}/pictures/samples_t0.5_seed4.npy")
    e = _seed_noise(6, config.latent_dim, seed=4) * 0.5
    z = (mean + e @ scale_tril.T).astype(np.float32)
    expected = run.signatures["decode"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(saved, expected, atol=1e-4)


def test_each_epochs_checkpoint_carries_that_epochs_fit(fitted_run):
    from vae_tf.training.checkpoints import load_vae

    _, run_dir = fitted_run
    exported = TrainedRun(run_dir).signatures["sampling_prior"]()["scale_tril"].numpy()
    first, last = (load_vae(run_dir, epoch=e).prior_scale_tril.numpy() for e in (1, 2))
    np.testing.assert_allclose(last, exported, atol=1e-6)  # a resumed run starts from it
    assert np.abs(first - last).max() > 1e-3  # refitted after every epoch


def test_a_standard_run_samples_from_n_0_i(tmp_path):
    config = tiny_config(output_dir=str(tmp_path), epochs=1, precision="float32")
    run = TrainedRun(train.run(config)["run_dir"])
    prior = run.signatures["sampling_prior"]()
    np.testing.assert_array_equal(prior["mean"].numpy(), np.zeros(config.latent_dim))
    np.testing.assert_array_equal(prior["scale_tril"].numpy(), np.eye(config.latent_dim))
    expected = run.decode(_seed_noise(5, config.latent_dim, seed=2))
    np.testing.assert_allclose(run.sample(5, seed=2), expected, atol=1e-6)


def _seed_noise(num, latent_dim, seed):
    """The standard-normal codes the export's `sample` draws for a seed."""
    return tf.random.stateless_normal([num, latent_dim], [seed, 1]).numpy()
