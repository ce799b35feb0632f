"""Image grids as PNG files (numpy + Pillow, which matplotlib already depends on)."""

import numpy as np
from PIL import Image

from vae_tf import files


def make_grid(images: np.ndarray, cols: int, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tiles images [N, H, W, C] in [0, 1] into one [rows*(H+pad)+pad, ..., C] array.

    Missing cells of the last row stay at `pad_value` (white).
    """
    images = np.asarray(images, dtype=np.float32)
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[a0, b0, a1, b1, ...]: puts each image beside its counterpart in a grid."""
    out = np.empty((2 * len(first),) + first.shape[1:], dtype=np.float32)
    out[0::2], out[1::2] = first, second
    return out


def save_png(path: str, image: np.ndarray, min_size: int = 256) -> None:
    """Writes an [H, W, C] array in [0, 1] as an 8-bit PNG, written to a temporary
    name first so that a crash never leaves a half-written file.

    Small grids (28x28 digits) are enlarged by an integer factor, with nearest-neighbour
    sampling so that pixels stay sharp, until the shorter side reaches `min_size`.
    """
    array = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    factor = max(1, -(-min_size // min(array.shape[:2])))
    if factor > 1:
        array = array.repeat(factor, axis=0).repeat(factor, axis=1)
    if array.shape[-1] == 1:
        array = array[..., 0]
    with files.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def save_grid(path: str, images: np.ndarray, cols: int) -> None:
    """make_grid then save_png: the one-call form the inference commands use."""
    save_png(path, make_grid(images, cols=cols))
