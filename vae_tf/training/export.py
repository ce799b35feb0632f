"""The SavedModel contract: named, deterministic signatures, loadable with plain
`tf.saved_model.load(path)` and no import of this package.

  encode(images [N,H,W,C] float32 in [0,1]) -> mean, logvar [N, latent]
  decode(z [N, latent])                     -> images [N,H,W,C], the decoder's mean
  reconstruct(images)                        -> images, decode(mean of q(z|x))
  log_likelihood(images, z [N, latent])      -> log_prob [N], log p(x|z) in nats
  sampling_prior()                           -> mean [latent], scale_tril [latent, latent]:
                                                sample codes as mean + scale_tril @ e,
                                                e ~ N(0, T^2 I) (N(0, I) unless the run
                                                has --sample_prior=fitted)
  sample(num [], seed [] int64, temperature [T]) -> images [num,H,W,C]: decoder means of
                                                `num` samples from the model's (or the
                                                fitted) prior at one temperature (T=1)
                                                or one per latent group; the same
                                                images for a seed
  log_weights(images, seeds [N,2] int64, first [], num [] int32)
                                             -> log_likelihood, log_weight, kl [N, num]:
                                                samples first..first+num-1 of q(z|x) per
                                                image (image n's from its stateless seed
                                                seeds[n]): log p(x|z_k), the importance
                                                log-weight log p(x,z_k) - log q(z_k|x),
                                                and the ELBO's KL term (nats)

For --architecture=hierarchical, `latent` is the top group (flattened), `decode` sets
the groups below it at their prior means (with --sample_prior=fitted at the fitted
Gaussian's mean given the top group), and `reconstruct` every group at its
posterior mean; log_likelihood(images, z) is that of `decode(z)`'s distribution.
Its export also has

  group_posteriors(images) -> mean_group0, logvar_group0, mean_group1, ...
                         [N, side_g * side_g * channels]: each group's posterior in
                         its prior's units, (mean_q - mean_p) / std_p and
                         logvar_q - logvar_p (flattened as `encode`'s), top first, the
                         groups above at their means (the path of `reconstruct`)

and log_weights also gives kl_groups [N, num, groups], the KL term of each group.

`serving_default` is `reconstruct`, so the default endpoint never samples.

The signatures compute in float32 whatever precision trained the model (the same
weights), unless --export_precision asks for 16 bits: a bfloat16 graph does not
convert to TFLite and runs emulated on hardware without native bfloat16.
`precision.json` beside saved_model.pb records the training and the export precision.
"""

import os

import keras
import tensorflow as tf
from absl import logging

from vae_tf.run import files


PRECISION_FILE = "precision.json"


def at_precision(model, precision: str):
    """`model` computing under the Keras dtype policy `precision`: itself, or a model
    of the same configuration built under that policy holding the same weights."""
    if model.dtype_policy.name == precision:
        return model
    from vae_tf.models.build import build_vae

    copy = build_vae(model.config.replace(precision=precision), model.image_shape)
    copy.set_weights(model.get_weights())
    return copy


def export_saved_model(model, path: str, precision: str = "float32") -> str:
    """Writes the SavedModel of `model` computing in `precision` to `path`, replacing
    an older export only once the new one is complete."""
    trained = model.dtype_policy.name
    model = at_precision(model, precision)
    image_spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")
    z_spec = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")

    def reconstruct(images):
        return {"images": model(images, training=False)}

    def encode(images):
        mean, logvar = model.encode(images)
        return {"mean": mean, "logvar": logvar}

    def decode(z):
        return {"images": model.decode(z)}

    def log_likelihood(images, z):
        return {"log_prob": model.log_likelihood(images, z)}

    def sampling_prior():
        mean, scale_tril = model.sampling_prior()
        return {"mean": mean, "scale_tril": scale_tril}

    def sample(num, seed, temperature):
        return {"images": model.sample_images(num, seed, temperature)}

    groups = model.kl_part_names()  # a hierarchy's groups; none for the flat VAE

    def log_weights(images, seeds, first, num):
        ll, log_weight, kl_parts = model.importance_terms(images, seeds, first, num)
        out = {"log_likelihood": ll, "log_weight": log_weight,
               "kl": tf.reduce_sum(kl_parts, axis=-1)}
        if groups:
            out["kl_groups"] = kl_parts
        return out

    def group_posteriors(images):
        out = {}
        for g, (mean, logvar) in enumerate(model.group_posteriors(images)):
            out.update({f"mean_group{g}": mean, f"logvar_group{g}": logvar})
        return out

    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint also becomes serving_default.
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("decode", decode, input_signature=[z_spec])
    # What likelihood bounds (ELBO, IWAE) need from the decoder, whatever the density.
    archive.add_endpoint("log_likelihood", log_likelihood, input_signature=[image_spec, z_spec])
    archive.add_endpoint("sampling_prior", sampling_prior, input_signature=[])
    scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)
    archive.add_endpoint("sample", sample, input_signature=[
        scalar(tf.int32, "num"), scalar(tf.int64, "seed"),
        tf.TensorSpec([None], tf.float32, name="temperature")])
    # What likelihood bounds need, whatever the model family (evaluate reads this).
    archive.add_endpoint("log_weights", log_weights, input_signature=[
        image_spec, tf.TensorSpec([None, 2], tf.int64, name="seeds"),
        scalar(tf.int32, "first"), scalar(tf.int32, "num")])
    if groups:
        # What evaluate counts each group's active units from.
        archive.add_endpoint("group_posteriors", group_posteriors, input_signature=[image_spec])
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)  # the SavedModel writer logs each function at INFO
    try:
        with files.atomic_dir(path) as tmp:
            archive.write_out(tmp, verbose=False)
            files.write_json(os.path.join(tmp, PRECISION_FILE),
                             {"training": trained, "export": precision})
    finally:
        logging.set_verbosity(verbosity)
    return path
