"""The picture commands (sample, reconstruct, interpolate, traverse, scatter, manifold,
animate) on a run directory moved to another place, and their helpers."""

import math
import os
import shutil
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, ctrl_c_reaches_it, error_line, run_module, tiny_config
from vae_tf import train
from vae_tf.views import latent, pictures
from vae_tf.views.trained import TrainedRun
from vae_tf.errors import UserError

PAD, SIDE = 2, 28  # images.make_grid's padding; the synthetic images' side


def _png_size(n: int, cols: int):
    """(width, height) of a saved grid of n 28x28 images: images.save_png enlarges by
    an integer factor until the shorter side reaches 256 pixels."""
    rows = math.ceil(n / cols)
    height, width = rows * (SIDE + PAD) + PAD, cols * (SIDE + PAD) + PAD
    factor = math.ceil(256 / min(height, width))
    return width * factor, height * factor


@pytest.fixture(scope="module")
def moved_run(tmp_path_factory):
    """A trained 2-D latent run, copied elsewhere and the original deleted, so that
    nothing can reach back to where training wrote."""
    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(latent_dim=2, epochs=2, steps_per_epoch=30, output_dir=str(out),
                         run_name="orig")
    run_dir = train.run(config)["run_dir"]
    moved = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(run_dir, moved)
    shutil.rmtree(run_dir)
    return moved


