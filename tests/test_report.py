"""Monitoring and the run report: logged columns, TensorBoard events, report.html and
the comparison page (their images decode, and render in a real browser)."""

import base64
import csv
import io
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from conftest import run_module, tiny_config
from vae_tf import train
from vae_tf.views import report_page
from vae_tf.views.latent import active_units
from vae_tf.errors import UserError

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs that differ in their KL schedule: {name: run_dir}."""
    out = tmp_path_factory.mktemp("runs")
    settings = {"constant": {},
                "cyclical": dict(kl_schedule="cyclical", kl_cycles=2, kl_cycle_ramp=1.0)}
    return {name: train.run(tiny_config(output_dir=str(out), run_name=name, **changes))["run_dir"]
            for name, changes in settings.items()}


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def _embedded_images(page: str) -> list:
    """The page's <img> elements, each decoded from its data URI."""
    sources = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources[:1]
    return [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]


def test_active_units_counts_varying_means():
    rng = np.random.default_rng(0)
    means = np.stack([rng.normal(0, 1.0, 500),      # used
                      rng.normal(3, 0.05, 500),     # variance 0.0025: collapsed
                      rng.normal(0, 0.2, 500)], 1)  # variance 0.04: used
    # Without posterior variances, or at the prior's, it is Burda et al.'s count.
    assert active_units(means) == 2
    assert active_units(means, np.zeros_like(means)) == 2


def test_active_units_are_measured_against_the_posteriors_spread():
    rng = np.random.default_rng(0)
    # Columns: codes an encoder shrank (means varying by 2e-3 around posteriors of
    # variance 1e-6); narrow posteriors (variance 0.1) whose means vary by 5e-3; a
    # collapsed unit (means varying by 2.5e-3 around the prior's variance); a used one.
    means = np.stack([rng.normal(0, 0.045, 500), rng.normal(0, 0.07, 500),
                      rng.normal(3, 0.05, 500), rng.normal(0, 1.0, 500)], 1)
    logvars = np.log(np.array([[1e-6, 0.1, 1.0, 0.05]])).repeat(500, axis=0)
    ratio = means.var(axis=0) / np.exp(logvars).mean(axis=0)
    assert ratio[0] > 1000 and ratio[1] > 0.04 and ratio[2] < 0.004 and ratio[3] > 10
    # The first two tell images apart and count, though their means vary by less than
    # Burda et al.'s absolute 0.01 (which counts the last alone).
    assert active_units(means, logvars) == 3
    assert active_units(means) == 1


def test_metrics_and_tensorboard_show_collapse_signals(runs):
    rows = _rows(runs["cyclical"])
    assert [int(r["step"]) for r in rows] == [8, 16]
    for r in rows:
        assert 0 <= int(float(r["active_units"])) <= 4
    # 16 steps in 2 cycles of 8, rising over the whole cycle: weights 0, 1/8, ... 7/8.
    # Each epoch logs its last step's weight (step 7, then step 15), not the mean.
    assert [float(r["kl_weight"]) for r in rows] == pytest.approx([7 / 8, 7 / 8])
    assert "val_kl_weight" not in rows[0]  # the test split reports the ELBO alone

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = {}
    for split in ("train", "validation", "images"):
        events = EventAccumulator(os.path.join(runs["cyclical"], "tensorboard", split))
        events.Reload()
        tags[split] = set(events.Tags()["tensors"])
    assert tags["train"] >= {"epoch_loss", "epoch_reconstruction", "epoch_kl", "epoch_kl_weight",
                             "epoch_active_units", "epoch_learning_rate"}
    assert tags["validation"] >= {"epoch_loss", "epoch_kl"}
    assert tags["images"] == {"recon", "samples", "traversal"}


def test_report_is_written_each_epoch_with_its_images(runs):
    run_dir = runs["constant"]
    with open(os.path.join(run_dir, "report.html")) as f:
        page = f.read()
    images = _embedded_images(page)
    # Curves, the latest reconstructions, samples and traversal, and 2 epochs of samples.
    assert len(images) == 6
    assert all(min(image.size) > 50 for image in images)
    traversal = Image.open(os.path.join(run_dir, "images", "traversal_epoch_0002.png"))
    assert traversal.size[1] > traversal.size[0] / 9 * 4 * 0.9  # 4 latent dims, 9 values each
    for text in ("VAE run constant", "active_units", "Samples across epochs", "kl_schedule",
                 "final (epoch 2)", "tensorboard --logdir"):
        assert text in page, text


