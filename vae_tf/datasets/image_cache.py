"""A decoded-image cache: image files are decoded and preprocessed once, then read raw.

Decoding JPEGs every epoch starves the training step on a small machine, so the
image-file datasets (celeba, folder) decode, crop and resize each image once (in
threads, with a progress bar) into sharded raw uint8 files:

    <cache_dir>/<dataset>-<key>/manifest.json          shapes, counts, what was skipped
    <cache_dir>/<dataset>-<key>/<split>-NNNNN.u8        up to SHARD_IMAGES images each

A shard is N x H x W x C bytes with no header, so `np.memmap` reads it as well
as `tf.data.FixedLengthRecordDataset`, which streams it every epoch. The key hashes
the source (file names, sizes and times; a zip's size and time; a TFDS version),
the preprocessing and CACHE_VERSION, so changing any of them builds a new cache.
A cache is built in a temporary folder and renamed into place when complete, so
an interrupted build is never used and the data folder itself is never written.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm  # a tensorflow-datasets dependency

from vae_tf.datasets.base import ImageData
from vae_tf.datasets.pipeline import PARALLEL_CALLS
from vae_tf.datasets.preprocess import BadImage, Transform, decode
from vae_tf.errors import UserError
from vae_tf.run import faults, files


CACHE_VERSION = 1  # raise when the stored format or the preprocessing code changes
SHARD_IMAGES = 8192  # 100 MB shards at 64x64x3
MANIFEST = "manifest.json"
REPORT_NAMES = 5  # file names quoted in the skipped-files log line

# (name shown in reports, function returning the file's bytes)
Item = Tuple[str, Callable[[], bytes]]


@dataclasses.dataclass
class ImageCache:
    """A complete cache folder and its manifest."""
    path: str
    manifest: dict

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return tuple(self.manifest["image_shape"])

    def count(self, split: str) -> int:
        return self.manifest["splits"][split]["count"]

    def shard_paths(self, split: str) -> List[str]:
        return [os.path.join(self.path, name) for name, _ in self.manifest["splits"][split]["shards"]]

    def dataset(self, split: str) -> tf.data.Dataset:
        """(uint8 image, label -1) elements of `split`, in stored order, read from disk."""
        shape = self.image_shape
        files = self.shard_paths(split)
        ds = tf.data.FixedLengthRecordDataset(files, int(np.prod(shape)),
                                              num_parallel_reads=min(len(files), 4))
        ds = ds.map(lambda record: (tf.reshape(tf.io.decode_raw(record, tf.uint8), shape),
                                    tf.constant(-1, tf.int64)),
                    num_parallel_calls=PARALLEL_CALLS)
        # A known length lets Keras show steps per epoch and size the shuffle buffer.
        return ds.apply(tf.data.experimental.assert_cardinality(self.count(split)))

    def image_data(self, source: str, train: str = "train", test: str = "test") -> ImageData:
        """The cached splits; a non-empty 'validation' split (CelebA's official one)
        becomes the validation split."""
        validation = self.manifest["splits"].get("validation", {}).get("count", 0)
        return ImageData(train=self.dataset(train), test=self.dataset(test),
                         image_shape=self.image_shape, num_train=self.count(train),
                         num_test=self.count(test), source=f"{source}, cached in {self.path}",
                         validation=self.dataset("validation") if validation else None,
                         num_validation=validation)

    def report(self) -> str:
        """One line on what the build skipped and converted ('' when nothing was)."""
        m = self.manifest
        parts = []
        if m["skipped_count"]:
            names = ", ".join(f"{name} ({reason})" for name, reason in m["skipped"][:REPORT_NAMES])
            more = ", ..." if m["skipped_count"] > REPORT_NAMES else ""
            parts.append(f"Skipped {m['skipped_count']} of {m['files']} files that are not "
                         f"readable images: {names}{more}.")
        if m["converted"]:
            modes = ", ".join(f"{n} {mode}" for mode, n in sorted(m["converted"].items()))
            parts.append(f"Converted {sum(m['converted'].values())} images to "
                         f"{'RGB' if m['image_shape'][-1] == 3 else 'grayscale'} ({modes}).")
        return " ".join(parts)


def cache_key(dataset: str, fingerprint: dict, transform: Transform) -> str:
    blob = json.dumps({"version": CACHE_VERSION, "dataset": dataset, "source": fingerprint,
                       "transform": dataclasses.asdict(transform)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def open_or_build(dataset: str, fingerprint: dict, transform: Transform,
                  splits: Dict[str, Iterable[Item]], total: int, cache_dir: str = "",
                  infer_channels: Callable[[], int] = None) -> ImageCache:
    """Opens the cache of this source and preprocessing, building it first if needed.

    `splits` maps each split name to its items; they are only read when building.
    `total` is the number of items (for the progress bar). When `transform.channels`
    is 0, `infer_channels()` decides them at build time (the choice follows from the
    source, which the key already covers). Raises UserError when the cache folder is
    unusable or no readable image is left in the train or test split.
    """
    root = cache_dir or files.cache_dir()
    path = os.path.join(root, f"{dataset}-{cache_key(dataset, fingerprint, transform)}")
    cache = _open(path)
    if cache is None:
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as e:
            raise UserError(f"Cannot create the image cache folder {root}: {e.strerror}; "
                            "pass a writable folder with --cache_dir.") from None
        _remove_abandoned_builds(path)
        if not transform.channels:
            transform = dataclasses.replace(transform, channels=infer_channels())
        cache = _build(path, dataset, transform, splits, total)
    if cache.report():
        logging.warning("%s", cache.report())
    return cache


# Caches whose "Reading cached images" line this process has printed.
_announced = set()


def _open(path: str):
    """The complete cache at `path`, or None (a damaged one is removed)."""
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    record = int(np.prod(manifest["image_shape"]))
    for split in manifest["splits"].values():
        for name, count in split["shards"]:
            shard = os.path.join(path, name)
            if not os.path.isfile(shard) or os.path.getsize(shard) != count * record:
                logging.warning("Image cache %s is damaged (%s); rebuilding it.", path, name)
                shutil.rmtree(path, ignore_errors=True)
                return None
    if path not in _announced:  # a command may open it twice (images, then attributes)
        _announced.add(path)
        logging.info("Reading cached images from %s (built in %.0f s).", path,
                     manifest["build_seconds"])
    return ImageCache(path, manifest)


def _remove_abandoned_builds(path: str) -> None:
    """Deletes temporary folders of builds whose process has died (killed runs)."""
    parent, prefix = os.path.dirname(path), os.path.basename(path) + ".tmp-"
    for name in os.listdir(parent):
        if name.startswith(prefix) and not _process_alive(name[len(prefix):]):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class _ShardWriter:
    """Appends images of one split to shard files of at most SHARD_IMAGES images."""

    def __init__(self, folder: str, split: str):
        self.folder, self.split = folder, split
        self.shards: List[list] = []  # [file name, image count]
        self.file = None

    def write(self, image: np.ndarray) -> None:
        if self.file is None or self.shards[-1][1] == SHARD_IMAGES:
            self._close_file()
            name = f"{self.split}-{len(self.shards):05d}.u8"
            self.file = open(os.path.join(self.folder, name), "wb")
            self.shards.append([name, 0])
        self.file.write(image.tobytes())
        self.shards[-1][1] += 1

    def _close_file(self):
        if self.file is not None:
            self.file.close()

    def close(self) -> dict:
        self._close_file()
        return {"count": sum(n for _, n in self.shards), "shards": self.shards}


def _decode_item(item: Item, transform: Transform):
    """(image, mode converted from or None) for a readable image, else the reason it
    was skipped."""
    try:
        return decode(item[1](), transform)
    except OSError as e:  # the file itself could not be read
        return f"unreadable: {e.strerror or e}"
    except BadImage as e:
        return str(e)


def _build(path: str, dataset: str, transform: Transform, splits: Dict[str, Iterable[Item]],
           total: int) -> ImageCache:
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    logging.info("Building the image cache %s from %d files (once for this source and "
                 "preprocessing).", path, total)
    start = time.perf_counter()
    skipped, converted, split_info = [], collections.Counter(), {}
    workers = os.cpu_count() or 1
    try:
        os.makedirs(tmp)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
                tqdm(total=total, desc=f"Caching {dataset}", unit="img", mininterval=1.0) as bar:
            for split, items in splits.items():
                writer, items = _ShardWriter(tmp, split), iter(items)
                # Chunks keep memory bounded while the threads decode in parallel
                # (Pillow releases the GIL while decoding and resizing).
                while chunk := list(itertools.islice(items, 64 * workers)):
                    results = pool.map(lambda item: _decode_item(item, transform), chunk)
                    for (name, _), result in zip(chunk, results):
                        if isinstance(result, str):
                            skipped.append((name, result))
                        else:
                            writer.write(result[0])
                            if result[1]:
                                converted[result[1]] += 1
                    bar.update(len(chunk))
                    faults.point("cache")
                split_info[split] = writer.close()
        seconds = time.perf_counter() - start
        files = sum(s["count"] for s in split_info.values()) + len(skipped)
        manifest = {"version": CACHE_VERSION, "dataset": dataset,
                    "transform": dataclasses.asdict(transform),
                    "image_shape": list(transform.shape), "splits": split_info, "files": files,
                    "skipped_count": len(skipped), "skipped": skipped[:100],
                    "converted": dict(converted), "build_seconds": round(seconds, 2)}
        _check_splits(dataset, manifest)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished the same cache first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return _open(path) or ImageCache(path, manifest)
    except OSError as e:  # reading items is guarded in _decode_item: this is the cache
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"Cannot write the image cache {tmp}: {e.strerror or e}; pass a "
                        "writable folder with enough space with --cache_dir.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stored = files - len(skipped)
    logging.info("Cached %d images %s in %.1f s (%.0f images/s): %s.", stored,
                 "x".join(map(str, transform.shape)), seconds, files / max(seconds, 1e-9),
                 ", ".join(f"{s} {i['count']}" for s, i in split_info.items()))
    return ImageCache(path, manifest)


def _check_splits(dataset: str, manifest: dict) -> None:
    if manifest["skipped_count"] == manifest["files"]:
        first = ", ".join(f"{n} ({r})" for n, r in manifest["skipped"][:REPORT_NAMES])
        raise UserError(f"None of the {manifest['files']} {dataset} files is a readable "
                        f"image (first: {first}).")
    for split, info in manifest["splits"].items():
        if split in ("train", "test") and not info["count"]:
            raise UserError(f"The {split} split of {dataset} has no readable image; "
                            "add images to the folder.")
