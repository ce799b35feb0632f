"""What deep VAEs need to train: the learning-rate schedule, skipped outlier updates,
the moving average of the weights (the one exported), bits/dim in the metrics, the
residual network, and the precision picked for the hardware."""

import math

import numpy as np
import pytest
import keras
import tensorflow as tf

from conftest import tiny_config
from vae_tf import train
from vae_tf.training import export
from vae_tf.models import optimizer
from vae_tf.run import rundir, tfenv
from vae_tf.models.build import build_vae
from vae_tf.training.checkpoints import load_vae

SHAPE = (28, 28, 1)


def test_learning_rate_warms_up_then_decays_to_zero():
    config = tiny_config(learning_rate=2e-3, lr_warmup_steps=10, lr_decay="cosine")
    schedule = optimizer.learning_rate(config, total_steps=110)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    np.testing.assert_allclose(values, [0.0, 1e-3, 2e-3, 1e-3, 0.0], atol=1e-9)
    # Warm-up alone: the rate stays at --learning_rate afterwards.
    flat = optimizer.learning_rate(tiny_config(learning_rate=2e-3, lr_warmup_steps=10), 110)
    np.testing.assert_allclose([float(flat(s)) for s in (5, 10, 100)], [1e-3, 2e-3, 2e-3])
    assert optimizer.learning_rate(tiny_config(learning_rate=2e-3), 110) == 2e-3


