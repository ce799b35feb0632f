"""Decoding one image file into the fixed-size uint8 array the model sees.

The transform is the same for training, evaluation and anything fed to the
exported model: decode with Pillow, convert to RGB or grayscale (transparent
pixels onto white), cut a centered square box of `crop` source pixels (the largest
centered square when `crop` is 0 or larger than the image), and resize it to
`size` x `size` with Pillow's antialiased bilinear filter. For CelebA's 178x218
images and crop 148 the box is x 15..163, y 35..183.

    from vae_tf.datasets.preprocess import Transform, decode
    image, _ = decode(open("000001.jpg", "rb").read(), Transform(crop=148, size=64, channels=3))
"""

import dataclasses
import io
from typing import Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError


# Pillow modes that hold no colour: a folder of these alone is stored with 1 channel.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class BadImage(Exception):
    """A file that cannot be decoded into an image; its message is the reason."""


@dataclasses.dataclass(frozen=True)
class Transform:
    """The preprocessing of image-file datasets; part of their cache key."""
    crop: int      # side of the centered square box in source pixels; 0: largest square
    size: int      # side of the stored square image
    channels: int  # 1 (grayscale) or 3 (RGB)

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.size, self.size, self.channels)


def decode(data: bytes, transform: Transform) -> Tuple[np.ndarray, Optional[str]]:
    """Returns (uint8 image [size, size, channels], the Pillow mode it was converted
    from, or None when it already had the wanted one).

    Raises BadImage for anything Pillow cannot decode completely (a truncated JPEG
    raises here rather than yielding a half-grey image).
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        mode = _target_mode(transform.channels)
        converted_from = image.mode if image.mode != mode else None
        if converted_from:
            image = _to_mode(image, mode)
        width, height = image.size
        side = min(transform.crop or min(width, height), width, height)
        # Cut first, then resize: resize(box=...) would blend in pixels from outside
        # the box at its edges. Odd margins put the extra pixel right and below.
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((transform.size, transform.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    # Pillow's decoders raise many types (OSError, ValueError, SyntaxError, struct.error,
    # DecompressionBombError...); any of them means this one file is unusable.
    except Exception as e:  # noqa: BLE001
        reason = str(e).split("\n")[0] or e.__class__.__name__
        raise BadImage(reason) from None
    return array.reshape(transform.shape), converted_from


def is_gray(path: str) -> bool:
    """Whether the file's header declares a grayscale mode (reads the header only).

    Unreadable files count as gray so that they do not force 3 channels; they are
    skipped later anyway.
    """
    try:
        with Image.open(path) as image:
            return image.mode in GRAY_MODES
    except Exception:  # noqa: BLE001  (see decode)
        return True


def _target_mode(channels: int) -> str:
    return "L" if channels == 1 else "RGB"


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    return image.convert(mode)
