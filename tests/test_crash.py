"""A run survives anything: SIGKILL at points spread over its whole life, two identical
commands at once, a full disk. Real processes, real files, a real small filesystem."""

import csv
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, error_line, run_module

EPOCHS = 3
# A folder of images (so that the image cache is built too) and a tiny network.
TINY = ["--dataset=folder", "--image_size=16", "--channels=1", f"--epochs={EPOCHS}",
        "--steps_per_epoch=4", "--eval_steps=1", "--batch_size=8", "--latent_dim=2",
        "--conv_channels=4,8", "--grid_size=2", "--recon_loss=gaussian"]
# Where the crash test kills the run (VAE_TF_KILL_AT, see vae_tf/run/faults.py), in the
# order a run reaches them. Counts (@n) are per process: a restarted process counts
# again from its own start.
KILL_POINTS = [
    "cache",                          # building the image cache
    "write:config.json",              # the run's settings, before the rename
    "batch@2",                        # in the middle of epoch 1
    "append:metrics.csv@1",           # half of metrics.csv's header line
    "write:recon_epoch_0001.png",     # a grid
    "write:report.html",              # the report
    "write:epoch_0001.weights.h5",    # the first checkpoint, before its rename
    "batch@7",                        # epoch 1 trained again, then the middle of epoch 2
    "append:metrics.csv@1",           # half of epoch 2's row
    "write:traversal_epoch_0002.png",
    "write:epoch_0002.weights.h5",
    "write:samples_epoch_0003.png",   # epoch 2 again, then a grid of epoch 3
    "write:samples.gif",              # after the last epoch, before the export
    "dir:saved_model",                # the export, complete but not renamed into place
]

LOAD_WITHOUT_VAE_TF = textwrap.dedent("""
    import sys
    sys.modules["vae_tf"] = None  # any import of the project now fails
    import numpy as np, tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    x = tf.zeros([2, *[int(d) for d in sys.argv[2].split(",")]])
    print("reconstruct", model.signatures["reconstruct"](images=x)["images"].shape)
""")


def _image_folder(path, count=64, side=24):
    """`count` real PNG files of simple shapes (squares and discs) on black."""
    rng = np.random.default_rng(0)
    os.makedirs(path)
    yy, xx = np.mgrid[:side, :side]
    for i in range(count):
        cy, cx, r = rng.integers(6, side - 6, size=2).tolist() + [int(rng.integers(3, 6))]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        square = (abs(yy - cy) < r) & (abs(xx - cx) < r)
        image = np.where(disc if i % 2 else square, 255, 0).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(path, f"shape_{i:03d}.png"))
    return path


def _env(**extra):
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _metrics_rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        text = f.read()
    assert text.endswith("\n"), text[-200:]
    return list(csv.DictReader(text.splitlines()))


def _checkpointed(run_dir):
    folder = os.path.join(run_dir, "checkpoints")
    epochs = [int(m.group(1)) for m in map(re.compile(r"^epoch_(\d+)\.weights\.h5$").match,
                                           os.listdir(folder) if os.path.isdir(folder) else [])
              if m]
    return max(epochs, default=0)


def _assert_complete(run_dir, image_shape):
    """The invariants of a finished run, whatever happened to it before."""
    rows = _metrics_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))  # each exactly once
    # The optimizer's state came back with each resume: its steps count on.
    assert [int(r["step"]) for r in rows] == [4 * e for e in range(1, EPOCHS + 1)]
    for r in rows:
        assert float(r["val_loss"]) == pytest.approx(
            float(r["val_reconstruction"]) + float(r["val_kl"]), rel=1e-4)
    for epoch in range(1, EPOCHS + 1):
        for kind in ("recon", "samples", "traversal"):
            Image.open(os.path.join(run_dir, "images", f"{kind}_epoch_{epoch:04d}.png")).load()
        assert os.path.isfile(os.path.join(run_dir, "checkpoints",
                                           f"epoch_{epoch:04d}.weights.h5"))
    Image.open(os.path.join(run_dir, "images", "samples.gif")).load()
    assert "</html>" in open(os.path.join(run_dir, "report.html")).read()
    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_VAE_TF,
                             os.path.join(run_dir, "saved_model"),
                             ",".join(map(str, image_shape))],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert f"reconstruct (2, {', '.join(map(str, image_shape))})" in loaded.stdout
    leftovers = [os.path.join(d, n) for d, dirs, names in os.walk(run_dir)
                 for n in dirs + names if ".tmp-" in n or ".old-" in n]
    assert not leftovers, leftovers