def _adam_numpy(weights, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Kingma and Ba's Adam in float64, epsilon outside the square root (as Keras)."""
    w = [x.astype(np.float64) for x in weights]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    for t, step in enumerate(grads, start=1):
        for i, g in enumerate(step):
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            w[i] -= lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m[i] / (np.sqrt(v[i]) + epsilon)
    return w


def test_the_fused_adam_update_is_adams():
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    grads = [[rng.normal(size=x.shape) for x in init] for _ in range(6)]
    lr = 0.0625  # exact in float32, the dtype of Keras' learning-rate variable

    def run(optimizer_class, dtype):
        weights = [keras.Variable(x, dtype=dtype) for x in init]
        adam = optimizer_class(lr)
        step = tf.function(lambda g: adam.apply_gradients(zip(g, weights)))
        for g in grads:
            step([tf.constant(x, dtype) for x in g])
        return [w.numpy() for w in weights], int(adam.iterations.numpy())

    fused, steps = run(optimizer.FusedAdam, "float64")
    assert steps == 6
    for got, want in zip(fused, _adam_numpy(init, grads, lr)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    # In float32 within 1e-6 of those, and no further than Keras' own Adam, whose
    # bias correction takes the betas through float32 (seen: 3e-7 against 2.4e-6).
    # The weights moved by about 0.3.
    exact = _adam_numpy(init, grads, lr)
    fused32 = run(optimizer.FusedAdam, "float32")[0]
    keras32 = run(keras.optimizers.Adam, "float32")[0]
    for got, theirs, want, start in zip(fused32, keras32, exact, init):
        assert np.abs(got - want).max() <= min(1e-6, np.abs(theirs - want).max())
        assert np.abs(got - start).max() > 0.1
    assert isinstance(build_vae(tiny_config(), SHAPE).optimizer, optimizer.FusedAdam)


def _one_step(model, images):
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(images, return_dict=True)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    return logs, changed


def test_updates_above_the_norm_threshold_are_skipped_whole():
    images = np.random.default_rng(0).uniform(size=(16, *SHAPE)).astype(np.float32)
    skipping = build_vae(tiny_config(grad_skip=1e-3, precision="float32"), SHAPE)
    logs, changed = _one_step(skipping, images)
    assert not any(changed) and logs["skipped_updates"] == 1 and logs["grad_norm"] > 1e-3
    # Adam's state did not move either: its step count is still 0.
    assert int(skipping.optimizer.iterations.numpy()) == 0
    applying = build_vae(tiny_config(grad_skip=1e9, precision="float32"), SHAPE)
    logs, changed = _one_step(applying, images)
    assert all(changed) and logs["skipped_updates"] == 0


def test_checkpoints_and_the_export_hold_the_averaged_weights(tmp_path):
    config = tiny_config(output_dir=str(tmp_path), ema_momentum=0.9, precision="float32",
                         recon_loss="discretized_logistic")
    result = train.run(config)
    assert math.isfinite(result["val_bits_per_dim"])
    np.testing.assert_allclose(result["val_bits_per_dim"] * 28 * 28 * math.log(2),
                               result["val_loss"], rtol=1e-5)
    # Between epochs the model holds the averages and the optimizer the raw weights.
    first = load_vae(result["run_dir"], epoch=1)
    averages = [w.numpy() for w in first.trainable_weights]
    raw = [v.numpy() for v in first.optimizer._model_variables_moving_average]
    assert max(np.abs(a - r).max() for a, r in zip(averages, raw)) > 1e-4
    # After the last epoch Keras keeps only the averages (its finalize step); the
    # SavedModel is made from them.
    model = load_vae(result["run_dir"])
    z = np.random.default_rng(1).standard_normal((5, config.latent_dim)).astype(np.float32)
    exported = tf.saved_model.load(rundir.RunDir(result["run_dir"]).saved_model_dir)
    served = exported.signatures["decode"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(served, model.decode(z).numpy(), atol=1e-6)


class _RawWeightsAtTheEnd(keras.callbacks.Callback):
    """The trainable weights after the last update, before any swap."""

    def on_train_batch_end(self, batch, logs=None):
        self.raw = [w.numpy().copy() for w in self.model.trainable_weights]


def test_the_export_is_of_the_averages_not_the_last_raw_weights(tmp_path):
    config = tiny_config(ema_momentum=0.9, precision="float32")
    model = build_vae(config, SHAPE, total_steps=16)
    images = np.random.default_rng(0).uniform(size=(64, *SHAPE)).astype(np.float32)
    recorder = _RawWeightsAtTheEnd()
    model.fit(images, batch_size=16, epochs=2, verbose=0,
              callbacks=[optimizer.EMAWeights(), recorder])
    export.export_saved_model(model, str(tmp_path / "saved_model"))
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    z = np.random.default_rng(1).standard_normal((5, config.latent_dim)).astype(np.float32)
    from_export = served.signatures["decode"](z=tf.constant(z))["images"].numpy()
    averaged = model.decode(z).numpy()
    np.testing.assert_allclose(from_export, averaged, atol=1e-6)
    for weight, raw in zip(model.trainable_weights, recorder.raw):
        weight.assign(raw)
    assert np.abs(from_export - model.decode(z).numpy()).max() > 1e-3


def test_the_residual_network_trains_and_shrinks_through_its_stages():
    config = tiny_config(architecture="resnet", conv_channels=(8, 16), blocks_per_stage=2,
                         activation="swish", precision="float32")
    model = build_vae(config, SHAPE)
    # The stem halves 28 to 14, one pooling 14 to 7: a 7x7x16 map before the code.
    assert model.encoder.get_layer("mean_logvar").input.shape[-1] == 7 * 7 * 16
    blocks = [layer.name for layer in model.decoder.layers if "block" in layer.name]
    assert len(blocks) == 4
    images = np.random.default_rng(0).uniform(size=(16, *SHAPE)).astype(np.float32)
    first = model.train_on_batch(images, return_dict=True)["loss"]
    for _ in range(20):
        last = model.train_on_batch(images, return_dict=True)["loss"]
    assert last < first


def test_squeeze_excite_gates_each_channel_of_the_branch_by_its_map_mean():
    from vae_tf.models.architectures.resnet import ResidualBlock

    block = ResidualBlock(32, "swish", "none", 1.0, squeeze_excite=True)
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 32)).astype(np.float32)
    out = block(x).numpy()

    def swish(v):
        return v / (1.0 + np.exp(-v))

    def conv(layer, h):
        return layer(tf.constant(h, tf.float32)).numpy()

    h = x
    for layer in block.convs:  # the branch without its gate, from the block's own convolutions
        h = conv(layer, swish(h))
    (w1, b1), (w2, b2) = [[v.numpy() for v in d.weights] for d in block.gate]
    assert w1.shape == (32, 4)  # width / 16, at least 4
    gate = 1.0 / (1.0 + np.exp(-(swish(h.mean(axis=(1, 2)) @ w1 + b1) @ w2 + b2)))
    np.testing.assert_allclose(out, x + h * gate[:, None, None, :], rtol=1e-4, atol=1e-5)
    assert 0.0 < gate.min() and gate.max() < 1.0


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "fma"}, "float32"),
    ({"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ({"amx_bf16", "amx_tile"}, "mixed_bfloat16"),
])
def test_auto_precision_follows_the_cpu(monkeypatch, flags, expected):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides the precision on this machine")
    monkeypatch.setattr(tfenv, "cpu_flags", lambda: flags)
    assert tfenv.resolve_precision("auto") == expected
    assert tfenv.resolve_precision("float32") == "float32"
    # XLA's CPU kernels are slower in bfloat16: a compiled step stays in float32.
    assert tfenv.resolve_precision("auto", jit_compile=True) == "float32"
    assert tfenv.resolve_precision("mixed_bfloat16", jit_compile=True) == "mixed_bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert tfenv.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert tfenv.cpu_flags(str(tmp_path / "missing")) == set()
