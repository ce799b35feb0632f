"""Image grids as PNG files (numpy + Pillow, which matplotlib already depends on), and
grids with names beside their rows and columns (matplotlib)."""

import textwrap

import numpy as np
from PIL import Image

from vae_tf.run import files


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


def save_labelled_grid(path: str, images: np.ndarray, cols: int, row_names, col_names,
                       title: str = "") -> None:
    """A grid of images [rows * cols, H, W, C] in [0, 1] with a name beside each row
    and above each column (matplotlib draws the text; the images keep sharp pixels,
    enlarged by an integer factor to about 64 pixels a side)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib.figure import Figure

    images = np.asarray(images, np.float32)
    _, h, w, _ = images.shape
    pad = 2
    grid = make_grid(images, cols, pad=pad)
    factor = max(1, round(64 / h))
    grid = grid.repeat(factor, axis=0).repeat(factor, axis=1)
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, axis=-1)
    # About 7 pixels per character of 9-point text: room for the longest row name.
    dpi, left, bottom, right = 100, 20 + 7 * max(map(len, row_names)), 10, 10
    width = grid.shape[1] + left + right
    title = "\n".join(textwrap.wrap(title, max(30, width // 7)))
    top = 40 + (16 * (title.count("\n") + 1) + 10 if title else 0)
    height = grid.shape[0] + top + bottom
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([left / width, bottom / height, grid.shape[1] / width,
                       grid.shape[0] / height])
    ax.imshow(np.clip(grid, 0.0, 1.0), interpolation="nearest")
    centre = lambda i, side: factor * (pad + i * (side + pad) + side / 2) - 0.5  # noqa: E731
    ax.set_yticks([centre(i, h) for i in range(len(row_names))], list(row_names), fontsize=9)
    ax.set_xticks([centre(i, w) for i in range(len(col_names))], list(col_names), fontsize=9)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 8 / height, va="top")
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