def test_kill_at_any_moment_loses_nothing(tmp_path):
    data = _image_folder(str(tmp_path / "images"))
    cache = tmp_path / "cache"
    args = [*TINY, f"--data_dir={data}", f"--cache_dir={cache}",
            f"--output_dir={tmp_path / 'out'}", "--run_name=crash"]
    run_dir = str(tmp_path / "out" / "crash")
    survived = []
    for point in KILL_POINTS:
        before = _checkpointed(run_dir)
        result = subprocess.run([sys.executable, "-m", "vae_tf.train", *args], cwd=REPO,
                                env=_env(VAE_TF_KILL_AT=point), capture_output=True,
                                text=True, timeout=300)
        # Killed at exactly that point: SIGKILL, as a power cut or the OOM killer would.
        assert result.returncode == -9, (point, result.returncode, result.stderr[-3000:])
        started = [int(e) for e in re.findall(rf"Epoch (\d+)/{EPOCHS}", result.stdout)]
        # No epoch that has a checkpoint is trained again.
        assert all(e > before for e in started), (point, before, started)
        survived.append(point)
        print(f"killed at {point:<32} resumed after epoch {before}, trained {started}")
    result = run_module("vae_tf.train", *args, env={})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Epoch {EPOCHS}/{EPOCHS}" not in result.stdout  # trained to the end before
    assert len(survived) == len(KILL_POINTS) >= 12
    _assert_complete(run_dir, (16, 16, 1))
    # One complete image cache; the killed build left nothing behind.
    assert [n for n in os.listdir(cache)] == [n for n in os.listdir(cache)
                                               if not n.startswith(".") and ".tmp-" not in n]
    assert len(os.listdir(cache)) == 1


def test_two_identical_commands_never_share_a_run(tmp_path):
    data = _image_folder(str(tmp_path / "images"))
    out = tmp_path / "out"
    args = [*TINY, f"--data_dir={data}", f"--cache_dir={tmp_path / 'cache'}",
            f"--output_dir={out}"]

    # Without --run_name, started together: one run each.
    procs = [subprocess.Popen([sys.executable, "-m", "vae_tf.train", *args], cwd=REPO,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outputs]
    runs = sorted(os.listdir(out))
    assert len(runs) == 2, runs
    for name in runs:
        _assert_complete(str(out / name), (16, 16, 1))

    # With the same --run_name: the second stops with one line naming the first.
    named = [*args, "--run_name=shared"]
    first = subprocess.Popen([sys.executable, "-m", "vae_tf.train", *named, "--epochs=30"],
                             cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "shared" / "config.json").exists() and time.time() < deadline:
            time.sleep(0.1)
        second = run_module("vae_tf.train", *named, "--epochs=30")
        line = error_line(second)
        print(f"runs started together: {runs}; the same --run_name twice: {line}")
        assert f"being trained by process {first.pid}" in line and "shared" in line
    finally:
        first.kill()
        first.wait()


SMALL_RUN = ["--dataset=synthetic", f"--epochs={EPOCHS}", "--steps_per_epoch=4",
             "--eval_steps=1", "--batch_size=8", "--latent_dim=2", "--conv_channels=4,8",
             "--grid_size=2"]


@pytest.fixture(scope="module")
def small_run_bytes(tmp_path_factory):
    """The size of a whole SMALL_RUN run directory."""
    out = tmp_path_factory.mktemp("reference")
    result = run_module("vae_tf.train", *SMALL_RUN, f"--output_dir={out}", "--run_name=ref")
    assert result.returncode == 0, result.stderr[-2000:]
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(out / "ref")
               for n in names)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs mounted for the test (skips where mounting is not allowed)."""
    disk = tmp_path / "disk"
    os.makedirs(disk)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


# Room left on the disk, as a share of a whole run, so that it fills under different
# writers (here: the report at 0.1, a checkpoint at 0.3, TensorFlow's SavedModel
# writer at 0.97; the exact one depends on the sizes of the files).
@pytest.mark.parametrize("room", [0.1, 0.3, 0.97])
def test_full_disk_is_one_line_then_the_same_command_continues(small_disk, small_run_bytes,
                                                                room):
    with open(small_disk / "ballast", "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(small_disk).free - int(room * small_run_bytes)))
    args = [*SMALL_RUN, f"--output_dir={small_disk / 'out'}", "--run_name=full"]
    result = run_module("vae_tf.train", *args)
    line = error_line(result)  # exit 1, one line, no traceback
    print(f"room for {room:.0%} of a run: {line}")
    assert "No space left on device" in line and "run the same command again" in line
    assert str(small_disk / "out" / "full") in line  # names the path being written

    os.remove(small_disk / "ballast")
    result = run_module("vae_tf.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = str(small_disk / "out" / "full")
    rows = _metrics_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert [int(r["step"]) for r in rows] == [4 * e for e in range(1, EPOCHS + 1)]
    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_VAE_TF,
                             os.path.join(run_dir, "saved_model"), "28,28,1"],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
