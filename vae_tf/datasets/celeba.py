"""`--dataset=celeba`: CelebA's aligned faces (img_align_celeba), 64x64 RGB.

    python -m vae_tf.train --dataset=celeba --data_dir=/path/to/celeba

Looked for, first found wins:
1. --data_dir (only there when it is given), which may be the `img_align_celeba/`
   folder of JPEGs, its parent, a folder holding `img_align_celeba.zip`, or that zip.
   `list_eval_partition.txt` beside the images (or in the folder itself) gives the
   official train/validation/test split.
2. A prepared tensorflow-datasets `celeb_a` (TFDS_DATA_DIR or ~/tensorflow_datasets).
3. A tensorflow-datasets download where a network exists. It often fails (Google
   Drive answers with a quota page: tensorflow/datasets #1598, #3150, #5342), which is
   why the files downloaded by hand come first.

Preprocessing: the centered 148x148 box of each 178x218 image (the face, from the
eyebrows to the chin; the box PyTorch-VAE and NVAE use) resized to 64x64; --crop
and --image_size change it. Images are decoded once into the image cache.

Split: the official partition, restricted to the files present (files it does not
list are left out and reported). Without a partition file, folder.split_by_name.
The validation split is cached too: training evaluates its epochs on it, and the
test split only once, after the last epoch.

Attributes: `list_attr_celeba.txt` (or the zip that holds it) lies where the
partition file does; `attributes_of_test_images` gives the 40 attributes of the cached test
images, in the order a run reads them.
"""

import dataclasses
import hashlib
import io
import os
import zipfile
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
from absl import logging

from vae_tf.config import Config
from vae_tf.datasets import folder as folder_lib
from vae_tf.datasets.base import ImageData, prepared_tfds_builder
from vae_tf.datasets.image_cache import Item, open_or_build
from vae_tf.datasets.preprocess import Transform
from vae_tf.errors import UserError


CROP, SIZE = 148, 64
IMAGES, ZIP, PARTITION = "img_align_celeba", "img_align_celeba.zip", "list_eval_partition.txt"
PARTITION_SPLITS = {"0": "train", "1": "validation", "2": "test"}
ATTRIBUTES, ATTRIBUTES_ZIP = "list_attr_celeba.txt", "list_attr_celeba.zip"
# What a --data_dir for CelebA holds, said before any advice to download.
LAYOUT = (f"a CelebA folder holds {IMAGES}/ (the aligned JPEGs) or {ZIP}, and {PARTITION}")
HELP = (f"Download {ZIP} (Align&Cropped Images, 1.4 GB) and {PARTITION} (Eval/) from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, put both in one folder "
        f"(the zip may be unpacked there as {IMAGES}/) and pass it with --data_dir=FOLDER.")


@dataclasses.dataclass
class Source:
    """Where the images come from: items per split, for the image cache."""
    description: str
    fingerprint: dict
    splits: Dict[str, Iterable[Item]]
    total: int


def load(config: Config) -> ImageData:
    source, cache = _open_cache(config)
    folder_lib.check_batches(config, cache.count("train"))
    return cache.image_data(source.description)


def _open_cache(config: Config):
    transform = Transform(crop=config.crop or CROP, size=config.image_size or SIZE,
                          channels=config.channels or 3)
    source = (local_source(config.data_dir, read_subset(config.celeba_subset))
              if config.data_dir else tfds_source())
    return source, open_or_build("celeba", source.fingerprint, transform, source.splits,
                                 source.total, cache_dir=config.cache_dir)


def read_subset(path: str) -> Optional[List[str]]:
    """The file names listed in --celeba_subset (None when it is empty)."""
    if not path:
        return None
    try:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise UserError(f"Cannot read --celeba_subset={path}: {e.strerror}.") from None
    if not names:
        raise UserError(f"--celeba_subset={path} names no file.")
    return names


def _restrict(names: List[str], subset: Optional[List[str]], where: str) -> List[str]:
    """`names` (paths) whose file name is in `subset` (all when it is None)."""
    if subset is None:
        return names
    wanted = set(subset)
    kept = [n for n in names if os.path.basename(n) in wanted]
    if len(kept) < len(wanted):
        logging.warning("%d of the %d files of --celeba_subset are not in %s.",
                        len(wanted) - len(kept), len(wanted), where)
    return kept


def _with_subset(source: Source, subset: Optional[List[str]]) -> Source:
    if subset is not None:  # another subset is another cache
        digest = hashlib.sha256("\n".join(sorted(subset)).encode()).hexdigest()
        source.fingerprint = dict(source.fingerprint, subset=digest)
    return source


