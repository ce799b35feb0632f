"""The figures a run prints are what they claim: a dataset's preset as the default,
bits/dim only where they mean something, a test split that training never sees, and
the headline figures checked against computations independent of the code that
makes them (numpy on the export's signatures, the checkpoint file read with h5py)."""

import csv
import dataclasses
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import FREY_DIR, REPO, require_dir, run_module, tiny_config
from vae_tf import train
from vae_tf.views import evaluation
from vae_tf.datasets import synthetic
from vae_tf.datasets.base import ImageData
from vae_tf.views.trained import TrainedRun


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def _json(path):
    with open(path) as f:
        return json.load(f)


def _tensorboard_tags(run_dir):
    tags = set()
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "*", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def _coloured_shapes(seed_train=1, seed_test=2, num_train=512, num_test=128):
    """The synthetic shapes in colour: each image's shape in its own RGB colour."""
    def colour(images, seed):
        rgb = np.random.default_rng(seed).uniform(0.3, 1.0, (len(images), 1, 1, 3))
        return (images.astype(np.float32) * rgb).round().astype(np.uint8)
    (x, y), (tx, ty) = (synthetic.make_shapes(num_train, seed_train),
                        synthetic.make_shapes(num_test, seed_test))
    return ImageData.from_arrays(colour(x, 3), y, colour(tx, 4), ty, source="coloured shapes")


# -- the dataset's preset ------------------------------------------------------------
def test_dataset_command_starts_from_its_preset_and_a_flag_given_wins(tmp_path):
    frey = require_dir(FREY_DIR, "frey_rawface.mat")
    result = run_module("vae_tf.train", "--dataset=frey", f"--data_dir={frey}",
                        "--latent_dim=3", "--epochs=1", "--steps_per_epoch=5",
                        f"--output_dir={tmp_path}", "--run_name=frey")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Preset: flags/frey.cfg (the flags given on the command line "
                               "override it"), lines[:3]
    assert any("1565 train / 200 validation / 200 test images" in l for l in lines)
    saved = _json(tmp_path / "frey" / "config.json")
    # flags/frey.cfg's networks and likelihood, the latent size given.
    assert (saved["architecture"], saved["dense_units"], saved["recon_loss"],
            saved["learn_scale"], saved["batch_size"]) == ("dense", [200], "gaussian",
                                                           "shared", 100)
    assert saved["latent_dim"] == 3 and saved["epochs"] == 1


# -- bits/dim only where the likelihood is a probability of the image -----------------
def test_bernoulli_on_gray_pixels_reports_no_bits_per_dim(tmp_path, capsys):
    config = tiny_config(output_dir=str(tmp_path), run_name="gray", epochs=1)
    result = train.run(config)
    run_dir = result["run_dir"]
    epoch_line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Epoch 1/1")]
    assert len(epoch_line) == 1 and "validation loss" in epoch_line[0]
    assert "bits/dim" not in epoch_line[0]
    assert not [k for k in _rows(run_dir)[0] if "bits" in k]
    assert "bits_per_dim" not in _json(os.path.join(run_dir, "test.json"))
    assert not [t for t in _tensorboard_tags(run_dir) if "bits" in t]
    with open(os.path.join(run_dir, "report.html")) as f:
        assert "bits_per_dim" not in f.read()
    r = evaluation.evaluate(TrainedRun(run_dir), num_samples=5, num_images=32)
    assert r["neg_elbo_bits_per_dim"] is None and r["nll_iwae_bits_per_dim"] is None
    assert "bits/dim" not in evaluation.format_table(r)


