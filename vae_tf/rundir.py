"""A finished run directory as the inference commands see it: its `config.json`,
its SavedModel and its test split. Nothing here imports the training code's model;
the SavedModel's signatures are the only way to the network.

Also the flags and the error handling that every inference command shares.
"""

import json
import math
import os
import sys
from typing import Optional

import numpy as np
from absl import app, flags

from vae_tf.config import Config
from vae_tf.errors import UserError

# train.SAVED_MODEL's value; train is not imported because it pulls in Keras, and
# flag errors should come before TensorFlow starts.
SAVED_MODEL = "saved_model"
PICTURES = "pictures"  # where the commands write by default, inside the run directory


def define_run_flags(flag_values: flags.FlagValues = flags.FLAGS, data: bool = True) -> None:
    """The flags every inference command takes (--data_dir where it reads data)."""
    flags.DEFINE_string("run_dir", None, "Run directory written by vae_tf.train (it holds "
                        "config.json and saved_model/).", flag_values=flag_values)
    if data:
        flags.DEFINE_string("data_dir", None, "Folder holding the dataset's files, when it "
                            "is not where config.json says (a run copied to another machine).",
                            flag_values=flag_values)
    flags.DEFINE_string("output", None, "File to write. When not given, a file in the run "
                        "directory: <run_dir>/pictures/<name>.png for pictures, "
                        "<run_dir>/eval.json for evaluate, <run_dir>/images/samples.gif "
                        "for animate.", flag_values=flag_values)
    flags.mark_flag_as_required("run_dir", flag_values=flag_values)


def console_main(main, define_flags) -> None:
    """Defines the command's flags and runs `main`, printing a UserError as one
    `error: ...` line with exit status 1."""
    define_flags()

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded)


class Run:
    """A run directory opened for inference.

    Attributes: `run_dir`, `config` (from config.json, with --data_dir applied),
    `signatures` (the SavedModel's), `image_shape` and `latent_dim`.
    """

    def __init__(self, run_dir: str, data_dir: Optional[str] = None):
        self.run_dir = run_dir
        config_path = os.path.join(run_dir, "config.json")
        if not os.path.isdir(run_dir):
            raise UserError(f"--run_dir={run_dir} does not exist.")
        if not os.path.isfile(config_path):
            raise UserError(f"{run_dir} holds no config.json: pass the directory a "
                            "vae_tf.train run wrote.")
        try:
            self.config = Config.from_json_file(config_path)
        except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            raise UserError(f"{config_path} is not a readable vae_tf config ({e}).") from None
        if data_dir:
            self.config = self.config.replace(data_dir=data_dir)
        saved = os.path.join(run_dir, SAVED_MODEL)
        if not os.path.isfile(os.path.join(saved, "saved_model.pb")):
            raise UserError(f"{run_dir} has no {SAVED_MODEL}/ (the run is unfinished, or "
                            "was copied without it): finish training first.")

        import tensorflow as tf  # here, so that flag errors come without TF start-up

        tf.get_logger().setLevel("WARNING")
        # The loaded object owns the variables; the signatures alone would let them go.
        self.saved_model = tf.saved_model.load(saved)
        self.signatures = self.saved_model.signatures
        needed = ("encode", "decode", "reconstruct", "log_likelihood")
        missing = [name for name in needed if name not in self.signatures]
        if missing:
            raise UserError(f"{saved} lacks the signatures {', '.join(missing)}: it was "
                            "exported by an older vae_tf; train the run again.")
        z_spec = self.signatures["decode"].structured_input_signature[1]["z"]
        self.latent_dim = int(z_spec.shape[-1])
        image_spec = self.signatures["encode"].structured_input_signature[1]["images"]
        self.image_shape = tuple(int(d) for d in image_spec.shape[1:])
        self._data = None

    # -- the SavedModel's signatures, on numpy arrays, in batches ------------------
    def _batched(self, name: str, batch_size: int = 1024, **inputs) -> dict:
        import tensorflow as tf

        n = len(next(iter(inputs.values())))
        parts = []
        for start in range(0, n, batch_size):
            chunk = {k: tf.constant(v[start:start + batch_size], tf.float32)
                     for k, v in inputs.items()}
            parts.append({k: t.numpy() for k, t in self.signatures[name](**chunk).items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def encode(self, images: np.ndarray):
        """(mean, logvar) of q(z|x), each [N, latent]."""
        out = self._batched("encode", images=images)
        return out["mean"], out["logvar"]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean at codes z [N, latent]: images [N, H, W, C] in [0, 1]."""
        return self._batched("decode", z=z)["images"]

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        return self._batched("reconstruct", images=images)["images"]

    def log_likelihood(self, images: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x|z) per image [N], in nats."""
        return self._batched("log_likelihood", images=images, z=z)["log_prob"]

    # -- the test split --------------------------------------------------------------
    def num_test(self) -> int:
        return self._dataset().num_test

    def test_images(self, count: Optional[int] = None, with_labels: bool = False):
        """The first `count` test images (all when None) as float32 [N, H, W, C], the
        same pixels the training run evaluated on (with their labels if asked)."""
        from vae_tf.datasets.pipeline import make_batches

        data = self._dataset()
        count = data.num_test if count is None else min(count, data.num_test)
        # The run's own batch size: the test split's fixed binarization is drawn per
        # batch, so another batch size would give other binary images.
        batches = make_batches(data, self.config, training=False, with_labels=True)
        images, labels = [], []
        for x, y in batches.take(math.ceil(count / self.config.batch_size)):
            images.append(x.numpy())
            labels.append(y.numpy())
        images, labels = np.concatenate(images)[:count], np.concatenate(labels)[:count]
        return (images, labels) if with_labels else images

    def test_image(self, index: int) -> np.ndarray:
        self.check_index(index)
        return self.test_images(index + 1)[index]

    def check_index(self, index: int, flag: str = "--index") -> None:
        if not 0 <= index < self.num_test():
            raise UserError(f"{flag}={index} is out of range: the test split has "
                            f"{self.num_test()} images (0 to {self.num_test() - 1}).")

    def _dataset(self):
        from vae_tf import datasets

        if self._data is None:
            self._data = datasets.load(self.config)
            if tuple(self._data.image_shape) != self.image_shape:
                raise UserError(f"The data has images of shape {self._data.image_shape} but "
                                f"the model takes {self.image_shape}: check --data_dir.")
        return self._data

    # -- where the commands write ----------------------------------------------------
    def output_path(self, given: Optional[str], default_name: str) -> str:
        """--output when given, else <run_dir>/pictures/<default_name>; its folder
        is created, and must be writable."""
        path = given or os.path.join(self.run_dir, PICTURES, default_name)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise UserError(f"Cannot create {folder}: {e.strerror}.") from None
        if not os.access(folder, os.W_OK):
            raise UserError(f"{folder} is not writable.")
        return path


def write_json(path: str, values: dict) -> None:
    """Writes `values` as indented JSON through a temporary file, so an interrupted
    write never replaces a good file with half of one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(values, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
