"""`--dataset=folder`: any folder of images (searched recursively), one square size.

    python -m vae_tf.train --dataset=folder --data_dir=/path/to/images --image_size=64

Every file that is not hidden is tried: JPEG, PNG, GIF, BMP, WebP, TIFF... whatever
Pillow reads. Files that cannot be decoded are skipped and reported. Each image is
cut to its largest centered square (or a --crop box), resized to --image_size
(default 64) and stored once in the image cache (see image_cache.py). Channels are
--channels, or 1 when every file is grayscale, else 3.

Split: there is no official one, so about 10% of the files become the test split,
chosen by a hash of the file name (see split_by_name): the same files whatever
the order they are listed in, and spread over the whole folder.
"""

import functools
import hashlib
import os
import zlib
from typing import Dict, List, Sequence

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData
from vae_tf.datasets.image_cache import Item, open_or_build
from vae_tf.datasets.preprocess import Transform, is_gray
from vae_tf.errors import UserError


DEFAULT_SIZE = 64
TEST_FRACTION = 0.1


def list_files(folder: str, what: str, help_text: str = "") -> List[str]:
    """Paths relative to `folder` of every non-hidden file under it, sorted.

    Raises UserError when `folder` is missing or holds no file, before any training.
    """
    if not os.path.isdir(folder):
        raise UserError(f"--data_dir={folder} is not a folder. Pass the folder that holds "
                        f"the {what} images. {help_text}".strip())
    names = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(parent, folder)
        names += [f if rel == "." else os.path.join(rel, f)
                  for f in files if not f.startswith(".")]
    if not names:
        raise UserError(f"--data_dir={folder} holds no files: put the {what} images there. "
                        f"{help_text}".strip())
    return sorted(names)


def split_by_name(names: Sequence[str]) -> Dict[str, List[str]]:
    """Train/test split by file name alone: the round(10%) names (at least one) with
    the smallest CRC32 are the test split. Input order does not matter."""
    ranked = sorted(names, key=lambda n: (zlib.crc32(_utf8(n)), n))
    num_test = max(1, round(len(names) * TEST_FRACTION)) if len(names) > 1 else 0
    test = set(ranked[:num_test])
    return {"train": [n for n in names if n not in test], "test": [n for n in names if n in test]}


def file_items(folder: str, names: Sequence[str]) -> List[Item]:
    return [(name, functools.partial(_read, os.path.join(folder, name))) for name in names]


def fingerprint(folder: str, names: Sequence[str]) -> dict:
    """Identifies the folder's contents by each file's name, size and modification time
    (cheap: no file is read), so a changed, added or removed file rebuilds the cache."""
    digest = hashlib.sha256()
    for name in names:
        st = os.stat(os.path.join(folder, name))
        digest.update(_utf8(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n"))
    return {"kind": "files", "count": len(names), "digest": digest.hexdigest()}


def check_batches(config: Config, num_train: int) -> None:
    """A training split smaller than one batch gives epochs of zero steps (full batches
    only) unless --steps_per_epoch repeats the data."""
    if num_train < config.batch_size and not config.steps_per_epoch:
        raise UserError(f"Only {num_train} training images, fewer than --batch_size="
                        f"{config.batch_size}: lower --batch_size or set --steps_per_epoch.")


def _utf8(text: str) -> bytes:
    # os.walk hands undecodable file names over as surrogate escapes.
    return text.encode("utf-8", "surrogateescape")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def load(config: Config) -> ImageData:
    folder = config.data_dir
    if not folder:
        raise UserError("--dataset=folder needs --data_dir=FOLDER, the folder holding the images.")
    names = list_files(folder, "training")
    transform = Transform(crop=config.crop, size=config.image_size or DEFAULT_SIZE,
                          channels=config.channels)
    splits = split_by_name(names)
    cache = open_or_build(
        "folder", fingerprint(folder, names), transform,
        {split: file_items(folder, split_names) for split, split_names in splits.items()},
        total=len(names), cache_dir=config.cache_dir,
        infer_channels=lambda: 1 if all(is_gray(os.path.join(folder, n)) for n in names) else 3)
    check_batches(config, cache.count("train"))
    return cache.image_data(f"image folder {folder}")