def test_bits_per_dim_of_a_three_channel_discretized_run(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "rgb_images"
    folder.mkdir()
    images = _coloured_shapes(num_train=300, num_test=0).train
    for i, (image, _) in enumerate(images.as_numpy_iterator()):
        Image.fromarray(image).save(folder / f"shape_{i:03d}.png")
    config = tiny_config(dataset="folder", data_dir=str(folder), image_size=28,
                         cache_dir=str(tmp_path / "cache"), recon_loss="discretized_logistic",
                         output_dir=str(tmp_path), run_name="rgb", epochs=1, eval_steps=0)
    result = train.run(config)
    run_dir = result["run_dir"]
    run = TrainedRun(run_dir)
    # Dimensions from the run's own image shape: height x width x colour channels.
    assert run.image_shape == (28, 28, 3)
    dims = math.prod(run.image_shape)
    row = _rows(run_dir)[0]
    for prefix in ("", "val_"):
        assert float(row[prefix + "bits_per_dim"]) == pytest.approx(
            float(row[prefix + "loss"]) / (dims * math.log(2)), rel=1e-5)
    test = _json(os.path.join(run_dir, "test.json"))
    assert test["bits_per_dim"] == pytest.approx(test["loss"] / (dims * math.log(2)), rel=1e-5)
    with open(os.path.join(run_dir, "report.html")) as f:
        page = f.read()
    assert "<h2>Test split</h2>" in page and "SavedModel exported" in page
    epoch_line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Epoch 1/1")]
    assert f"validation {float(row['val_bits_per_dim']):.3f} bits/dim" in epoch_line[0]
    assert {"epoch_bits_per_dim"} <= _tensorboard_tags(run_dir)
    r = evaluation.evaluate(run, num_samples=5, num_images=32)
    assert r["nll_iwae_bits_per_dim"] == pytest.approx(r["nll_iwae"] / (dims * math.log(2)))
    assert r["neg_elbo_bits_per_dim"] == pytest.approx(r["neg_elbo"] / (dims * math.log(2)))


# -- the test split ------------------------------------------------------------------
def test_the_test_split_is_read_once_after_the_last_epoch(tmp_path, capsys):
    """Training reads the test split only for the final evaluation: the first read
    finds every epoch's checkpoint already written, and there is one read."""
    base = synthetic.load(tiny_config())
    test_x = np.stack([x for x, _ in base.test.as_numpy_iterator()])
    checkpoints = tmp_path / "split" / "checkpoints"
    reads = []

    def test_images():
        reads.append(sorted(os.listdir(checkpoints)) if checkpoints.is_dir() else [])
        yield from ((x, np.int64(-1)) for x in test_x)

    test = tf.data.Dataset.from_generator(test_images, output_signature=(
        tf.TensorSpec([28, 28, 1], tf.uint8), tf.TensorSpec([], tf.int64)))
    data = dataclasses.replace(base, test=test)
    config = tiny_config(output_dir=str(tmp_path), run_name="split", epochs=2, eval_steps=0)
    result = train.run(config, dataset_override=data)
    assert reads == [["epoch_0001.weights.h5", "epoch_0002.weights.h5"]]
    # The epochs were evaluated on the validation split: the last 205 training images.
    out = capsys.readouterr().out
    assert out.count("validation loss") == 2
    test_loss = _json(tmp_path / "split" / "test.json")["loss"]
    assert result["test_loss"] == pytest.approx(test_loss)
    assert float(_rows(result["run_dir"])[-1]["val_loss"]) != pytest.approx(test_loss)


def test_no_validation_split_trains_on_every_training_image(tmp_path, capsys):
    from vae_tf import datasets

    config = tiny_config(output_dir=str(tmp_path), run_name="all", epochs=1,
                         validation_size=0)
    data = datasets.load(config)
    assert (data.num_train, data.validation) == (synthetic.NUM_TRAIN, None)
    assert datasets.load(config.replace(validation_size=-1)).num_train == 2048 - 205
    result = train.run(config)
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Epoch 1/1")][0]
    assert "validation" not in line and "test" not in line
    assert not [k for k in _rows(result["run_dir"])[0] if k.startswith("val_")]
    assert result["test_loss"] > 0  # the final evaluation still runs


# -- NLL_IWAE against numpy ------------------------------------------------------------
def _log_mean_exp(values):
    values = values.astype(np.float64)
    top = values.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(values - top).sum(axis=1)) - np.log(values.shape[1])


