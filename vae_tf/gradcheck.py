"""Check the ELBO's training gradients against central finite differences.

    python -m vae_tf.gradcheck [--tolerance=1e-6]

For every registered likelihood on every registered architecture, a tiny seeded
VAE in float64: the training objective's gradient by the tape against central
finite differences, one weight at a time. Prints each variable's largest relative
error and exits with status 1 above --tolerance (or where a variable gets no
gradient). How the error is measured, and why 1e-6 separates right from wrong
gradients: docs/evaluation.md, "Gradient check".

To check your own layer, build a VAE that uses it (inside `float64_policy()`) and
call `check_gradients(model, images, eps)`.
"""

import contextlib

import numpy as np
from absl import flags

from vae_tf import cli
from vae_tf.config import ARCHITECTURES, Config
from vae_tf.errors import UserError
from vae_tf.flag_defs import COMMAND_FLAGS
from vae_tf.registry import LIKELIHOODS
from vae_tf.run import tfenv


FLAGS = flags.FLAGS
FLAG_NAMES = ("tolerance", "step")
DEFAULT_TOLERANCE = COMMAND_FLAGS["tolerance"][1]
DEFAULT_STEP = COMMAND_FLAGS["step"][1]
# Colour, so that likelihoods coupling the channels are checked through the coupling.
IMAGE_SHAPE = (4, 4, 3)
# --learn_scale of the likelihoods that have a scale (the rest learn a shared one),
# so that the per-pixel and the shared shapes are both checked.
LEARNED_SCALE = {"gaussian": "pixel", "laplace": "shared"}


@contextlib.contextmanager
def float64_policy():
    """Layers and variables built inside compute and store float64."""
    import keras

    previous = keras.config.dtype_policy(), keras.config.floatx()
    # floatx too: keras.Input takes its dtype from it, and a float32 Input inside the
    # decoder would round z, hiding the encoder's gradients under rounding noise.
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous[0])
        keras.config.set_floatx(previous[1])


def tiny_configs():
    """(name, Config) of the tiny networks the command checks: every registered
    likelihood on every registered architecture."""
    for recon_loss, likelihood in LIKELIHOODS.items():
        learn_scale = LEARNED_SCALE.get(recon_loss, "shared") if likelihood.has_scale else "none"
        for architecture in ARCHITECTURES:
            hierarchical = architecture == "hierarchical"
            yield f"{recon_loss}/{architecture}", Config(
                dataset="synthetic", architecture=architecture, latent_dim=2,
                conv_channels=(4,) if hierarchical else (4, 4), hierarchy="1x1,2x1,4x1",
                kernel_size=3, dense_units=(6,), blocks_per_stage=1 if hierarchical else 2,
                recon_loss=recon_loss, learn_scale=learn_scale, recon_scale=0.3,
                num_mixtures=2, precision="float32",
                # The posterior relative to the prior: its gradient also flows
                # through the prior's statistics (the direct one is a subset).
                residual_posterior=hierarchical,
                # Interpolated upsampling (the CelebA preset's), checked through its slices.
                upsampling="bilinear" if hierarchical else "nearest",
                squeeze_excite=architecture in ("resnet", "hierarchical"),
                # Smooth, so that no unit sits within a finite-difference step of a
                # kink (ReLU's), where the central difference is wrong by design.
                activation="swish")


