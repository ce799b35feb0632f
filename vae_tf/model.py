"""The VAE: a subclassed keras.Model whose train_step and test_step share one ELBO helper.

The likelihood (vae_tf/likelihoods.py), the encoder and decoder
(vae_tf/architectures/) and the KL weight schedule and penalty (vae_tf/kl.py) are
built from the Config by `build_vae` and handed to the model.

Reported metrics (nats per image, averaged over the epoch):
  loss            negative ELBO = reconstruction + kl (whatever the KL weight)
  reconstruction  E_q[-log p(x|z)], one sample of z
  kl              KL(q(z|x) || N(0, I))
  bits_per_dim    (where likelihoods.bits_per_nat applies) loss / (pixels * channels * ln 2)
  kl_weight       (training only) the KL weight (beta) in force at the epoch's last step
  grad_norm       (training only) the gradients' global norm before clipping, epoch mean
  skipped_updates (training only, with --grad_skip) updates skipped so far this epoch
"""

import contextlib

from typing import Optional, Tuple

import keras
import tensorflow as tf

from vae_tf import architectures, distribute, hierarchical, likelihoods, losses, rundir, tfenv
from vae_tf import kl as kl_lib
from vae_tf import optimizer as optimizer_lib
from vae_tf.config import Config
from vae_tf.errors import UserError


