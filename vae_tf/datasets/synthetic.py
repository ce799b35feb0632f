"""A small procedurally generated image set for fast tests and smoke runs.

28x28 grayscale images of one filled shape each (disc, square or ring, label 0-2)
at a random position and size, anti-aliased. It has real structure (a few latent
factors: class, position, size) so a VAE's loss falls quickly, and needs no files.
"""

import numpy as np

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData


SIZE = 28
NUM_TRAIN, NUM_TEST = 2048, 512


def make_shapes(num: int, seed: int, size: int = SIZE):
    """Returns uint8 images [num, size, size, 1] and int labels [num]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    labels = rng.integers(0, 3, num)
    radius = rng.uniform(0.15, 0.3, num) * size
    cy = rng.uniform(0.3, 0.7, num) * size
    cx = rng.uniform(0.3, 0.7, num) * size
    dy = np.abs(yy[None] - cy[:, None, None])
    dx = np.abs(xx[None] - cx[:, None, None])
    r = radius[:, None, None]
    disc = np.hypot(dx, dy)
    # Signed distance inside each shape (positive inside), clipped to one pixel of ramp.
    inside = np.where(labels[:, None, None] == 0, r - disc,
                      np.where(labels[:, None, None] == 1, r - np.maximum(dx, dy),
                               np.minimum(r - disc, disc - 0.5 * r)))
    images = np.clip(inside + 0.5, 0.0, 1.0)
    return (images[..., None] * 255).round().astype(np.uint8), labels


def load(config: Config) -> ImageData:
    """The same images for every run, so test losses compare across runs."""
    train = make_shapes(NUM_TRAIN, seed=1)
    test = make_shapes(NUM_TEST, seed=2)
    return ImageData.from_arrays(*train, *test, source="synthetic shapes (generated)")