def local_source(data_dir: str, subset: Optional[List[str]] = None) -> Source:
    """The CelebA images under --data_dir (any of the layouts in the module docstring),
    only those named in `subset` when it is given."""
    return _with_subset(_local_source(data_dir, subset), subset)


def _local_source(data_dir: str, subset: Optional[List[str]]) -> Source:
    if data_dir.endswith(".zip") and os.path.isfile(data_dir):
        return _zip_source(data_dir, _partition(data_dir), subset)
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} does not exist; {LAYOUT}. To get them, "
                        f"{HELP[0].lower()}{HELP[1:]}")
    if os.path.isdir(os.path.join(data_dir, IMAGES)):
        return _folder_source(os.path.join(data_dir, IMAGES), _partition(data_dir), subset)
    if os.path.isfile(os.path.join(data_dir, ZIP)):
        return _zip_source(os.path.join(data_dir, ZIP), _partition(data_dir), subset)
    names = [n for n in os.listdir(data_dir) if not n.startswith(".")]
    if names and not any(n.lower().endswith((".jpg", ".jpeg", ".png")) for n in names):
        shown = ", ".join(sorted(names)[:4]) + (f" and {len(names) - 4} more" if len(names) > 4
                                                 else "")
        raise UserError(f"--data_dir={data_dir} is not a CelebA folder: {LAYOUT}; this one "
                        f"holds {shown}.")
    return _folder_source(data_dir, _partition(data_dir), subset)


def _annotation_folders(data_dir: str) -> List[str]:
    """The folders where CelebA's annotation files (partition, attributes) may be for
    a --data_dir: beside the zip, in the folder holding img_align_celeba/ or the zip,
    or, for a folder of the images themselves, in it or its parent."""
    if data_dir.endswith(".zip") and os.path.isfile(data_dir):
        return [os.path.dirname(data_dir)]
    if any(os.path.exists(os.path.join(data_dir, name)) for name in (IMAGES, ZIP)):
        return [data_dir]
    return [data_dir, os.path.dirname(os.path.abspath(data_dir))]


def _find_annotation(data_dir: str, names: Iterable[str]) -> Optional[str]:
    """The first of the files `names` found in the annotation folders, or None."""
    for folder in _annotation_folders(data_dir):
        for name in names:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def _folder_source(folder: str, partition: Optional[str], subset=None) -> Source:
    names = [n for n in folder_lib.list_files(folder, "CelebA", HELP) if n != PARTITION]
    names = _restrict(names, subset, folder)
    splits = _split(names, partition, folder)
    fingerprint = dict(folder_lib.fingerprint(folder, names), partition=_stat(partition))
    return Source(f"CelebA images in {folder}" + _split_note(partition), fingerprint,
                  {s: folder_lib.file_items(folder, n) for s, n in splits.items()},
                  sum(map(len, splits.values())))


def _zip_source(path: str, partition: Optional[str], subset=None) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"Cannot open {path} as a zip archive ({e}); download it again. "
                        f"{HELP}") from None
    # The items read from the archive until it is garbage-collected with them.
    members = {os.path.basename(m): m for m in archive.namelist()
               if not m.endswith("/") and not any(part.startswith((".", "__MACOSX"))
                                                  for part in m.split("/"))}
    if not members:
        raise UserError(f"{path} holds no files. {HELP}")
    splits = _split(_restrict(sorted(members), subset, path), partition, path)
    items = {s: [(n, lambda m=members[n]: archive.read(m)) for n in names]
             for s, names in splits.items()}
    fingerprint = {"kind": "zip", "zip": _stat(path), "partition": _stat(partition)}
    return Source(f"CelebA zip {path}" + _split_note(partition), fingerprint, items,
                  sum(map(len, splits.values())))


def tfds_source() -> Source:
    """A prepared (or, where a network exists, downloaded) tensorflow-datasets celeb_a."""
    import tensorflow_datasets as tfds

    searched = ["--data_dir (empty)", "tensorflow-datasets celeb_a"]
    builder = prepared_tfds_builder("celeb_a", searched, HELP, host="drive.google.com")

    def items(split) -> Iterable[Item]:
        # Encoded bytes, so the images go through the same Pillow transform as files.
        ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        for i, example in enumerate(tfds.as_numpy(ds)):
            yield f"{split}/{i}", lambda data=example["image"]: data

    names = ("train", "validation", "test")
    return Source(f"tensorflow-datasets celeb_a ({builder.data_path}), official split",
                  {"kind": "tfds", "name": "celeb_a", "version": str(builder.version),
                   "path": builder.data_path},
                  {s: items(s) for s in names},
                  sum(builder.info.splits[s].num_examples for s in names))


def _partition(data_dir: str) -> Optional[str]:
    return _find_annotation(data_dir, [PARTITION])