class VAE(keras.Model):
    """Encoder q(z|x) = N(mean, exp(logvar)), prior N(0, I), decoder p(x|z).

    Args:
        config: the run's settings (architecture, likelihood, latent size, seed).
        image_shape: [H, W, C] of the images.
        kl_schedule: the KL weight as a function of the training step
            (a `vae_tf.kl.Schedule`, or any callable on an int64 step).
        kl_penalty: the KL penalty of the training objective, called as
            kl_penalty(kl_per_dim, kl_weight, step) -> [batch] (see vae_tf/kl.py).
    """

    def __init__(self, config: Config, image_shape: Tuple[int, int, int], *,
                 kl_schedule, kl_penalty, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.image_shape = tuple(image_shape)
        self.latent_dim = config.latent_dim
        self.kl_schedule, self.kl_penalty = kl_schedule, kl_penalty
        self.likelihood = likelihoods.build(config, self.image_shape)
        self._build_networks(config, self.likelihood.decoder_channels(self.image_shape[-1]))
        # Training steps taken, which the KL schedule and penalty read. A weight, so
        # that checkpoints carry it and a resumed run continues its schedule; under
        # tf.distribute every replica adds 1 per step and the first one's sum is kept.
        self.training_steps = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="training_steps")
        self.noise_seed = keras.random.SeedGenerator(config.seed)
        if config.sample_prior == "fitted":
            # The Gaussian that sampling draws codes from, refitted after each epoch
            # (callbacks.FitSamplingPrior); weights, so checkpoints and the export
            # carry it. Until the first fit it is N(0, I).
            d = self.latent_dim  # a hierarchy's: its top group's map, flattened
            self.prior_mean = self.add_weight(shape=(d,), initializer="zeros",
                                              trainable=False, name="prior_mean")
            self.prior_scale_tril = self.add_weight(shape=(d, d), initializer="identity",
                                                    trainable=False, name="prior_scale_tril")
        names = ["loss", "reconstruction", "kl", *self._kl_parts_logged()]
        # Nats per image to bits per dimension of the 8-bit (or binarized) image;
        # None where the likelihood is not a probability of it.
        self.bits_per_nat = likelihoods.bits_per_nat(config, self.image_shape)
        if self.bits_per_nat is not None:
            names.append("bits_per_dim")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # Training-only monitors of the update (not reset by evaluation).
        self.grad_norm = keras.metrics.Mean(name="grad_norm")
        self.skipped_updates = keras.metrics.Sum(name="skipped_updates")

    def _build_networks(self, config: Config, output_channels: int):
        self.encoder = architectures.build_encoder(config, self.image_shape)
        self.decoder = architectures.build_decoder(config, self.image_shape, output_channels)

    def _kl_parts_logged(self):
        """Names of the metrics that log parts of the KL (a hierarchy's groups)."""
        return []

    @property
    def metrics(self):
        # Listing the trackers here makes Keras reset them at each epoch.
        return [*self.trackers.values(), self.grad_norm, self.skipped_updates]

    # -- the pieces the export and the commands use ------------------------------
    def encode(self, images, training=False):
        """Returns the mean and the (clamped) log-variance of q(z|x)."""
        # The variable dtype (float32, or float64 for the gradient check), whatever
        # precision the layers compute in.
        h = tf.cast(self.encoder(images, training=training), self.variable_dtype)
        mean, logvar = tf.split(h, 2, axis=-1)
        return mean, tf.clip_by_value(logvar, losses.LOGVAR_MIN, losses.LOGVAR_MAX)

    def decoder_output(self, z, training=False):
        """The decoder's raw output, the likelihood's parameters, in the variable dtype."""
        return tf.cast(self.decoder(z, training=training), self.variable_dtype)

    def decode(self, z):
        """The mean of p(x|z), in [0, 1]."""
        return self.likelihood.mean(self.decoder_output(z))

    def sampling_prior(self):
        """(mean [latent], lower-triangular scale [latent, latent]) of the Gaussian that
        sampling draws codes from: N(0, I), or the fitted one (--sample_prior)."""
        if self.config.sample_prior == "fitted":
            return (tf.convert_to_tensor(self.prior_mean),
                    tf.convert_to_tensor(self.prior_scale_tril))
        return (tf.zeros([self.latent_dim], self.variable_dtype),
                tf.eye(self.latent_dim, dtype=self.variable_dtype))

    def sample_images(self, num, seed, temperature=1.0):
        """The decoder's mean at `num` codes mean + temperature * scale_tril @ e of the
        sampling prior, e ~ N(0, I) from the stateless seed (seed, 1): the same images
        for a seed, here and in the export."""
        t = tf.reshape(tf.cast(temperature, self.variable_dtype), [-1])[0]
        return self.decode(self.sampling_prior_codes(stateless_draw(seed), num, t))

    def sampling_prior_codes(self, draw, num, temperature):
        """`num` codes mean + temperature * scale_tril @ e of the sampling prior, e the
        next standard-normal draw of `draw` (see stateless_draw)."""
        mean, scale_tril = self.sampling_prior()
        eps = tf.cast(draw([num, self.latent_dim]), self.variable_dtype)
        return mean + tf.cast(temperature, self.variable_dtype) * tf.matmul(
            eps, scale_tril, transpose_b=True)

    def importance_terms(self, images, seeds, first, num):
        """Samples first .. first+num-1 of q(z|x) for each image (image i's drawn
        from the stateless seeds[i]): log p(x|z_k), the log importance weight
        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) and the ELBO's KL term,
        each [N, num] in nats."""
        mean, logvar = self.encode(images)
        repeat = lambda t: tf.repeat(t, num, axis=0)
        mean, logvar, images = repeat(mean), repeat(logvar), repeat(images)
        eps = tf.cast(per_image_draw(seeds, first, num)(tf.shape(mean)), self.variable_dtype)
        z = mean + tf.exp(0.5 * logvar) * eps
        ll = self.log_likelihood(images, z)
        log_prior = -0.5 * tf.reduce_sum(tf.square(z) + losses.LOG_2PI, axis=-1)
        log_q = -0.5 * tf.reduce_sum(tf.square(eps) + losses.LOG_2PI + logvar, axis=-1)
        kl = tf.reduce_sum(losses.gaussian_kl_per_dim(mean, logvar), axis=-1)
        return tuple(tf.reshape(t, [-1, num]) for t in (ll, ll + log_prior - log_q, kl))

    def noise_shapes(self):
        """Shapes, per image, of the standard-normal noise of one ELBO sample (the
        `eps` of `elbo_terms`)."""
        return [(self.latent_dim,)]

    def call(self, images, training=False):
        """Deterministic reconstruction: the decoder's mean at the mean of q(z|x)."""
        mean, _ = self.encode(images, training=training)
        return self.likelihood.mean(self.decoder_output(mean, training=training))

    # -- the objective ------------------------------------------------------------
    def elbo_terms(self, images, training=False, eps=None):
        """One reparameterized sample of the ELBO's terms: -log p(x|z) [batch] and
        the KL per latent dimension [batch, latent].

        `eps` fixes the standard-normal noise (gradient checks, tests), [batch, latent]
        or a list of it alone (as `noise_shapes` lists it); by default it is drawn from
        the model's seeded generator.
        """
        mean, logvar = self.encode(images, training=training)
        if eps is None:
            eps = self.noise(tf.shape(mean))
        elif isinstance(eps, (list, tuple)):
            (eps,) = eps
        z = mean + tf.exp(0.5 * logvar) * eps
        rec = -self.log_likelihood(images, z, training=training)
        kl_per_dim = losses.gaussian_kl_per_dim(mean, logvar)
        return rec, kl_per_dim

    def log_likelihood(self, images, z, training=False):
        """log p(x|z) per example [batch], summed over pixels (nats)."""
        return -self._nll(images, self.decoder_output(z, training=training), training)

    def _nll(self, images, params, training):
        """-log p(x | params): in the training step by the likelihood's training_nll
        (a fused kernel where it has one), elsewhere by the exported ops."""
        nll = self.likelihood.training_nll if training else self.likelihood.nll
        return nll(images, params)

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

    def noise(self, shape):
        """Standard-normal noise of `shape` from the model's seeded generator.

        Under tf.distribute every replica holds the same generator state and would
        draw the same numbers, so each takes its own slice of one draw for all.
        """
        replicas = tf.distribute.get_replica_context()
        if replicas is None or replicas.num_replicas_in_sync == 1:
            return keras.random.normal(shape, seed=self.noise_seed)
        draws = keras.random.normal(tf.concat([[replicas.num_replicas_in_sync], shape], 0),
                                    seed=self.noise_seed)
        return draws[replicas.replica_id_in_sync_group]

    def objective(self, images, training, eps=None):
        """The training objective, the batch mean of reconstruction + KL penalty at
        the current training step; also the per-example ELBO terms (reconstruction
        [batch], and the KL in parts [batch, parts]: per latent dimension, or per
        group of a hierarchy) and the KL weight used."""
        step = self.training_steps.value
        kl_weight = tf.cast(self.kl_schedule(step), self.variable_dtype)
        rec, kl_parts = self.elbo_terms(images, training=training, eps=eps)
        objective = tf.reduce_mean(rec + self.kl_penalty(kl_parts, kl_weight, step))
        return objective, rec, kl_parts, kl_weight

    def train_step(self, data):
        with tf.GradientTape() as tape:
            objective, rec, kl_parts, kl_weight = self.objective(_images(data), training=True)
            # fit() sums gradients over replicas; dividing by their number makes an
            # update under tf.distribute equal the single-device one.
            scaled = objective / tf.distribute.get_strategy().num_replicas_in_sync
            # Multiplies by the loss scale under mixed_float16 (the LossScaleOptimizer
            # divides it out again); the identity otherwise.
            scaled = self.optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, self.trainable_weights)
        norm = self._global_norm(grads)
        self.grad_norm.update_state(norm)
        logs = {}
        if self.config.grad_skip > 0:
            # VDVAE's guard: an update from a gradient far above the usual norm (or a
            # non-finite one) is dropped whole, Adam's moments included.
            apply = tf.logical_and(tf.math.is_finite(norm), norm <= self.config.grad_skip)
            apply = self._on_every_replica(apply)
            self._apply_if(apply, grads)
            self.skipped_updates.update_state(1.0 - tf.cast(apply, tf.float32))
            logs["skipped_updates"] = self.skipped_updates.result()
        else:
            self._apply(grads)
        self.training_steps.assign_add(1)
        # The weight of this step, not an epoch mean: the epoch's log is its last step's.
        return self._record(rec, kl_parts, kl_weight=kl_weight,
                            grad_norm=self.grad_norm.result(), **logs)

    def _apply(self, grads):
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))

    def _apply_if(self, apply, grads):
        """Applies `grads` where `apply` (the same on every replica) is true.

        Under tf.distribute an update synchronizes the replicas, which TensorFlow
        does not allow inside a tf.cond taken in one replica; as Keras'
        LossScaleOptimizer does when it skips non-finite steps, the cond is taken
        once for all replicas and each applies its gradients in its branch.
        """
        if (not tf.distribute.has_strategy()
                or tf.__internal__.distribute.strategy_supports_no_merge_call()):
            tf.cond(apply, lambda: self._apply(grads), lambda: None)
            return

        def for_all_replicas(strategy, apply, grads):
            apply = strategy.experimental_local_results(apply)[0]
            tf.cond(apply, lambda: strategy.extended.call_for_each_replica(
                self._apply, args=(grads,)), lambda: None)

        tf.distribute.get_replica_context().merge_call(for_all_replicas, args=(apply, grads))

    def _global_norm(self, grads):
        """The gradients' global norm in the units of the objective: without the
        loss scale of mixed_float16 and the division by the replicas."""
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads])
        norm *= tf.distribute.get_strategy().num_replicas_in_sync
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            norm /= tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        return norm

    @staticmethod
    def _on_every_replica(flag):
        """True only if `flag` is true on every replica, so that all skip together."""
        replicas = tf.distribute.get_replica_context()
        if replicas is None or replicas.num_replicas_in_sync == 1:
            return flag
        return replicas.all_reduce("MIN", tf.cast(flag, tf.float32)) > 0.5

    def test_step(self, data):
        # The ELBO alone: the KL weight and penalty belong to training.
        return self._record(*self.elbo_terms(_images(data), training=False))

    def _record(self, rec, kl_parts, **values):
        """Logs the epoch means of the ELBO terms so far, and `values` as they are."""
        kl = tf.reduce_sum(kl_parts, axis=-1)
        terms = {"loss": rec + kl, "reconstruction": rec, "kl": kl,
                 **{name: kl_parts[:, i] for i, name in enumerate(self._kl_parts_logged())}}
        if self.bits_per_nat is not None:
            terms["bits_per_dim"] = (rec + kl) * self.bits_per_nat
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        logs = {**{name: t.result() for name, t in self.trackers.items()}, **values}
        if distribute.across_workers():
            # Keras 3's fit averages the logs across workers over their axis 0, which
            # fails on scalars ("Invalid reduction dimension", tensorflow#72388). The
            # trackers' variables are already summed over all replicas, so every
            # replica holds the same value, and a [1]-shaped copy averages back to it.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def stateless_draw(seed):
    """Noise for sampling: the i-th call draws N(0, 1) of its shape from the stateless
    seed (seed, i), so one seed fixes the noise of every group, in Python and in the
    export alike."""
    calls = []

    def draw(shape):
        calls.append(shape)
        return tf.random.stateless_normal(
            shape, tf.stack([tf.cast(seed, tf.int64), tf.constant(len(calls), tf.int64)]))

    return draw