def test_early_epochs_far_above_the_rest_are_left_off_the_axis():
    from matplotlib.figure import Figure

    falling = [412.7, 150.0, 95.0] + list(np.linspace(88.0, 83.4, 17))  # 20 epochs
    axes = Figure().subplots(1, 4)
    report_page._leave_early_peaks_off(axes[0], [falling, [v + 0.5 for v in falling]])
    low, high = axes[0].get_ylim()
    # The axis spans the epochs after the first two (a tenth of 20), with a margin.
    assert 82.7 < low < 83.4 and 95.5 < high < 97.0
    assert axes[0].texts[0].get_text() == "first epochs up to 413.2, off the top"
    # Curves without such a start (a KL rising from its first epochs too), or too
    # short to tell, keep matplotlib's axis.
    rising = [29.9] + list(np.linspace(32.5, 34.3, 9))
    for ax, series in ((axes[1], [list(np.linspace(90.0, 80.0, 20))]), (axes[2], [rising]),
                       (axes[3], [[400.0, 90.0]])):
        ax.plot(series[0])
        before = ax.get_ylim()
        report_page._leave_early_peaks_off(ax, series)
        assert ax.get_ylim() == before and not ax.texts


def test_report_and_compare_commands(runs, tmp_path):
    os.remove(os.path.join(runs["constant"], "report.html"))
    result = run_module("vae_tf.report", f"--run_dir={runs['constant']}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(os.path.join(runs["constant"], "report.html"))

    output = tmp_path / "compare.html"
    result = run_module("vae_tf.report", "--compare", runs["constant"], runs["cyclical"],
                        f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Wrote {output}" in result.stdout
    page = output.read_text()
    assert len(_embedded_images(page)) == 3  # overlaid curves and each run's latest samples
    assert "<th>kl_schedule</th>" in page and "<th>active_units</th>" in page
    assert "<td>cyclical</td>" in page and "<td>constant</td>" in page


def test_report_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        report_page.write_report(str(tmp_path))
    result = run_module("vae_tf.report", "--compare", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --compare needs two or more run directories after it."


def _chromium(*args):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# Written into a copy of the page: after the load event it records in the DOM how
# wide each image decoded (0 for a broken image), for --dump-dom to print.
_PROBE = """<script>
window.addEventListener("load", function () {
  var widths = Array.from(document.images, function (img) { return img.naturalWidth; });
  document.body.setAttribute("data-image-widths", widths.join(","));
});
</script></body>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} not found: apt-get install -y chromium (see .ci/run)")
def test_report_renders_in_headless_chromium(runs, tmp_path):
    page_path = os.path.join(runs["constant"], "report.html")
    screenshot = tmp_path / "report.png"
    result = _chromium(f"--screenshot={screenshot}", "--window-size=1300,2400",
                       f"file://{page_path}")
    assert screenshot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(screenshot).convert("L"), np.float32)
    assert pixels.shape == (2400, 1300)
    assert (pixels < 200).mean() > 0.05 and pixels.std() > 30  # text, plots, grids: not blank

    with open(page_path) as f:
        page = f.read()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE))
    result = _chromium("--dump-dom", f"file://{probe}")
    found = re.search(r'data-image-widths="([\d,]*)"', result.stdout)
    assert found, result.stderr[-2000:]
    widths = [int(w) for w in found.group(1).split(",")]
    assert len(widths) == page.count("<img") == 6
    assert min(widths) > 0, widths  # every image decoded: none broken


def test_a_long_codes_traversal_grid_sweeps_its_most_varied_dimensions(tmp_path, monkeypatch):
    from vae_tf.datasets import synthetic
    from vae_tf.models.build import build_vae
    from vae_tf.run.rundir import RunDir
    from vae_tf.training import callbacks
    from vae_tf.views import grids, latent, pictures

    model = build_vae(tiny_config(latent_dim=4), (28, 28, 1))
    images = synthetic.make_shapes(8, seed=3)[0].astype(np.float32) / 255.0
    means = np.asarray(model.encode(images)[0])
    # With room for 2 of the 4 rows: the two dimensions whose codes vary most.
    top = np.sort(np.argsort(np.var(means, axis=0))[-2:])
    monkeypatch.setattr(callbacks, "TRAVERSAL_ROWS", 2)
    grid_callback = callbacks.ImageGridCallback(RunDir(str(tmp_path)), images, seed=0,
                                                grid_size=2)
    grid_callback.set_model(model)
    grid_callback.on_epoch_end(0)
    saved = np.asarray(Image.open(tmp_path / "images" / "traversal_epoch_0001.png"))
    # Each swept at the first image's code, as a traversal of those two alone draws.
    rows = pictures.traversal(callbacks._ArrayModel(model), images[0], dims=top)
    assert len(rows) == 2 * latent.TRAVERSAL_STEPS
    grids.save_png(str(tmp_path / "expected.png"),
                   grids.make_grid(rows, cols=latent.TRAVERSAL_STEPS))
    np.testing.assert_array_equal(saved, np.asarray(Image.open(tmp_path / "expected.png")))
    # and they differ from the other dimensions' rows.
    others = pictures.traversal(callbacks._ArrayModel(model), images[0],
                                dims=sorted(set(range(4)) - set(top)))
    assert not np.array_equal(rows, others)
