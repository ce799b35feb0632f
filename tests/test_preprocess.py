"""The image transform shared by training, evaluation and export: crop, resize, modes."""

import io

import numpy as np
import pytest
from PIL import Image

from vae_tf.datasets.preprocess import BadImage, Transform, decode

CELEBA = Transform(crop=148, size=64, channels=3)


def _encode(array, fmt="PNG", mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def test_centered_box_is_cut_then_resized():
    # A 218x178 (HxW) image, white exactly in the centered 148x148 box, black outside.
    array = np.zeros((218, 178, 3), np.uint8)
    array[35:183, 15:163] = 255
    image, converted = decode(_encode(array), CELEBA)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and converted is None
    assert image.min() == 255  # nothing of the black margin is inside the box
    # The largest centered square (crop 0) reaches the black rows above and below.
    wide, _ = decode(_encode(array), Transform(crop=0, size=64, channels=3))
    assert wide[0].max() == 0 and wide[32, 32].min() == 255
    # A box larger than the image shrinks to the largest centered square.
    np.testing.assert_array_equal(
        decode(_encode(array), Transform(crop=500, size=64, channels=3))[0], wide)


def test_gray_and_rgba_are_converted():
    gray = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (100, 1))
    image, converted = decode(_encode(gray, "JPEG"), CELEBA)
    assert converted == "L" and image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    image, converted = decode(_encode(rgba), Transform(crop=0, size=8, channels=1))
    assert converted == "RGBA" and image.shape == (8, 8, 1)
    assert image.min() == 255  # transparent pixels are shown on white


def test_unreadable_files_raise_bad_image():
    jpeg = _encode(np.full((100, 100, 3), 128, np.uint8), "JPEG")
    with pytest.raises(BadImage, match="(?i)truncated"):
        decode(jpeg[:len(jpeg) // 2], CELEBA)
    with pytest.raises(BadImage, match="not an image"):
        decode(b"just some text", CELEBA)
    with pytest.raises(BadImage):
        decode(b"", CELEBA)