def per_image_draw(seeds, first, num):
    """Noise for samples first .. first+num-1 of importance sampling, where each of N
    images is repeated `num` times along the batch: the i-th call's draw for image n
    is rows first .. first+num-1 of one sequence from the stateless seed seeds[n]
    folded with i. An image's samples are thus the same whatever the other images in
    its batch and however its samples are split into calls (a stateless draw of M
    rows begins with the draw of fewer)."""
    calls = []

    def draw(shape):
        calls.append(shape)
        part = len(calls)

        def one_image(seed):
            seed = tf.random.experimental.stateless_fold_in(seed, part)
            rows = tf.random.stateless_normal(tf.concat([[first + num], shape[1:]], 0), seed)
            return rows[first:]

        noise = tf.map_fn(one_image, seeds, fn_output_signature=tf.TensorSpec(None, tf.float32))
        return tf.reshape(noise, shape)

    return draw


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
        return mean, tf.zeros_like(mean) + losses.LOGVAR_MIN

    def elbo_terms(self, images, training=False, eps=None):
        mean, _ = self.encode(images, training=training)
        return -self.log_likelihood(images, mean, training=training), tf.zeros_like(mean)


class HierarchicalVAE(VAE):
    """--architecture=hierarchical: groups of latent maps at several resolutions, each
    group's prior and posterior conditioned on the groups above (vae_tf/hierarchical.py,
    which also says what encode, decode and sampling mean for it).

    The KL is logged in total and per group (kl_group0 is the top group).
    """

    def _build_networks(self, config: Config, output_channels: int):
        self.hierarchy = hierarchical.Hierarchy(config, self.image_shape)
        side = self.hierarchy.group_sides[0]
        self.latent_dim = side * side * self.hierarchy.channels
        self.bottom_up = hierarchical.build_bottom_up(config, self.image_shape, self.hierarchy)
        self.top_down = hierarchical.TopDown(config, self.hierarchy, output_channels,
                                             name="top_down")

    def _kl_parts_logged(self):
        return [f"kl_group{g}" for g in range(self.hierarchy.num_groups)]

    def _features(self, images, training=False):
        features = self.bottom_up(images, training=training)
        return features if isinstance(features, (list, tuple)) else [features]

    def encode(self, images, training=False):
        """q(z_top | x), flattened to [N, latent]."""
        features = self._features(images, training=training)
        mean, logvar = self.top_down.top_posterior(tf.shape(images)[0], features[0])
        return (tf.reshape(mean, [-1, self.latent_dim]),
                tf.reshape(logvar, [-1, self.latent_dim]))

    def decoder_output(self, z, training=False):
        """The likelihood's parameters with the top group at z and the rest at their
        prior means."""
        return self.top_down.run(tf.shape(z)[0], top=z, training=training)[0]

    def sample_images(self, num, seed, temperature=1.0):
        """Every group from its prior at `temperature` (one value, or one per group),
        the noise from the stateless seed; temperature 0 gives the prior means. With
        --sample_prior=fitted the top group comes from the Gaussian fitted to its
        posterior codes instead (mean + T * scale_tril @ e), the rest from their priors."""
        temperatures = hierarchical.temperatures_for(temperature, self.hierarchy.num_groups)
        draw, top = stateless_draw(seed), None
        if self.config.sample_prior == "fitted":
            top = self.sampling_prior_codes(draw, num, temperatures[0])
        params = self.top_down.run(num, draw=draw, temperatures=temperatures, top=top)[0]
        return self.likelihood.mean(params)

    def call(self, images, training=False):
        """Reconstruction: every group at its posterior mean."""
        features = self._features(images, training=training)
        params = self.top_down.run(tf.shape(images)[0], features=features, training=training)[0]
        return self.likelihood.mean(params)

    def noise_shapes(self):
        c = self.hierarchy.channels
        return [(side, side, c) for side in self.hierarchy.group_sides]

    def _posterior_pass(self, images, draw, num=1, training=False):
        """log p(x|z), the per-group KL [N*num, groups] and log p(z) - log q(z|x), at
        z from the posterior with noise `draw`, each image repeated `num` times."""
        features = self._features(images, training=training)
        if not (isinstance(num, int) and num == 1):  # a tensor in the export
            features = [tf.repeat(f, num, axis=0) for f in features]
            images = tf.repeat(images, num, axis=0)
        params, kl_groups, log_ratio = self.top_down.run(
            tf.shape(images)[0], features=features, draw=draw, training=training)
        return -self._nll(images, params, training), kl_groups, log_ratio

    def elbo_terms(self, images, training=False, eps=None):
        """-log p(x|z) [batch] and the KL per group [batch, groups], each group's KL
        analytic given the groups above it as sampled. `eps`: one noise tensor per
        group (see noise_shapes)."""
        draw = self.noise if eps is None else _sequence_draw(eps)
        ll, kl_groups, _ = self._posterior_pass(images, draw, training=training)
        return -ll, kl_groups

    def importance_terms(self, images, seeds, first, num):
        ll, kl_groups, log_ratio = self._posterior_pass(
            images, per_image_draw(seeds, first, num), num)
        kl = tf.reduce_sum(kl_groups, axis=-1)
        return tuple(tf.reshape(t, [-1, num]) for t in (ll, ll + log_ratio, kl))


