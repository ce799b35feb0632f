"""`--dataset=celeba`: CelebA's aligned faces (img_align_celeba), 64x64 RGB.

    python -m vae_tf.train --flagfile=flags/celeba.cfg --data_dir=/path/to/celeba

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
The validation split is cached too; training evaluates on the test split, like
the other datasets.
"""

import dataclasses
import os
import zipfile
from typing import Dict, Iterable, List, Optional, Tuple

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
    transform = Transform(crop=config.crop or CROP, size=config.image_size or SIZE,
                          channels=config.channels or 3)
    source = local_source(config.data_dir) if config.data_dir else tfds_source()
    cache = open_or_build("celeba", source.fingerprint, transform, source.splits,
                          source.total, cache_dir=config.cache_dir)
    folder_lib.check_batches(config, cache.count("train"))
    return cache.image_data(source.description)


def local_source(data_dir: str) -> Source:
    """The CelebA images under --data_dir (any of the layouts in the module docstring)."""
    if data_dir.endswith(".zip") and os.path.isfile(data_dir):
        return _zip_source(data_dir, _partition(os.path.dirname(data_dir)))
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} does not exist. {HELP}")
    if os.path.isdir(os.path.join(data_dir, IMAGES)):
        return _folder_source(os.path.join(data_dir, IMAGES), _partition(data_dir))
    if os.path.isfile(os.path.join(data_dir, ZIP)):
        return _zip_source(os.path.join(data_dir, ZIP), _partition(data_dir))
    partition = _partition(data_dir) or _partition(os.path.dirname(os.path.abspath(data_dir)))
    return _folder_source(data_dir, partition)


def _folder_source(folder: str, partition: Optional[str]) -> Source:
    names = [n for n in folder_lib.list_files(folder, "CelebA", HELP) if n != PARTITION]
    splits = _split(names, partition, folder)
    fingerprint = dict(folder_lib.fingerprint(folder, names), partition=_stat(partition))
    return Source(f"CelebA images in {folder}" + _split_note(partition), fingerprint,
                  {s: folder_lib.file_items(folder, n) for s, n in splits.items()},
                  sum(map(len, splits.values())))


def _zip_source(path: str, partition: Optional[str]) -> Source:
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
    splits = _split(sorted(members), partition, path)
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


def _partition(folder: str) -> Optional[str]:
    path = os.path.join(folder, PARTITION)
    return path if os.path.isfile(path) else None


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