def tiny_inputs(model, batch: int = 3, seed: int = 0):
    """Images (quantized to the likelihood's values where it is discrete, gray
    otherwise) and fixed noise eps (one array per latent group), float64."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(batch, *IMAGE_SHAPE))
    levels = LIKELIHOODS.get(model.config.recon_loss).levels
    if levels:  # the values the likelihood gives probabilities to
        images = np.round(images * (levels - 1)) / (levels - 1)
    return images, [rng.standard_normal((batch, *shape)) for shape in model.noise_shapes()]


def build_model(config: Config, seed: int = 0):
    """The tiny float64 VAE of `config` at a fixed point: seeded initial weights plus
    `jitter_weights`, so that the check gives the same figures on every run."""
    import keras

    from vae_tf.models.build import build_vae

    keras.utils.set_random_seed(seed)
    with float64_policy():
        model = build_vae(config, IMAGE_SHAPE)
    jitter_weights(model, seed=seed)
    return model


def jitter_weights(model, scale: float = 0.1, seed: int = 0) -> None:
    """Adds N(0, scale^2) noise to every weight. Biases start at exactly 0, so on
    images with black regions ReLU units would sit exactly on their kink, where a
    central difference averages the two one-sided slopes and disagrees with the
    tape by design; a generic point avoids that."""
    rng = np.random.default_rng(seed)
    for var in model.trainable_weights:
        var.assign(var.numpy() + scale * rng.standard_normal(var.shape))


def _variable_names(model) -> dict:
    """id(variable) -> a unique readable name: 'encoder/conv0/kernel', ..."""
    names = {id(v): v.name for v in model.trainable_weights}
    for part in ("encoder", "decoder", "bottom_up", "top_down"):
        for v in getattr(model, part, None).trainable_weights if hasattr(model, part) else []:
            names[id(v)] = f"{part}/{v.path}"
    if len(set(names.values())) < len(names):
        # One name for two variables would check only one of them.
        raise ValueError(f"{type(model).__name__} has variables sharing a path.")
    return names


# Weight values (float64) in the shifted points evaluated per call.
_POINTS_VALUES = 8 * 2 ** 20
# Errors above this get a second, Richardson-extrapolated estimate (check_gradients).
_RICHARDSON_ABOVE = 1e-7
# Rounding in f(w + h) - f(w - h), in ulps of f, that the tolerance scales with (see
# check_gradients): 10 ulps at the default tolerance of 1e-6.
_ROUNDING_ULPS = 1e7


def check_gradients(model, images, eps, step: float = DEFAULT_STEP) -> dict:
    """{variable path: maximum relative error} of the tape gradients of
    `model.objective(images, training=True, eps=eps)` against central differences."""
    import keras
    import tensorflow as tf

    images = tf.constant(images, model.variable_dtype)
    eps = [tf.constant(e, model.variable_dtype) for e in eps]
    variables = model.trainable_weights
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(shape)) for shape in shapes]

    @tf.function
    def objective():
        return model.objective(images, training=True, eps=eps)[0]

    with tf.GradientTape() as tape:
        value = objective()
    grads = tape.gradient(value, variables)

    # Any number of points, one trace.
    @tf.function(input_signature=[tf.TensorSpec([None, sum(sizes)], model.variable_dtype)])
    def objectives_at(points):
        """The objective with the weights at each row of `points` [P, all weights
        flattened], read through Keras' StatelessScope: a variable's shifted points
        in one call, where a call and an assignment per point took twice as long."""
        def at(flat):
            parts = tf.split(flat, sizes)
            mapping = [(v, tf.reshape(part, shape))
                       for v, part, shape in zip(variables, parts, shapes)]
            with keras.StatelessScope(state_mapping=mapping):
                return model.objective(images, training=True, eps=eps)[0]
        return tf.map_fn(at, points, fn_output_signature=model.variable_dtype)

    # The smallest gradient the central difference resolves: f(w + h) - f(w - h)
    # carries rounding errors of a few ulps of f. Errors are relative to at least
    # this, so a variable whose whole gradient lies below it (a bottleneck one
    # channel wide, say) is checked to the differences' precision instead of
    # failing on their rounding; a wrong gradient still shows as an order-1 error.
    resolution = _ROUNDING_ULPS * np.finfo(np.float64).eps * abs(float(value)) / step
    names, errors = _variable_names(model), {}
    weights = np.concatenate([np.ravel(v.numpy()) for v in variables])
    offsets = np.cumsum([0] + sizes)

    def central_differences(k, h):
        """d objective / d each entry of variable k, from f(w + h e_i) and f(w - h e_i)."""
        derivatives = []
        # Entries a call, so that the points of a large model's variable stay in
        # about 64 MB.
        per_call = max(1, _POINTS_VALUES // (2 * len(weights)))
        for start in range(offsets[k], offsets[k + 1], per_call):
            entries = np.arange(start, min(start + per_call, offsets[k + 1]))
            points = np.tile(weights, (2 * len(entries), 1))
            points[np.arange(len(entries)), entries] += h
            points[len(entries) + np.arange(len(entries)), entries] -= h
            values = objectives_at(tf.constant(points, model.variable_dtype)).numpy()
            plus, minus = np.split(values, 2)
            derivatives.append((plus - minus) / (2.0 * h))
        return np.concatenate(derivatives).reshape(shapes[k])

    def error(tape_grad, numeric):
        largest = max(np.abs(tape_grad).max(), np.abs(numeric).max())
        scale = max(largest, resolution) if largest > 0 else 0.0
        # A variable with no gradient at all (dead ReLUs, say) would check nothing:
        # it fails, so that a tiny network that cannot test a layer is noticed.
        return float(np.abs(tape_grad - numeric).max() / scale) if scale > 0 else float("inf")

    for k, (var, grad) in enumerate(zip(variables, grads)):
        tape_grad = np.zeros(shapes[k]) if grad is None else np.array(grad.numpy())
        numeric = central_differences(k, step)
        errors[names[id(var)]] = error(tape_grad, numeric)
        if _RICHARDSON_ABOVE < errors[names[id(var)]] < float("inf"):
            # Strong curvature (a mixture's logits, say) leaves an O(h^2) truncation
            # error; Richardson's extrapolation from h/2 cancels it. A wrong
            # gradient stays off by order 1 in both estimates.
            half = central_differences(k, step / 2)
            errors[names[id(var)]] = min(errors[names[id(var)]],
                                         error(tape_grad, (4.0 * half - numeric) / 3.0))
    return errors


def run_checks(tolerance: float = DEFAULT_TOLERANCE, step: float = DEFAULT_STEP):
    """Checks every tiny configuration; returns rows (setting, variable, error, ok)."""
    rows = []
    for name, config in tiny_configs():
        model = build_model(config)
        for variable, error in check_gradients(model, *tiny_inputs(model), step).items():
            rows.append((name, variable, error, error <= tolerance))
    return rows


def main(argv):
    tfenv.import_tensorflow()
    rows = run_checks(FLAGS.tolerance, FLAGS.step)
    first = max(len("likelihood/network"), *(len(r[0]) for r in rows)) + 2
    width = max(len(r[1]) for r in rows) + 2
    print(f"{'likelihood/network':<{first}}{'variable':<{width}}max relative error")
    for name, variable, error, ok in rows:
        print(f"{name:<{first}}{variable:<{width}}{error:.2e}{'' if ok else '  FAIL'}")
    failed = sum(not r[3] for r in rows)
    if failed:
        raise UserError(f"{failed} variables exceed the tolerance {FLAGS.tolerance:g}")
    print(f"all {len(rows)} variables within {FLAGS.tolerance:g}")


def console_main():
    cli.run(main, FLAG_NAMES)


if __name__ == "__main__":
    console_main()
