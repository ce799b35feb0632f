"""CelebA: the layouts users download, the official split, bad files, missing data."""

import os
import shutil
import zipfile

import pytest
from PIL import Image

from conftest import (CELEBA_DIR, REPO, add_bad_files, copy_celeba_images, require_dir,
                      run_module, tiny_config)
from vae_tf import datasets
from vae_tf.datasets import celeba
from vae_tf.datasets.base import network_available
from vae_tf.errors import UserError


@pytest.fixture
def celeba_dir():
    return require_dir(CELEBA_DIR, "CelebA img_align_celeba + list_eval_partition.txt")


def _counts(source):
    return {split: len(list(items)) for split, items in source.splits.items()}


def test_official_split_of_the_files_present(celeba_dir):
    partition = celeba.read_partition(os.path.join(celeba_dir, celeba.PARTITION))
    assert len(partition) == 202599
    assert [list(partition.values()).count(s) for s in ("train", "validation", "test")] == \
        [162770, 19867, 19962]
    expected = {"train": 4591, "validation": 780, "test": 660}
    # --data_dir may name the parent folder or img_align_celeba/ itself.
    for data_dir in (celeba_dir, os.path.join(celeba_dir, celeba.IMAGES)):
        source = celeba.local_source(data_dir)
        assert _counts(source) == expected and source.total == 6031
        assert "official split" in source.description


def test_official_zip_with_partition(tmp_path, celeba_dir):
    names = copy_celeba_images(tmp_path / "unpacked", 10)
    with zipfile.ZipFile(tmp_path / celeba.ZIP, "w") as archive:
        for name in names:
            archive.write(tmp_path / "unpacked" / name, f"{celeba.IMAGES}/{name}")
    shutil.rmtree(tmp_path / "unpacked")
    # A partition file listing only some of the files: the others are left out.
    lines = [f"{name} {i % 3}\n" for i, name in enumerate(names[:9])]
    (tmp_path / celeba.PARTITION).write_text("".join(lines))
    source = celeba.local_source(str(tmp_path))
    assert _counts(source) == {"train": 3, "validation": 3, "test": 3}
    data = datasets.load(tiny_config(dataset="celeba", data_dir=str(tmp_path / celeba.ZIP),
                                     cache_dir=str(tmp_path / "cache")))
    assert (data.num_train, data.num_validation, data.num_test, data.image_shape) == (
        3, 3, 3, (64, 64, 3))  # the official validation split
    assert "zip" in data.source
    with pytest.raises(UserError, match="official validation split"):
        datasets.load(tiny_config(dataset="celeba", data_dir=str(tmp_path / celeba.ZIP),
                                  cache_dir=str(tmp_path / "cache"), validation_size=2))


