"""`python -m vae_tf.evaluate`: the likelihood bounds, eval.json, bad input; the AE baseline."""

import json
import math
import os
import shutil

import numpy as np
import pytest

from conftest import error_line, run_module, tiny_config
from vae_tf import train
from vae_tf.views import evaluation
from vae_tf.views.trained import TrainedRun


def test_iwae_bound_is_below_the_elbo_and_tightens_with_k(binarized_run):
    run = TrainedRun(binarized_run)
    results = {k: evaluation.evaluate(run, num_samples=k, num_images=64, decoder_batch_size=2000)
               for k in (1, 10, 100)}
    elbo = results[100]["neg_elbo"]
    nll = {k: r["nll_iwae"] for k, r in results.items()}
    # Same images, encoder and KL at every K; the ELBO's reconstruction term is an
    # average over K samples, so it agrees across K up to sampling noise (with one
    # sample per image, about 1 nat of standard error over these 64 images).
    for r in results.values():
        assert r["neg_elbo"] == pytest.approx(elbo, abs=2.5)
    assert nll[1] == pytest.approx(elbo, abs=2.5)  # one sample: the ELBO itself, noisily
    assert nll[100] <= nll[10] <= nll[1]
    assert nll[10] < elbo and nll[100] < elbo - 1.0, (nll, elbo)
    r = results[100]
    assert r["neg_elbo"] == pytest.approx(r["reconstruction"] + r["kl"])
    assert r["nll_iwae_bits_per_dim"] == pytest.approx(r["nll_iwae"] / (784 * math.log(2)))
    assert r["likelihood"].startswith("bernoulli on binarized pixels")
    assert 0 < r["mse"] < 0.25 and 1 <= r["active_units"] <= 4


def test_batching_does_not_change_the_figures(binarized_run):
    """K larger than --decoder_batch_size splits one image's samples over several decoder
    calls; several images per call is the other case. Same samples, same figures."""
    run = TrainedRun(binarized_run)
    images = run.test_images(5)
    mean, logvar = run.encode(images)
    split = evaluation.importance_bounds(run, images, 300, decoder_batch_size=128)
    grouped = evaluation.importance_bounds(run, images, 300, decoder_batch_size=900)
    assert split[0].shape == split[1].shape == split[2].shape == (5,)
    for a, b in zip(split, grouped):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    rec, kl, nll, kl_groups = split
    np.testing.assert_allclose(kl_groups, kl[:, None])  # a flat model: one group
    np.testing.assert_allclose(
        kl, 0.5 * np.sum(np.exp(logvar) + mean ** 2 - 1 - logvar, axis=1), rtol=1e-5)
    assert np.all(nll < rec + kl)  # per image too: the bound is far tighter than noise


def test_command_on_a_copied_run_writes_eval_json(binarized_run, tmp_path):
    copy = tmp_path / "moved" / "run"
    shutil.copytree(binarized_run, copy)
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--num_importance_samples=20",
                        "--num_images=100")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NLL_IWAE (K=20)" in result.stdout and "bits/dim" in result.stdout
    values = json.loads((copy / "eval.json").read_text())
    assert values["num_images"] == 100 and values["num_importance_samples"] == 20
    assert values["nll_iwae"] <= values["neg_elbo"]
    assert values["run_dir"] == str(copy)
    # The report it updated shows what it computed.
    assert f"updated {copy / 'report.html'}" in result.stdout
    page = (copy / "report.html").read_text()
    assert "<h2>Test likelihood</h2>" in page and "100 test images" in page
    for name, key in (("negative ELBO", "neg_elbo"), ("NLL_IWAE (K=20)", "nll_iwae")):
        assert (f"<tr><td>{name}</td><td>{values[key]:.2f}</td>"
                f"<td>{values[key + '_bits_per_dim']:.4f}</td></tr>") in page


def test_validation_split_is_evaluated_apart_from_the_test_split(binarized_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(binarized_run, copy)
    (copy / "eval.json").write_text("the test split's evaluation")
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--split=validation",
                        "--num_importance_samples=5", "--num_images=40")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "40 synthetic validation images" in result.stdout
    values = json.loads((copy / "eval_validation.json").read_text())
    assert values["split"] == "validation" and values["num_images"] == 40
    assert (copy / "eval.json").read_text() == "the test split's evaluation"
    # The figures are those of the run's validation images, not of its test images.
    run = TrainedRun(str(copy))
    validation, test = run.split_images("validation", 40), run.test_images(40)
    assert validation.shape == test.shape and np.abs(validation - test).max() > 0.5
    direct = evaluation.evaluate(run, num_samples=5, num_images=40, split="validation")
    assert values["neg_elbo"] == pytest.approx(direct["neg_elbo"], rel=1e-5)

    # A run trained without a validation split says so in one line.
    (copy / "config.json").write_text(
        (copy / "config.json").read_text().replace('"validation_size": -1',
                                                   '"validation_size": 0'))
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={copy}", "--split=validation"))
    assert "has no validation split" in line and "--split=test" in line


def test_bad_input_is_one_clear_line_and_loses_nothing(binarized_run, tmp_path):
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={tmp_path}/none"))
    assert "does not exist" in line

    copy = tmp_path / "run"
    shutil.copytree(binarized_run, copy)
    (copy / "eval.json").write_text("an earlier evaluation")
    shutil.rmtree(copy / "saved_model")
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={copy}"))
    assert "has no complete saved_model/" in line
    assert (copy / "eval.json").read_text() == "an earlier evaluation"


def test_autoencoder_baseline(tmp_path):
    config = tiny_config(model="ae", output_dir=str(tmp_path), run_name="ae")
    result = train.run(config)
    assert result["val_kl"] == 0.0
    assert result["val_loss"] == pytest.approx(result["val_reconstruction"])
    run = TrainedRun(result["run_dir"])
    images = run.test_images(8)
    mean, logvar = run.encode(images)
    np.testing.assert_array_equal(logvar, np.full_like(logvar, -30.0))  # a point mass
    np.testing.assert_allclose(run.reconstruct(images), run.decode(mean), atol=1e-6)
    values = evaluation.evaluate(run, num_images=64)
    assert values["model"] == "ae"
    assert values["neg_elbo"] is None and values["nll_iwae"] is None
    assert values["reconstruction"] > 0 and 0 < values["mse"] < 0.25
    assert os.path.isfile(os.path.join(result["run_dir"], "images", "samples.gif"))


def test_decoder_calls_are_sized_by_the_image_unless_given():
    # 10,000 pairs of 28x28 images, as many pixel values of 64x64 RGB ones.
    assert evaluation.decoder_pairs(0, (28, 28, 1)) == 10000
    assert evaluation.decoder_pairs(0, (64, 64, 3)) == 10000 * 784 // 12288 == 638
    assert evaluation.decoder_pairs(0, (4096, 4096, 3)) == 1
    assert evaluation.decoder_pairs(250, (64, 64, 3)) == 250
