"""CelebA attribute vectors: the test images' attributes in the order a run reads them,
the vectors, the attributes command and its errors, on a tiny run of real faces."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import CELEBA_DIR, copy_celeba_images, error_line, require_dir, run_module
from vae_tf import train
from vae_tf.views import latent
from vae_tf.config import Config
from vae_tf.datasets import celeba
from vae_tf.datasets.preprocess import Transform, decode


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory):
    """A tiny run on 40 real faces and one truncated JPEG; every third face and the
    truncated file are the test split. The attributes are the official zip."""
    source = require_dir(CELEBA_DIR, "CelebA img_align_celeba + list_attr_celeba.zip")
    root = tmp_path_factory.mktemp("celeba")
    images = root / celeba.IMAGES
    names = copy_celeba_images(images, 40)
    with open(images / names[0], "rb") as f:
        (images / "202599.jpg").write_bytes(f.read()[:2000])  # skipped by the cache
    split = {name: "2" if i % 3 == 0 else "0" for i, name in enumerate(names)}
    split["202599.jpg"] = "2"
    (root / celeba.PARTITION).write_text("".join(f"{n} {s}\n" for n, s in split.items()))
    shutil.copy(os.path.join(source, celeba.ATTRIBUTES_ZIP), root)
    config = Config(dataset="celeba", data_dir=str(root), cache_dir=str(root / "cache"),
                    image_size=16, conv_channels=(8, 16), latent_dim=4, batch_size=8,
                    epochs=1, steps_per_epoch=3, eval_steps=1, grid_size=2,
                    output_dir=str(root / "out"), run_name="faces")
    run_dir = train.run(config)["run_dir"]
    return root, run_dir, [n for n in names if split[n] == "2"]


def test_test_images_get_their_own_attributes(celeba_run):
    from vae_tf.views.trained import TrainedRun

    root, run_dir, test_names = celeba_run
    run = TrainedRun(run_dir)
    names, has = run.test_attributes()
    assert len(names) == 40 and names[31] == "Smiling"
    _, rows = celeba.read_attributes(str(root / celeba.ATTRIBUTES_ZIP), set(test_names))
    np.testing.assert_array_equal(has, np.stack([rows[n] for n in test_names]))
    # Test image k is the k-th test file (the truncated one left out): same pixels.
    images = run.test_images()
    assert len(images) == len(test_names) == 14
    for k in (0, 13):
        with open(root / celeba.IMAGES / test_names[k], "rb") as f:
            expected, _ = decode(f.read(), Transform(crop=148, size=16, channels=3))
        np.testing.assert_array_equal(np.round(images[k] * 255), expected)


def test_attribute_vectors_are_differences_of_mean_codes():
    codes = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [0.0, 0.0]])
    has = np.array([[True, True], [True, True], [False, True], [False, True]])
    vectors = latent.attribute_vectors(codes, has)
    np.testing.assert_allclose(vectors[0], [2.0, -1.0])
    assert np.isnan(vectors[1]).all()  # every image has it: no vector
    moved = latent.attribute_codes(codes[:2], vectors[0], [0.0, 2.0])
    np.testing.assert_allclose(moved, [[1, 0], [5, -2], [3, 2], [7, 0]])


def test_attributes_command_writes_both_pictures(celeba_run):
    _, run_dir, _ = celeba_run
    result = run_module("vae_tf.attributes", f"--run_dir={run_dir}", "--attribute=Smiling",
                        "--index=0:3", "--amounts=-1,0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    # The cache is opened for the attributes and for the images: said once.
    assert result.stderr.count("Reading cached images from ") == 1, result.stderr
    picture = os.path.join(run_dir, "pictures", "attribute_Smiling_0-2.png")
    width, height = Image.open(picture).size
    assert 3 * 66 < height < 3 * 66 + 150 and width > 4 * 66  # 3 rows of 4 64-px cells
    result = run_module("vae_tf.attributes", f"--run_dir={run_dir}", "--index=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(os.path.join(run_dir, "pictures", "attribute_all_5.png")).size[1] > 40 * 66
    page = open(os.path.join(run_dir, "report.html")).read()
    assert "Attribute vectors" in page and "attribute_all_5.png" in page


def test_attribute_errors_are_one_line(celeba_run, tmp_path):
    root, run_dir, _ = celeba_run
    line = error_line(run_module("vae_tf.attributes", f"--run_dir={run_dir}",
                                 "--attribute=Happy"))
    assert "--attribute=Happy is not a CelebA attribute" in line and "Smiling" in line
    # The same images without the attribute file beside them.
    bare = tmp_path / "bare"
    shutil.copytree(root / celeba.IMAGES, bare / celeba.IMAGES)
    shutil.copy(root / celeba.PARTITION, bare)
    line = error_line(run_module("vae_tf.attributes", f"--run_dir={run_dir}",
                                 f"--data_dir={bare}", f"--output={tmp_path}/a.png"))
    assert "No list_attr_celeba.txt or list_attr_celeba.zip" in line
    assert not (tmp_path / "a.png").exists()