def test_nll_iwae_of_the_flat_model_from_the_export_against_numpy(binarized_run):
    """Importance weights log p(x|z) + log N(z; 0, I) - log q(z|x) computed here with
    numpy from the export's encode and log_likelihood signatures: their negative
    log-mean-exp is evaluate's NLL_IWAE. The standard-normal draws are evaluate's
    (image i's K rows from the stateless seed (0, i) folded with 1), so the two agree
    to float32 round-off, and a bound off by log K = 6.9 nats (a logsumexp in place of
    the log-mean-exp) or by a sign in a weight's terms cannot pass."""
    k, n = 1000, 8
    run = TrainedRun(binarized_run)
    images = run.test_images(n)
    model = tf.saved_model.load(os.path.join(binarized_run, "saved_model"))
    posterior = model.signatures["encode"](images=tf.constant(images))
    mean, logvar = posterior["mean"].numpy(), posterior["logvar"].numpy()
    eps = np.stack([tf.random.stateless_normal(
        [k, mean.shape[1]], tf.random.experimental.stateless_fold_in(
            tf.constant([0, i], tf.int64), 1)).numpy() for i in range(n)])
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    ll = model.signatures["log_likelihood"](
        images=tf.constant(np.repeat(images, k, axis=0)),
        z=tf.constant(z.reshape(n * k, -1)))["log_prob"].numpy().reshape(n, k)
    log_2pi = np.log(2 * np.pi)
    log_prior = -0.5 * np.sum(z.astype(np.float64) ** 2 + log_2pi, axis=-1)
    log_q = -0.5 * np.sum(eps.astype(np.float64) ** 2 + log_2pi + logvar[:, None], axis=-1)
    nll_numpy = -_log_mean_exp(ll + log_prior - log_q)

    rec, kl, nll, _ = evaluation.importance_bounds(run, images, k, seed=0)
    np.testing.assert_allclose(nll, nll_numpy, rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(rec, -ll.mean(axis=1), rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(
        kl, 0.5 * np.sum(np.exp(logvar) + mean ** 2 - 1 - logvar, axis=1), rtol=1e-5)
    # Not the ELBO: the bound is tighter.
    assert np.all(nll_numpy < rec + kl)


def _weights_from_the_signature(run_dir, images, k, seed=0):
    """log w [N, K] from the export's log_weights signature, with the seeds evaluate
    gives image i: (seed, i)."""
    model = tf.saved_model.load(os.path.join(run_dir, "saved_model"))
    seeds = np.stack([np.full(len(images), seed), np.arange(len(images))], axis=1)
    out = model.signatures["log_weights"](images=tf.constant(images),
                                          seeds=tf.constant(seeds, tf.int64),
                                          first=tf.constant(0), num=tf.constant(k))
    return out["log_weight"].numpy()


@pytest.mark.parametrize("architecture", ["conv", "hierarchical"])
def test_nll_iwae_is_the_log_mean_exp_of_the_exported_weights(tmp_path, architecture):
    """evaluate's NLL_IWAE(K) is -log (1/K) sum_k w_k of the weights the export's
    log_weights signature gives (numpy's log-mean-exp here), for the flat and the
    hierarchical model; with K=1 it is the single weight."""
    extra = dict(architecture="hierarchical", hierarchy="1x1,7x1", conv_channels=(8,)) \
        if architecture == "hierarchical" else {}
    config = tiny_config(binarize="dynamic", epochs=1, steps_per_epoch=20,
                         output_dir=str(tmp_path), run_name=architecture, **extra)
    run_dir = train.run(config)["run_dir"]
    run = TrainedRun(run_dir)
    images = run.test_images(6)
    k = 200
    log_w = _weights_from_the_signature(run_dir, images, k)
    assert log_w.shape == (6, k)
    _, _, nll, _ = evaluation.importance_bounds(run, images, k, seed=0, decoder_batch_size=300)
    np.testing.assert_allclose(nll, -_log_mean_exp(log_w), rtol=1e-5, atol=1e-3)
    _, _, nll_1, _ = evaluation.importance_bounds(run, images, 1, seed=0)
    np.testing.assert_allclose(nll_1, -log_w[:, 0], rtol=1e-5, atol=1e-3)
    assert np.all(nll < -log_w.mean(axis=1))  # below the K-sample ELBO estimate


# -- resume after a kill -----------------------------------------------------------------
RESUME_ARGS = ["--dataset=synthetic", "--epochs=3", "--steps_per_epoch=10", "--eval_steps=2",
               "--batch_size=32", "--latent_dim=4", "--conv_channels=8,16", "--grid_size=2",
               "--precision=float32", "--seed=5", "--lr_warmup_steps=5", "--lr_decay=cosine"]


def _h5_arrays(path):
    """{name: array} of every dataset in a .weights.h5 file, read with h5py alone."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def test_a_killed_run_resumes_adams_state_and_matches_an_uninterrupted_run(tmp_path):
    from vae_tf.training import checkpoints
    from vae_tf.run import rundir
    from vae_tf.models.build import build_vae

    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2",
           "VAE_TF_KILL_AT": "batch@25"}  # the middle of epoch 3
    killed = subprocess.run([sys.executable, "-m", "vae_tf.train", *RESUME_ARGS,
                             f"--output_dir={tmp_path}", "--run_name=killed"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = rundir.RunDir(str(tmp_path / "killed"))
    assert [e for e, _ in run.checkpoints()] == [2, 1]

    # Adam's state as the checkpoint file holds it, and as a resumed model holds it.
    saved = _h5_arrays(run.checkpoint(2))
    optimizer_saved = {name: a for name, a in saved.items() if name.startswith("optimizer/")}
    config = run.read_config()
    model = build_vae(config, (28, 28, 1), total_steps=30)
    assert checkpoints.restore_latest(model, run) == 2
    assert int(model.optimizer.iterations.numpy()) == 20
    values = [v.numpy() for v in model.optimizer.variables]
    assert len(values) == len(optimizer_saved) > 2  # iterations, and the moments
    for value, (name, array) in zip(values, sorted(optimizer_saved.items(),
                                                   key=lambda kv: int(kv[0].split("/")[-1]))):
        np.testing.assert_array_equal(value, array, err_msg=name)
    moments = [v for v in model.optimizer.variables if v.shape.rank and "momentum" in v.path]
    assert moments and any(np.abs(v.numpy()).max() > 0 for v in moments)

    resumed = run_module("vae_tf.train", *RESUME_ARGS, f"--output_dir={tmp_path}",
                         "--run_name=killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming after epoch 2" in resumed.stderr
    whole = run_module("vae_tf.train", *RESUME_ARGS, f"--output_dir={tmp_path}",
                       "--run_name=whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    # Same seed, same batches (the resumed stream skips the batches already trained):
    # the last epoch's figures and the final weights agree to float32 round-off.
    a, b = _rows(tmp_path / "killed")[-1], _rows(tmp_path / "whole")[-1]
    for key in ("loss", "val_loss", "val_kl", "step"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), key
    end_a = _h5_arrays(os.path.join(tmp_path, "killed", "checkpoints", "epoch_0003.weights.h5"))
    end_b = _h5_arrays(os.path.join(tmp_path, "whole", "checkpoints", "epoch_0003.weights.h5"))
    assert end_a.keys() == end_b.keys()
    for name in end_a:
        np.testing.assert_allclose(end_a[name], end_b[name], rtol=1e-4, atol=1e-5, err_msg=name)


# -- what the pictures hold ------------------------------------------------------------
@pytest.fixture(scope="module")
def plane_run(tmp_path_factory):
    """A briefly trained VAE with a 2-D latent space (the manifold needs one)."""
    out = tmp_path_factory.mktemp("plane")
    config = tiny_config(latent_dim=2, binarize="dynamic", epochs=2, steps_per_epoch=40,
                         output_dir=str(out), run_name="plane")
    return train.run(config)["run_dir"]


def _cells(path, rows, cols, cell_shape):
    """The grid PNG's cells [rows, cols, H, W, C] in [0, 1]: undoes save_png's integer
    enlargement and make_grid's 2-pixel padding."""
    from PIL import Image

    h, w, c = cell_shape
    grid_h, grid_w = rows * (h + 2) + 2, cols * (w + 2) + 2
    png = np.asarray(Image.open(path), np.float32) / 255.0
    factor = png.shape[0] // grid_h
    assert png.shape[:2] == (grid_h * factor, grid_w * factor), png.shape
    png = png[::factor, ::factor].reshape(grid_h, grid_w, c)
    return np.stack([np.stack([png[2 + r * (h + 2):2 + r * (h + 2) + h,
                                   2 + k * (w + 2):2 + k * (w + 2) + w]
                               for k in range(cols)]) for r in range(rows)])


def _decode(run_dir, codes):
    model = tf.saved_model.load(os.path.join(run_dir, "saved_model"))
    return model.signatures["decode"](z=tf.constant(codes, tf.float32))["images"].numpy()


PNG_TOLERANCE = 1.0 / 255 + 1e-4  # 8-bit rounding of the PNG


def test_a_traversal_changes_only_the_named_dimensions_code(plane_run, tmp_path):
    out = tmp_path / "traverse.png"
    result = run_module("vae_tf.traverse", f"--run_dir={plane_run}", "--index=3", "--steps=5",
                        "--limit=2", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    run = TrainedRun(plane_run)
    mean = run.encode(run.test_images(4)[3:4])[0][0]
    values = np.linspace(-2, 2, 5)
    cells = _cells(out, 2, 5, run.image_shape)
    for u in range(2):  # row u: dimension u swept, the other at the image's mean code
        codes = np.repeat(mean[None], 5, axis=0)
        codes[:, u] = values
        assert np.all(codes[:, 1 - u] == mean[1 - u])
        np.testing.assert_allclose(cells[u], _decode(plane_run, codes), atol=PNG_TOLERANCE)
    # The sweep does move the picture along each row.
    assert np.abs(cells[:, 0] - cells[:, -1]).max() > 0.05


def test_an_interpolations_ends_are_the_two_chosen_images(plane_run, tmp_path):
    out = tmp_path / "interpolate.png"
    result = run_module("vae_tf.interpolate", f"--run_dir={plane_run}", "--index_a=2",
                        "--index_b=5", "--steps=5", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    run = TrainedRun(plane_run)
    test = run.test_images(6)
    cells = _cells(out, 1, 7, run.image_shape)[0]
    np.testing.assert_allclose(cells[0], test[2], atol=PNG_TOLERANCE)
    np.testing.assert_allclose(cells[-1], test[5], atol=PNG_TOLERANCE)
    # Between them: the decoded mean codes of image 2 (t=0), their midpoint, image 5 (t=1).
    model = tf.saved_model.load(os.path.join(plane_run, "saved_model"))
    recon = model.signatures["reconstruct"](images=tf.constant(test[[2, 5]]))["images"].numpy()
    np.testing.assert_allclose(cells[1], recon[0], atol=PNG_TOLERANCE)
    np.testing.assert_allclose(cells[5], recon[1], atol=PNG_TOLERANCE)
    mean_a, mean_b = run.encode(test[[2, 5]])[0]
    np.testing.assert_allclose(cells[3], _decode(plane_run, [(mean_a + mean_b) / 2])[0],
                               atol=PNG_TOLERANCE)


def test_the_manifold_is_the_decoder_at_the_priors_quantiles(plane_run, tmp_path):
    from statistics import NormalDist

    out = tmp_path / "manifold.png"
    result = run_module("vae_tf.manifold", f"--run_dir={plane_run}", "--grid_size=4",
                        f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    run = TrainedRun(plane_run)
    cells = _cells(out, 4, 4, run.image_shape)
    quantile = [NormalDist().inv_cdf(q) for q in (0.05, 0.35, 0.65, 0.95)]
    # z1 grows to the right, z2 upwards (the top row holds the largest z2).
    codes = [[quantile[c], quantile[3 - r]] for r in range(4) for c in range(4)]
    np.testing.assert_allclose(cells.reshape(16, *run.image_shape), _decode(plane_run, codes),
                               atol=PNG_TOLERANCE)


def test_attribute_rows_move_the_code_along_the_attributes_vector(plane_run):
    """attributes' rows (pictures.attribute_rows on the export): the image, then the
    decoder at its code plus a times the vector, here the mean code of the discs minus
    that of the other shapes, computed with numpy; a=0 is the reconstruction."""
    from vae_tf.views import latent, pictures

    run = TrainedRun(plane_run)
    images, labels = run.test_images(200, with_labels=True)
    codes = run.encode(images)[0]
    has = (labels == 0)[:, None]
    codes64 = codes.astype(np.float64)
    vector = codes64[has[:, 0]].mean(axis=0) - codes64[~has[:, 0]].mean(axis=0)
    np.testing.assert_allclose(latent.attribute_vectors(codes, has)[0], vector, rtol=1e-5,
                               atol=1e-6)
    vector = vector.astype(np.float32)
    amounts = np.array([-2, 0, 2], np.float32)
    rows = pictures.attribute_rows(run, images[:3], codes[:3], vector, amounts)
    rows = rows.reshape(3, 4, *run.image_shape)
    np.testing.assert_array_equal(rows[:, 0], images[:3])
    np.testing.assert_allclose(rows[:, 2], run.reconstruct(images[:3]), atol=1e-5)
    for j, a in enumerate(amounts):
        np.testing.assert_allclose(rows[:, 1 + j], _decode(plane_run, codes[:3] + a * vector),
                                   atol=1e-5)


def test_checkpoints_of_other_shapes_are_refused_in_one_line_that_says_why(tmp_path):
    from vae_tf.errors import UserError
    from vae_tf.models.build import build_vae
    from vae_tf.run import rundir
    from vae_tf.training import checkpoints

    run = rundir.RunDir(str(tmp_path / "run"))
    os.makedirs(os.path.dirname(run.checkpoint(1)))
    checkpoints.save(build_vae(tiny_config(latent_dim=2), (28, 28, 1)), run.checkpoint(1))
    with pytest.raises(UserError) as error:
        checkpoints.restore_latest(build_vae(tiny_config(latent_dim=3), (28, 28, 1)), run)
    message = str(error.value)
    assert "\n" not in message and "shape" in message and "other shapes" in message