def test_bad_files_are_skipped_and_reported_and_the_run_completes(tmp_path):
    images = tmp_path / "celeba" / celeba.IMAGES
    copy_celeba_images(images, 24)
    add_bad_files(images)
    result = run_module(
        "vae_tf.train", "--dataset=celeba", f"--data_dir={tmp_path / 'celeba'}",
        f"--cache_dir={tmp_path / 'cache'}", f"--output_dir={tmp_path / 'out'}", "--run_name=bad",
        # The default preset (the hierarchical one), made tiny.
        "--epochs=1", "--steps_per_epoch=3", "--batch_size=8", "--latent_dim=2",
        "--conv_channels=8", "--hierarchy=4x1,8x1", "--grid_size=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Preset: flags/celeba_hierarchical.cfg" in result.stdout + result.stderr
    report = [line for line in result.stderr.splitlines() if "Skipped" in line]
    assert len(report) == 1, result.stderr[-3000:]
    assert "Skipped 2 of 28 files that are not readable images: 202599.jpg (" in report[0]
    assert "truncated" in report[0].lower() and "notes.txt (not an image" in report[0]
    assert "Converted 2 images to RGB (1 L, 1 RGBA)" in report[0]
    assert "26 images" in result.stderr  # 24 JPEGs + the converted gray and RGBA ones
    run_dir = tmp_path / "out" / "bad"
    grid = Image.open(run_dir / "images" / "samples_epoch_0001.png")
    assert grid.mode == "RGB" and min(grid.size) >= 256
    assert (run_dir / "saved_model" / "saved_model.pb").exists()


def test_missing_data_is_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_module("vae_tf.train", "--dataset=celeba", f"--data_dir={tmp_path / 'empty'}",
                        f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for words in ("holds no files", "img_align_celeba.zip", "list_eval_partition.txt",
                  "--data_dir="):
        assert words in errors[0]
    with pytest.raises(UserError) as missing:
        celeba.local_source(str(tmp_path / "nowhere"))
    assert str(missing.value).startswith(
        f"--data_dir={tmp_path / 'nowhere'} does not exist; a CelebA folder holds "
        "img_align_celeba/ (the aligned JPEGs) or img_align_celeba.zip, and "
        "list_eval_partition.txt. To get them, download img_align_celeba.zip")
    # Another dataset's folder (MNIST's IDX files): said before any cache is built.
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "PROVENANCE.md"):
        (mnist / name).write_bytes(b"\0" * 16)
    result = run_module("vae_tf.train", "--dataset=celeba", f"--data_dir={mnist}",
                        f"--output_dir={tmp_path / 'out'}", f"--cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 1
    assert [l for l in result.stderr.splitlines() if l.startswith("error: ")] == [
        f"error: --data_dir={mnist} is not a CelebA folder: a CelebA folder holds "
        "img_align_celeba/ (the aligned JPEGs) or img_align_celeba.zip, and "
        "list_eval_partition.txt; this one holds PROVENANCE.md, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz and 1 more."]
    assert not (tmp_path / "cache").exists()


def test_without_data_dir_offline_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # no prepared celeb_a
    if network_available("drive.google.com"):
        pytest.skip("a network exists: the tensorflow-datasets download would start")
    with pytest.raises(UserError, match="celeb_a not found .* Download img_align_celeba.zip"):
        datasets.load(tiny_config(dataset="celeba", cache_dir=str(tmp_path / "cache")))


def test_the_readme_subset_is_rebuilt_from_a_full_celeba(tmp_path, celeba_dir):
    """--celeba_subset with vae_tf/datasets/celeba_subset.txt picks, out of a full
    CelebA (here: the subset's files and others beside them), the 6,031 images."""
    listed = os.path.join(REPO, "vae_tf", "datasets", "celeba_subset.txt")
    subset = celeba.read_subset(listed)
    images = os.path.join(celeba_dir, celeba.IMAGES)
    assert subset == sorted(os.listdir(images)) and len(subset) == 6031
    full = tmp_path / "celeba" / celeba.IMAGES
    full.mkdir(parents=True)
    for name in subset:
        os.symlink(os.path.join(images, name), full / name)
    others = [f"{n:06d}.jpg" for n in range(1, 40) if f"{n:06d}.jpg" not in set(subset)]
    for name in others:  # images of the full set that the subset leaves out
        os.symlink(os.path.join(images, subset[0]), full / name)
    shutil.copy(os.path.join(celeba_dir, celeba.PARTITION), tmp_path / "celeba")
    assert others
    everything = celeba.local_source(str(tmp_path / "celeba"))
    assert everything.total == 6031 + len(others)
    source = celeba.local_source(str(tmp_path / "celeba"), subset)
    assert _counts(source) == {"train": 4591, "validation": 780, "test": 660}
    picked = sorted(os.path.basename(n) for items in source.splits.values() for n, _ in items)
    assert picked == subset
    assert source.fingerprint != everything.fingerprint  # its own image cache
    with pytest.raises(UserError, match="Cannot read --celeba_subset=/nowhere.txt"):
        celeba.read_subset("/nowhere.txt")
