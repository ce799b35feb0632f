"""A finished run as the commands see it: its settings, its SavedModel and its test
split. Nothing here imports the training code's model: the SavedModel's signatures
are the only way to the network, so everything built on this works on any export.
"""

import math
from typing import Optional

import numpy as np

from vae_tf.errors import UserError
from vae_tf.run import rundir, tfenv
from vae_tf.views import latent


class TrainedRun:
    """A run directory opened for inference.

    Attributes: `dir` (its `rundir.RunDir`), `config` (from config.json, with
    `data_dir` applied), `signatures` (the SavedModel's), `image_shape`, `latent_dim`.
    """

    def __init__(self, run_dir: str, data_dir: Optional[str] = None):
        self.dir = rundir.open_existing(run_dir)
        self.config = self.dir.read_config()
        if data_dir:
            self.config = self.config.replace(data_dir=data_dir)
        if not self.dir.is_finished():
            raise UserError(f"{run_dir} has no complete {rundir.SAVED_MODEL}/ (the run is "
                            "unfinished, was copied without it, or it is damaged): run the "
                            "training command again to finish and export it.")

        tf = tfenv.import_tensorflow()  # here, so that flag errors come without TF start-up

        tf.get_logger().setLevel("WARNING")
        # The loaded object owns the variables; the signatures alone would let them go.
        try:
            self.saved_model = tf.saved_model.load(self.dir.saved_model_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise UserError(f"{self.dir.saved_model_dir} does not load ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}); run the training command "
                            "again to export it from the last checkpoint.") from None
        self.signatures = self.saved_model.signatures
        needed = ("encode", "decode", "reconstruct", "log_likelihood")
        missing = [name for name in needed if name not in self.signatures]
        if missing:
            raise UserError(f"{self.dir.saved_model_dir} lacks the signatures "
                            f"{', '.join(missing)}: it was exported by an older vae_tf; "
                            "train the run again.")
        z_spec = self.signatures["decode"].structured_input_signature[1]["z"]
        self.latent_dim = int(z_spec.shape[-1])
        image_spec = self.signatures["encode"].structured_input_signature[1]["images"]
        self.image_shape = tuple(int(d) for d in image_spec.shape[1:])
        self._data = None

    @property
    def run_dir(self) -> str:
        return self.dir.path

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

    def group_posteriors(self, images: np.ndarray) -> Optional[list]:
        """Each latent group's posterior in its prior's units, (mean, logvar) each
        [N, size_g], top first, the groups above at their means; None for an export
        without groups (a flat model's). An export made before the logvars were
        exported (its `group_means` signature) gives logvar 0, the prior's variance."""
        if "group_posteriors" in self.signatures:
            out = self._batched("group_posteriors", images=images)
            return [(out[f"mean_group{g}"], out[f"logvar_group{g}"])
                    for g in range(len(out) // 2)]
        if "group_means" in self.signatures:
            out = self._batched("group_means", images=images)
            return [(out[f"mean_group{g}"], np.zeros_like(out[f"mean_group{g}"]))
                    for g in range(len(out))]
        return None

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean at codes z [N, latent]: images [N, H, W, C] in [0, 1]."""
        return self._batched("decode", z=z)["images"]

    def sample(self, num: int, seed: int = 0, temperature=1.0) -> np.ndarray:
        """Decoder means of `num` samples of the export's `sample` signature, at one
        temperature or one per latent group: images [num, H, W, C]."""
        import tensorflow as tf

        if "sample" not in self.signatures:  # an export made before it existed
            return self.decode(latent.prior_codes(num, self.latent_dim, seed, temperature))
        out = self.signatures["sample"](
            num=tf.constant(num, tf.int32), seed=tf.constant(seed, tf.int64),
            temperature=tf.constant(np.atleast_1d(temperature), tf.float32))
        return out["images"].numpy()

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
        same pixels as the final evaluation of training (with their labels if asked)."""
        return self.split_images("test", count, with_labels)

    def split_images(self, split: str, count: Optional[int] = None, with_labels: bool = False):
        """test_images of the split 'test' or 'validation' (the run's own validation
        images, those its epochs were measured on)."""
        from vae_tf.datasets.pipeline import make_batches

        data = self._dataset()
        available = data.num_test if split == "test" else data.num_validation
        if available == 0:
            raise UserError(f"{self.run_dir} has no {split} split (it was trained with "
                            f"--validation_size=0): evaluate it on --split=test.")
        count = available if count is None else min(count, available)
        # The run's own batch size: the test split's fixed binarization is drawn per
        # batch, so another batch size would give other binary images.
        batches = make_batches(data, self.config, training=False, with_labels=True,
                               split=split)
        images, labels = [], []
        for x, y in batches.take(math.ceil(count / self.config.batch_size)):
            images.append(x.numpy())
            labels.append(y.numpy())
        images, labels = np.concatenate(images)[:count], np.concatenate(labels)[:count]
        return (images, labels) if with_labels else images

    def test_image(self, index: int) -> np.ndarray:
        self.check_index(index)
        return self.test_images(index + 1)[index]

    def test_attributes(self):
        """CelebA's 40 attribute names and a bool array [num_test, 40] of the test
        images, in test_images' order (UserError for runs of other datasets)."""
        if self.config.dataset != "celeba":
            raise UserError(f"Attributes are CelebA's annotations (list_attr_celeba.txt); "
                            f"{self.run_dir} was trained on {self.config.dataset}.")
        from vae_tf.datasets import celeba

        return celeba.attributes_of_test_images(self.config)

    @staticmethod
    def attribute_column(names, attribute: str) -> int:
        """The column of `attribute` among the attribute names (UserError if absent)."""
        if attribute not in names:
            raise UserError(f"--attribute={attribute} is not a CelebA attribute; one of: "
                            f"{', '.join(names)}.")
        return names.index(attribute)

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

    def output_path(self, given: Optional[str], default_name: str) -> str:
        """--output when given, else <run_dir>/pictures/<default_name>."""
        return self.dir.output_path(given, self.dir.picture(default_name))