def _sequence_draw(noises):
    """A noise function that returns the given tensors in order (fixed noise)."""
    remaining = list(noises)
    return lambda shape: remaining.pop(0)


@contextlib.contextmanager
def compute_precision(config: Config):
    """Layers created inside take the dtype policy of --precision ('auto' resolved
    for this machine and --jit_compile); the global policy is restored afterwards, so
    other models made in this process are unaffected. float32 leaves the caller's
    policy in force (the gradient check builds in float64)."""
    precision = tfenv.resolve_precision(config.precision, config.jit_compile)
    if precision == "float32":
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_vae(config: Config, image_shape, total_steps: int = None) -> VAE:
    """A compiled, built VAE (built so that export, checkpoints and resume work);
    an `Autoencoder` for --model=ae.

    The KL weight schedule and penalty come from `config`; `total_steps`, the run's
    number of training steps, sets the cyclical schedule's period. Call it inside
    `strategy.scope()` to train under tf.distribute.
    """
    if config.architecture == "hierarchical":
        model_class = HierarchicalVAE
        # Free bits per group: the floor per latent dimension times the group's size.
        sizes = hierarchical.Hierarchy(config, image_shape).group_sizes()
    else:
        model_class, sizes = (Autoencoder if config.model == "ae" else VAE), None
    kl_parts = dict(kl_schedule=kl_lib.weight_schedule(config, total_steps),
                    kl_penalty=kl_lib.penalty(config, sizes))
    with compute_precision(config):
        model = model_class(config, image_shape, **kl_parts)
    # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer.
    model.compile(optimizer=optimizer_lib.build(config, total_steps),
                  jit_compile=config.jit_compile)
    model(tf.zeros((1, *image_shape)))
    # Built now, not at the first step: a skipped update (tf.cond) cannot create
    # the optimizer's variables, and checkpoints load into them.
    model.optimizer.build(model.trainable_variables)
    return model