def _command(module, run_dir, *args):
    result = run_module(f"vae_tf.{module}", f"--run_dir={run_dir}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_sample_writes_grid_and_array(moved_run):
    _command("sample", moved_run, "--num=10", "--temperature=0.8")
    png = moved_run / "pictures" / "samples_t0.8_seed0.png"
    assert Image.open(png).size == _png_size(10, cols=4)
    samples = np.load(moved_run / "pictures" / "samples_t0.8_seed0.npy")
    assert samples.shape == (10, 28, 28, 1) and samples.dtype == np.float32
    assert 0.0 <= samples.min() and samples.max() <= 1.0 and samples.std() > 0.01


def test_sample_temperature_sweep_is_one_row_per_temperature_from_one_seed(moved_run):
    _command("sample", moved_run, "--num=5", "--temperatures=1,0.5,0", "--seed=3")
    png = moved_run / "pictures" / "samples_sweep_t1-0.5-0_seed3.png"
    rows = np.load(png.with_suffix(".npy"))
    assert rows.shape == (3, 5, 28, 28, 1)
    width, height = Image.open(png).size
    assert height > 3 * 64 and width > 5 * 64  # three rows of five, enlarged to ~64 px
    run = TrainedRun(str(moved_run))
    for row, temperature in zip(rows, (1, 0.5, 0)):
        np.testing.assert_allclose(row, pictures.samples(run, 5, temperature, 3), atol=1e-6)
    # T=0 is the prior's mean code in every cell; T=1 draws different codes.
    assert np.ptp(rows[2], axis=0).max() < 1e-6 and np.ptp(rows[0], axis=0).max() > 0.05
    bad = run_module("vae_tf.sample", f"--run_dir={moved_run}", "--temperatures=1,-1")
    assert "temperatures are >= 0" in error_line(bad)


def test_reconstruct_shows_test_image_n_beside_its_reconstruction(moved_run):
    _command("reconstruct", moved_run, "--index=5")
    png = np.asarray(Image.open(moved_run / "pictures" / "reconstruct_5.png"))
    assert png.shape[::-1] == _png_size(2, cols=2)
    factor = png.shape[0] // (SIDE + 2 * PAD)
    original = png[PAD * factor:(PAD + SIDE) * factor:factor, PAD * factor:(PAD + SIDE) * factor:factor]
    expected = TrainedRun(str(moved_run)).test_images(6)[5, ..., 0]
    np.testing.assert_array_equal(original, np.round(expected * 255))

    _command("reconstruct", moved_run, "--index=0:6")
    size = Image.open(moved_run / "pictures" / "reconstruct_0-5.png").size
    assert size == _png_size(12, cols=8)  # 4 pairs per row


def _listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_reconstruct_bad_index_is_one_line(moved_run):
    before = _listing(moved_run / "pictures")
    line = error_line(run_module("vae_tf.reconstruct", f"--run_dir={moved_run}",
                                  "--index=512"))
    assert "--index=512 is out of range" in line and "512 images" in line
    line = error_line(run_module("vae_tf.reconstruct", f"--run_dir={moved_run}",
                                  "--index=9:3"))
    assert "START < STOP" in line
    assert _listing(moved_run / "pictures") == before


def test_latent_picture_commands(moved_run):
    pictures = moved_run / "pictures"
    _command("interpolate", moved_run, "--index_a=2", "--index_b=7", "--steps=5")
    assert Image.open(pictures / "interpolate_2_7.png").size == _png_size(7, cols=7)
    _command("traverse", moved_run, "--index=3", "--steps=5")
    assert Image.open(pictures / "traverse_3.png").size == _png_size(2 * 5, cols=5)
    _command("manifold", moved_run, "--grid_size=6")
    assert Image.open(pictures / "manifold.png").size == _png_size(36, cols=6)
    _command("scatter", moved_run, "--num_images=300")
    scatter = np.asarray(Image.open(pictures / "scatter_pca.png").convert("RGB"))
    assert scatter.shape == (800, 800, 3)
    # Three label colours of matplotlib's tab10 (blue, orange, green) are drawn, at
    # the points' alpha of 0.6 on white (where points do not overlap).
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        on_white = 0.6 * np.array(colour) + 0.4 * 255
        assert np.any(np.abs(scatter.astype(int) - on_white).sum(axis=-1) < 40), colour


def test_scatter_by_tsne_and_umap_beside_a_second_run(moved_run, tmp_path):
    result = _command("scatter", moved_run, "--num_images=200", "--method=tsne")
    assert "[t-SNE] Iteration" in result.stdout and "t-SNE of 200 codes" in result.stdout
    assert Image.open(moved_run / "pictures" / "scatter_tsne.png").size == (800, 800)
    # A second run of other codes of the same images: two panels side by side.
    other = tmp_path / "other"
    shutil.copytree(moved_run, other)
    result = _command("scatter", moved_run, "--num_images=200", "--method=umap",
                      f"--beside_run_dir={other}")
    assert "UMAP of 200 codes x 2 run(s)" in result.stdout
    picture = moved_run / "pictures" / "scatter_umap_beside_other.png"
    assert Image.open(picture).size == (1600, 800)
    line = error_line(run_module("vae_tf.scatter", f"--run_dir={moved_run}",
                                 "--attribute=Smiling"))
    assert "CelebA" in line and "trained on synthetic" in line


def test_projections_are_seeded_and_keep_clusters():
    from vae_tf.views import embedding

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 10
    codes = (centres[np.arange(90) % 3] + rng.normal(size=(90, 8))).astype(np.float32)
    points, names = embedding.project(codes, "tsne", seed=1, verbose=False)
    again, _ = embedding.project(codes, "tsne", seed=1, verbose=False)
    assert names == ("t-SNE 1", "t-SNE 2") and np.array_equal(points, again)
    # Each point's nearest neighbour in the map is from its own cluster.
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(90) * 1e9
    assert np.all(distances.argmin(axis=1) % 3 == np.arange(90) % 3)


def test_animate_makes_a_frame_per_epoch(moved_run, tmp_path):
    gif = Image.open(moved_run / "images" / "samples.gif")  # written when training ended
    assert gif.n_frames == 2
    result = _command("animate", moved_run, f"--output={tmp_path}/a.gif", "--frame_ms=100")
    assert "2 frames" in result.stdout
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 2
    assert gif.size == Image.open(moved_run / "images" / "samples_epoch_0001.png").size
    # By default into pictures/, never over training's own images/samples.gif.
    before = (moved_run / "images" / "samples.gif").read_bytes()
    _command("animate", moved_run, "--frame_ms=100")
    assert Image.open(moved_run / "pictures" / "samples.gif").n_frames == 2
    assert (moved_run / "images" / "samples.gif").read_bytes() == before


def test_code_helpers():
    z_a, z_b = np.zeros(3, np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    line = latent.interpolation_codes(z_a, z_b, 5)
    np.testing.assert_allclose(line[[0, -1]], [z_a, z_b])
    np.testing.assert_allclose(line[2], 0.5 * z_b)

    codes = latent.traversal_codes(np.array([5.0, 6.0, 7.0]), np.array([-1.0, 1.0]))
    np.testing.assert_array_equal(codes, [[-1, 6, 7], [1, 6, 7], [5, -1, 7], [5, 1, 7],
                                          [5, 6, -1], [5, 6, 1]])
    # Named dimensions only: their rows, in the order given.
    codes = latent.traversal_codes(np.array([5.0, 6.0, 7.0]), np.array([-1.0, 1.0]), dims=[2, 0])
    np.testing.assert_array_equal(codes, [[5, 6, -1], [5, 6, 1], [-1, 6, 7], [1, 6, 7]])
    # The dimensions worth a traversal: those whose codes vary most, in index order.
    means = np.random.default_rng(1).standard_normal((32, 5)) * [0.1, 3.0, 0.2, 2.0, 0.0]
    np.testing.assert_array_equal(latent.most_varied_dims(means, 2), [1, 3])
    np.testing.assert_array_equal(latent.most_varied_dims(means, 3), [1, 2, 3])
    np.testing.assert_array_equal(latent.most_varied_dims(means, 5), np.arange(5))

    grid = latent.manifold_codes(3).reshape(3, 3, 2)
    assert grid[0, 0, 0] < grid[0, 2, 0] and grid[0, 0, 1] > grid[2, 0, 1]  # x right, y up
    np.testing.assert_allclose(grid[1, 1], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(grid[0, 2], [1.6449, 1.6449], atol=1e-3)  # the 95% quantile

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((500, 4)) * [5.0, 0.1, 2.0, 0.1]
    points, names = latent.project_2d(codes)
    assert points.shape == (500, 2) and names[0].startswith("PC1 (86%")
    np.testing.assert_allclose(np.abs(np.corrcoef(points[:, 0], codes[:, 0])[0, 1]), 1, atol=1e-2)
    same, names = latent.project_2d(codes[:, :2])
    assert names == ("z1", "z2") and np.array_equal(same, codes[:, :2])


def test_manifold_needs_two_latent_dimensions():
    with pytest.raises(UserError, match="latent_dim=3"):
        pictures.manifold(types.SimpleNamespace(latent_dim=3), 4)


def test_scatter_legend_names_the_classes(tmp_path, monkeypatch):
    import matplotlib.axes

    from vae_tf.datasets import CLASS_NAMES

    labels_drawn = []
    original = matplotlib.axes.Axes.scatter
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", lambda self, *a, **k: (
        labels_drawn.append(k.get("label")), original(self, *a, **k))[1])
    points = np.random.default_rng(0).normal(size=(40, 2))
    latent.save_scatter(str(tmp_path / "s.png"), points, np.arange(40) % 10, ("z1", "z2"),
                        "Fashion-MNIST", CLASS_NAMES["fashion_mnist"])
    assert labels_drawn == list(CLASS_NAMES["fashion_mnist"])
    assert Image.open(tmp_path / "s.png").size == (800, 800)


def test_latest_names_the_newest_run_of_the_output_folder(moved_run, tmp_path):
    outputs = tmp_path / "outputs"
    for age, name in ((100, "older"), (0, "newer")):
        shutil.copytree(moved_run, outputs / name, ignore=shutil.ignore_patterns("pictures"))
        stamp = os.path.getmtime(outputs / name) - age
        os.utime(outputs / name, (stamp, stamp))
    result = run_module("vae_tf.sample", "--run_dir=latest", "--num=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines()[0] == (
        "Run outputs/newer (--run_dir=latest: the newest in outputs/)")
    assert (outputs / "newer" / "pictures" / "samples_t1_seed0.png").exists()
    assert not (outputs / "older" / "pictures").exists()
    result = _command("report", outputs / "latest")
    assert result.stderr.splitlines()[0] == (
        f"Run {outputs}/newer (--run_dir={outputs}/latest: the newest in {outputs}/)")
    assert result.stdout == f"Wrote {outputs}/newer/report.html\n"
    empty = run_module("vae_tf.sample", f"--run_dir={tmp_path}/latest")
    assert error_line(empty) == (f"error: --run_dir={tmp_path}/latest: no run in "
                                        f"{tmp_path}/ to be the latest; train one first, or "
                                        "give the run's folder.")


def test_no_tensorflow_start_up_line_from_any_command(moved_run, tmp_path):
    from vae_tf.cli import COMMANDS
    from vae_tf.run.tfenv import BANNERS, NO_DRIVER_NOTICES

    run = f"--run_dir={moved_run}"
    args = {"train": ["--flagfile=flags/smoke.cfg", "--epochs=1", f"--output_dir={tmp_path}"],
            "evaluate": [run, "--num_images=64", "--num_importance_samples=2", "--fid=false",
                         f"--output={tmp_path}/eval.json"],
            "sample": [run, "--num=4"], "reconstruct": [run, "--index=1"],
            "interpolate": [run, "--index_a=0", "--index_b=1", "--steps=3"],
            "traverse": [run, "--index=0", "--steps=3"], "scatter": [run, "--num_images=100"],
            "attributes": [run],  # a CelebA command: one error line for this run
            "manifold": [run, "--grid_size=3"], "animate": [run], "report": [run]}
    # gradcheck (3 minutes here) imports TensorFlow first thing in main; like every
    # command module, it imports none itself. explore serves until stopped: below.
    assert set(args) == set(COMMANDS) - {"gradcheck", "explore"}
    modules = sorted(COMMANDS.target(name) for name in COMMANDS)
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, importlib\n"
         f"[importlib.import_module(m) for m in {modules!r}]\n"
         "print('tensorflow' in sys.modules)"], capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert imported.stdout == "False\n", imported.stderr[-2000:]
    for command, command_args in args.items():
        # TensorFlow's own default log level, as a user's shell has it.
        result = run_module(f"vae_tf.{command}", *command_args, env={"TF_CPP_MIN_LOG_LEVEL": None})
        assert result.returncode == (1 if command == "attributes" else 0), (
            command, result.stderr[-2000:])
        shown = [line for line in result.stderr.splitlines()
                 if any(notice in line for notice in BANNERS + NO_DRIVER_NOTICES)]
        assert shown == [], (command, shown)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    explore = subprocess.Popen([sys.executable, "-m", "vae_tf.explore", run, "--port=0"],
                               cwd=REPO, env={**env, "PYTHONPATH": REPO}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=ctrl_c_reaches_it)
    try:
        assert "http://127.0.0.1:" in explore.stdout.readline()  # serving
    finally:
        explore.send_signal(signal.SIGINT)
        _, stderr = explore.communicate(timeout=60)
    assert explore.returncode == 0, stderr[-2000:]
    assert not [line for line in stderr.splitlines()
                if any(notice in line for notice in BANNERS + NO_DRIVER_NOTICES)], stderr
