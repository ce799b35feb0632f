"""The VAE: a subclassed keras.Model whose train_step and test_step share one ELBO helper.

The likelihood (vae_tf/models/likelihoods.py), the encoder and decoder
(vae_tf/models/architectures/) and the KL weight schedule and penalty (vae_tf/models/kl.py) are
built from the Config by `vae_tf.models.build.build_vae` and handed to the model. The replicas' part of a
training step is vae_tf/models/distribute.py's, the Gaussian arithmetic
vae_tf/models/gaussian.py's.

Reported metrics (nats per image, averaged over the epoch):
  loss            negative ELBO = reconstruction + kl (whatever the KL weight)
  reconstruction  E_q[-log p(x|z)], one sample of z
  kl              KL(q(z|x) || N(0, I))
  bits_per_dim    (where likelihoods.bits_per_nat applies) loss / (pixels * channels * ln 2)
  kl_weight       (training only) the KL weight (beta) in force at the epoch's last step
  grad_norm       (training only) the gradients' global norm before clipping, epoch mean
  skipped_updates (training only, with --grad_skip) updates skipped so far this epoch
"""

from typing import Tuple

import keras
import tensorflow as tf

from vae_tf.config import Config
from vae_tf.models import architectures, distribute, gaussian, likelihoods


class VAE(keras.Model):
    """Encoder q(z|x) = N(mean, exp(logvar)), prior N(0, I), decoder p(x|z).

    The objective, the metrics and what the export and the commands call are written
    once here, over a few methods that a model family provides (this class is the
    flat family, `vae_tf.models.hierarchical.HierarchicalVAE` the hierarchy):

      _build_networks(config, output_channels) -> the size of the code (latent_dim)
      encode(images)          q of the code: (mean, logvar) [N, latent]
      decoder_output(z)       the likelihood's parameters with the code at z
      posterior_pass(images, draw, num)
                              z from q(z|x), each image `num` times: (the likelihood's
                              parameters, the KL in parts [N, parts], log p(z) - log q(z|x) [N])
      prior_pass(num, draw, temperature)
                              the likelihood's parameters at `num` draws of the prior
      noise_shapes(), kl_part_names()
                              the noise a posterior pass draws; the KL parts logged
      group_posteriors(images)
                              each latent group's posterior (mean, logvar) in its
                              prior's units, flattened, top first (active units are
                              counted per group)

    `draw(shape)` is the noise (see vae_tf/models/gaussian.py); None means the means.

    Args:
        config: the run's settings (architecture, likelihood, latent size, seed).
        image_shape: [H, W, C] of the images.
        kl_schedule: the KL weight as a function of the training step
            (a `vae_tf.models.kl.Schedule`, or any callable on an int64 step).
        kl_penalty: the KL penalty of the training objective, called as
            kl_penalty(kl_parts, kl_weight, step) -> [batch] (see vae_tf/models/kl.py).
    """

    def __init__(self, config: Config, image_shape: Tuple[int, int, int], *,
                 kl_schedule, kl_penalty, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.image_shape = tuple(image_shape)
        self.kl_schedule, self.kl_penalty = kl_schedule, kl_penalty
        self.likelihood = likelihoods.build(config, self.image_shape)
        # The networks fix the code's size (a hierarchy's: its top group's map,
        # flattened); the weights below are shaped by it.
        self.latent_dim = self._build_networks(
            config, self.likelihood.decoder_channels(self.image_shape[-1]))
        # Training steps taken, which the KL schedule and penalty read. A weight, so
        # that checkpoints carry it and a resumed run continues its schedule; under
        # tf.distribute every replica adds 1 per step and the first one's sum is kept.
        self.training_steps = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="training_steps")
        self.noise_seed = keras.random.SeedGenerator(config.seed)
        if config.sample_prior == "fitted":
            self._add_sampling_prior_weights()
        names = ["loss", "reconstruction", "kl", *self.kl_part_names()]
        # Nats per image to bits per dimension of the 8-bit (or binarized) image;
        # None where the likelihood is not a probability of it.
        self.bits_per_nat = likelihoods.bits_per_nat(config, self.image_shape)
        if self.bits_per_nat is not None:
            names.append("bits_per_dim")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # Training-only monitors of the update (not reset by evaluation).
        self.grad_norm = keras.metrics.Mean(name="grad_norm")
        self.skipped_updates = keras.metrics.Sum(name="skipped_updates")

    @property
    def metrics(self):
        # Listing the trackers here makes Keras reset them at each epoch.
        return [*self.trackers.values(), self.grad_norm, self.skipped_updates]

    # -- the family: one code vector, an encoder and a decoder ------------------------
    def _build_networks(self, config: Config, output_channels: int) -> int:
        self.encoder = architectures.build_encoder(config, self.image_shape)
        self.decoder = architectures.build_decoder(config, self.image_shape, output_channels)
        return config.latent_dim

    def _add_sampling_prior_weights(self):
        """The Gaussian that sampling draws codes from (--sample_prior=fitted), refitted
        after each epoch (callbacks.FitSamplingPrior); weights, so checkpoints and the
        export carry it. Until the first fit it is N(0, I)."""
        d = self.latent_dim
        self.prior_mean = self.add_weight(shape=(d,), initializer="zeros",
                                          trainable=False, name="prior_mean")
        self.prior_scale_tril = self.add_weight(shape=(d, d), initializer="identity",
                                                trainable=False, name="prior_scale_tril")

    def prior_fit_codes(self, images):
        """(means, logvars) [N, size] of the posteriors the fitted sampling prior is
        fitted to: here the code's."""
        return self.encode(images)

    def kl_part_names(self):
        """Names of the metrics that log parts of the KL (a hierarchy's groups)."""
        return []

    def noise_shapes(self):
        """Shapes, per image, of the standard-normal noise of one posterior pass, in
        the order it is drawn (the `eps` of `elbo_terms`)."""
        return [(self.latent_dim,)]

    def encode(self, images, training=False):
        """Returns the mean and the (clamped) log-variance of q(z|x)."""
        # The variable dtype (float32, or float64 for the gradient check), whatever
        # precision the layers compute in.
        h = tf.cast(self.encoder(images, training=training), self.variable_dtype)
        q = gaussian.DiagonalGaussian.from_stats(h)
        return q.mean, q.logvar

    def group_posteriors(self, images):
        """Each latent group's posterior, (mean, logvar) [N, size_g] top first: here
        one group, encode's."""
        return [self.encode(images)]

    def decoder_output(self, z, training=False):
        """The decoder's raw output, the likelihood's parameters, in the variable dtype."""
        return tf.cast(self.decoder(z, training=training), self.variable_dtype)

    def posterior_pass(self, images, draw, num=1, training=False):
        """z = mean + std * eps from q(z|x), eps from `draw` (0 when it is None): the
        decoder's output, the KL per latent dimension and log p(z) - log q(z|x)."""
        q = gaussian.DiagonalGaussian(*(repeat_examples(t, num)
                                        for t in self.encode(images, training=training)))
        eps = tf.zeros_like(q.mean) if draw is None else gaussian.noise_like(draw, q.mean)
        z = q.sample(eps)
        log_ratio = (tf.reduce_sum(gaussian.DiagonalGaussian.standard(z).log_prob(z), axis=-1)
                     - tf.reduce_sum(q.noise_log_prob(eps), axis=-1))
        return self.decoder_output(z, training=training), q.kl_standard(), log_ratio

    def prior_pass(self, num, draw, temperature):
        """The decoder's output at `num` codes of the sampling prior at `temperature`."""
        t = tf.reshape(tf.cast(temperature, self.variable_dtype), [-1])[0]
        return self.decoder_output(self.sampling_prior_codes(draw, num, t))

    # -- the pieces the export and the commands use ------------------------------
    def decode(self, z):
        """The mean of p(x|z), in [0, 1]."""
        return self.likelihood.mean(self.decoder_output(z))

    def call(self, images, training=False):
        """Deterministic reconstruction: z at the posterior's mean (every group's)."""
        params, _, _ = self.posterior_pass(images, None, training=training)
        return self.likelihood.mean(params)

    def sampling_prior(self):
        """(mean [latent], lower-triangular scale [latent, latent]) of the Gaussian that
        sampling draws codes from: N(0, I), or the fitted one (--sample_prior)."""
        if self.config.sample_prior == "fitted":
            return (tf.convert_to_tensor(self.prior_mean),
                    tf.convert_to_tensor(self.prior_scale_tril))
        return (tf.zeros([self.latent_dim], self.variable_dtype),
                tf.eye(self.latent_dim, dtype=self.variable_dtype))

    def sampling_prior_codes(self, draw, num, temperature):
        """`num` codes mean + temperature * scale_tril @ e of the sampling prior, e the
        next draw of `draw`."""
        mean, scale_tril = self.sampling_prior()
        eps = tf.cast(draw([num, self.latent_dim]), self.variable_dtype)
        return mean + tf.cast(temperature, self.variable_dtype) * tf.matmul(
            eps, scale_tril, transpose_b=True)

    def sample_images(self, num, seed, temperature=1.0):
        """The decoder's mean at `num` draws of the prior at `temperature`, the noise
        from the stateless seed (see gaussian.stateless_draw): the same images for a
        seed, here and in the export."""
        return self.likelihood.mean(
            self.prior_pass(num, gaussian.stateless_draw(seed), temperature))

    def log_likelihood(self, images, z, training=False):
        """log p(x|z) per example [batch], summed over pixels (nats)."""
        return -self._nll(images, self.decoder_output(z, training=training), training)

    def _nll(self, images, params, training):
        """-log p(x | params): in the training step by the likelihood's training_nll
        (a fused kernel where it has one), elsewhere by the exported ops."""
        nll = self.likelihood.training_nll if training else self.likelihood.nll
        return nll(images, params)

    def importance_terms(self, images, seeds, first, num):
        """Samples first .. first+num-1 of q(z|x) for each image (image i's drawn
        from the stateless seeds[i]): log p(x|z_k), the log importance weight
        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), each [N, num], and the
        ELBO's KL term in parts (per latent dimension, or per group) [N, num, parts],
        in nats."""
        params, kl_parts, log_ratio = self.posterior_pass(
            images, gaussian.per_image_draw(seeds, first, num), num)
        ll = -self._nll(repeat_examples(images, num), params, training=False)
        return (tf.reshape(ll, [-1, num]), tf.reshape(ll + log_ratio, [-1, num]),
                tf.reshape(kl_parts, [-1, num, kl_parts.shape[-1]]))

    # Checkpoints hold the latent noise generator's state after the model's own
    # variables, so that a resumed run draws the noise an uninterrupted one would.
    # A checkpoint written without it still loads (the noise then starts afresh).
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[str(len(self._own_variables()))] = self.noise_seed.state

    def load_own_variables(self, store):
        count = len(self._own_variables())
        super().load_own_variables({str(i): store[str(i)] for i in range(count)})
        if str(count) in store.keys():
            self.noise_seed.state.assign(store[str(count)])

    def _own_variables(self):
        return self._trainable_variables + self._non_trainable_variables

    # -- the objective ------------------------------------------------------------
    def noise(self, shape):
        """Standard-normal noise of `shape` from the model's seeded generator (each
        replica its own under tf.distribute)."""
        return distribute.replica_noise(shape, self.noise_seed)

    def elbo_terms(self, images, training=False, eps=None):
        """One reparameterized sample of the ELBO's terms: -log p(x|z) [batch] and
        the KL in parts [batch, parts] (per latent dimension, or per group).

        `eps` fixes the standard-normal noise (gradient checks, tests): a tensor per
        entry of `noise_shapes`; by default it is drawn from the model's seeded generator.
        """
        draw = self.noise if eps is None else gaussian.fixed_draw(eps)
        params, kl_parts, _ = self.posterior_pass(images, draw, training=training)
        return self._nll(images, params, training), kl_parts

    def objective(self, images, training, eps=None):
        """The training objective, the batch mean of reconstruction + KL penalty at
        the current training step; also the per-example ELBO terms (reconstruction
        [batch], and the KL in parts [batch, parts]) and the KL weight used."""
        step = self.training_steps.value
        kl_weight = tf.cast(self.kl_schedule(step), self.variable_dtype)
        rec, kl_parts = self.elbo_terms(images, training=training, eps=eps)
        objective = tf.reduce_mean(rec + self.kl_penalty(kl_parts, kl_weight, step))
        return objective, rec, kl_parts, kl_weight

    def train_step(self, data):
        with tf.GradientTape() as tape:
            objective, rec, kl_parts, kl_weight = self.objective(_images(data), training=True)
            # Multiplies by the loss scale under mixed_float16 (the LossScaleOptimizer
            # divides it out again); the identity otherwise.
            loss = self.optimizer.scale_loss(distribute.replica_share(objective))
        grads = tape.gradient(loss, self.trainable_weights)
        norm = distribute.global_norm(grads, self.optimizer)
        self.grad_norm.update_state(norm)
        logs = {}
        if self.config.grad_skip > 0:
            # VDVAE's guard: an update from a gradient far above the usual norm (or a
            # non-finite one) is dropped whole, Adam's moments included.
            apply = distribute.on_every_replica(
                tf.logical_and(tf.math.is_finite(norm), norm <= self.config.grad_skip))
            distribute.apply_gradients_if(apply, self.optimizer, grads, self.trainable_weights)
            self.skipped_updates.update_state(1.0 - tf.cast(apply, tf.float32))
            logs["skipped_updates"] = self.skipped_updates.result()
        else:
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.training_steps.assign_add(1)
        # The weight of this step, not an epoch mean: the epoch's log is its last step's.
        return self._record(rec, kl_parts, kl_weight=kl_weight,
                            grad_norm=self.grad_norm.result(), **logs)

    def test_step(self, data):
        # The ELBO alone: the KL weight and penalty belong to training.
        return self._record(*self.elbo_terms(_images(data), training=False))

    def _record(self, rec, kl_parts, **values):
        """Logs the epoch means of the ELBO terms so far, and `values` as they are."""
        kl = tf.reduce_sum(kl_parts, axis=-1)
        terms = {"loss": rec + kl, "reconstruction": rec, "kl": kl,
                 **{name: kl_parts[:, i] for i, name in enumerate(self.kl_part_names())}}
        if self.bits_per_nat is not None:
            terms["bits_per_dim"] = (rec + kl) * self.bits_per_nat
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return distribute.reducible_logs(
            {**{name: t.result() for name, t in self.trackers.items()}, **values})


def repeat_examples(t, num):
    """Each example of `t` `num` times along the batch (`num` a tensor in the export;
    the int 1 leaves `t` as it is)."""
    if isinstance(num, int) and num == 1:
        return t
    return tf.repeat(t, num, axis=0)


def _images(data):
    """Datasets may yield images alone or (images, labels)."""
    return data[0] if isinstance(data, (tuple, list)) else data


class Autoencoder(VAE):
    """--model=ae: the VAE's encoder and decoder trained as a deterministic autoencoder.

    The encoder's mean is the code; its log-variance output is ignored and reported
    at its floor (q is a point mass), so code that samples from q gets the mean.
    The objective is -log p(x|code) alone: no noise and no KL (reported as 0).
    """

    def encode(self, images, training=False):
        mean, _ = super().encode(images, training=training)
        return mean, tf.zeros_like(mean) + gaussian.LOGVAR_MIN

    def elbo_terms(self, images, training=False, eps=None):
        mean, _ = self.encode(images, training=training)
        return -self.log_likelihood(images, mean, training=training), tf.zeros_like(mean)