def load_vae(run_dir: str, epoch: Optional[int] = None) -> VAE:
    """The Keras model of a trained run, with the weights of its last checkpoint (or
    of epoch `epoch`), for use from Python: `encode`, `decode`, `log_likelihood`,
    calling it on images, or training it further with `fit`.

    The image shape is read from the run's SavedModel, so the run must be finished.
    """
    run = rundir.open_existing(run_dir)
    config = run.read_config()
    if not run.is_finished():
        raise UserError(f"{run_dir} is not finished (no complete {rundir.SAVED_MODEL}/).")
    encode = tf.saved_model.load(run.saved_model_dir).signatures["encode"]
    image_shape = tuple(encode.structured_input_signature[1]["images"].shape[1:])
    rows = run.read_metrics()
    # The cyclical KL schedule needs the run's length: steps per epoch times epochs.
    total_steps = int(rows[-1]["step"] / rows[-1]["epoch"] * config.epochs) if rows else 1
    model = build_vae(config, image_shape, total_steps=total_steps)
    checkpoints = dict(run.checkpoints())
    epoch = epoch or max(checkpoints, default=None)
    if epoch not in checkpoints:
        raise UserError(f"{run_dir} has no checkpoint of epoch {epoch} "
                        f"(it has {sorted(checkpoints) or 'none'}).")
    model.load_weights(checkpoints[epoch])
    return model