def read_partition(path: str) -> Dict[str, str]:
    """{file name: 'train' | 'validation' | 'test'} from list_eval_partition.txt."""
    result = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in PARTITION_SPLITS:
                raise UserError(f"{path}, line {number}: expected '<file> <0|1|2>', got "
                                f"{line.strip()!r}; download it again. {HELP}")
            result[fields[0]] = PARTITION_SPLITS[fields[1]]
    return result


def _split(names: List[str], partition: Optional[str], where: str) -> Dict[str, List[str]]:
    if partition is None:
        return folder_lib.split_by_name(names)
    split_of = read_partition(partition)
    splits = {"train": [], "validation": [], "test": []}
    unlisted = []
    for name in names:
        split = split_of.get(os.path.basename(name))
        (splits[split] if split else unlisted).append(name)
    if len(unlisted) == len(names):
        raise UserError(f"None of the {len(names)} files in {where} is listed in {partition}; "
                        f"is it CelebA's img_align_celeba? {HELP}")
    if unlisted:
        logging.warning("%d files in %s are not listed in %s and were left out: %s%s.",
                        len(unlisted), where, partition, ", ".join(unlisted[:5]),
                        ", ..." if len(unlisted) > 5 else "")
    return splits


def _split_note(partition: Optional[str]) -> str:
    return ", official split" if partition else ", split by file name (no list_eval_partition.txt)"


def _stat(path: Optional[str]) -> Optional[Tuple[str, int, int]]:
    if path is None:
        return None
    st = os.stat(path)
    return (os.path.basename(path), st.st_size, st.st_mtime_ns)


def attributes_of_test_images(config: Config) -> Tuple[List[str], np.ndarray]:
    """The 40 attribute names of list_attr_celeba.txt and a bool array [num_test, 40]
    of the run's test images, in the order the image cache stores (and runs read)
    them: the test split's files minus those the cache skipped as unreadable."""
    if not config.data_dir:
        raise UserError(f"CelebA's attributes come from {ATTRIBUTES}, which a "
                        "tensorflow-datasets celeb_a run does not name: pass "
                        f"--data_dir=FOLDER holding the images and {ATTRIBUTES} (or "
                        f"{ATTRIBUTES_ZIP}). {HELP}")
    path = _find_annotation(config.data_dir, [ATTRIBUTES, ATTRIBUTES_ZIP])
    if path is None:
        raise UserError(f"No {ATTRIBUTES} or {ATTRIBUTES_ZIP} beside the images of "
                        f"--data_dir={config.data_dir}: download it from CelebA's page "
                        "(Anno/) and put it beside list_eval_partition.txt.")
    source, cache = _open_cache(config)
    skipped = {name for name, _ in cache.manifest["skipped"]}
    names = [os.path.basename(name) for name, _ in source.splits["test"] if name not in skipped]
    if len(names) != cache.count("test"):
        raise UserError(f"Cannot tell which files the {cache.count('test')} cached test "
                        f"images are (the cache {cache.path} skipped more files than it "
                        "lists); delete it so that it is built again.")
    attribute_names, rows = read_attributes(path, set(names))
    missing = [name for name in names if name not in rows]
    if missing:
        raise UserError(f"{path} has no row for {len(missing)} test images ({missing[0]}, "
                        "...); download it again.")
    return attribute_names, np.stack([rows[name] for name in names])


def read_attributes(path: str, wanted: Optional[set] = None):
    """(attribute names, {file name: bool array [40]}) from list_attr_celeba.txt or a
    zip holding it: a count line, a line of names, then '<file> <+1|-1> ...' rows.
    Only the rows of `wanted` files are kept (all when None)."""
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                member = next((m for m in archive.namelist()
                               if os.path.basename(m) == ATTRIBUTES), None)
                if member is None:
                    raise UserError(f"{path} holds no {ATTRIBUTES}; download it again.")
                text = archive.read(member).decode("ascii")
        else:
            with open(path) as f:
                text = f.read()
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise UserError(f"Cannot read {path} ({e}); download it again.") from None
    lines = io.StringIO(text)
    lines.readline()  # the row count
    names = lines.readline().split()
    rows = {}
    for number, line in enumerate(lines, 3):
        fields = line.split()
        if not fields or (wanted is not None and fields[0] not in wanted):
            continue
        if len(fields) != len(names) + 1 or not set(fields[1:]) <= {"1", "-1"}:
            raise UserError(f"{path}, line {number}: expected a file name and "
                            f"{len(names)} values of 1 or -1; download it again.")
        rows[fields[0]] = np.array(fields[1:]) == "1"
    if not names:
        raise UserError(f"{path} lists no attribute names; download it again.")
    return names, rows
