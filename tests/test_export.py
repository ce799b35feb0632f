"""The SavedModel contract, checked in a process that cannot import vae_tf."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from conftest import tiny_config
from vae_tf import train
from vae_tf.datasets import synthetic
from vae_tf.models.build import build_vae

_LOADER = textwrap.dedent("""
    import sys
    sys.modules["vae_tf"] = None  # any import of the project now fails
    try:
        import vae_tf
        raise SystemExit("vae_tf was importable")
    except ImportError:
        pass
    import numpy as np
    import tensorflow as tf
    path, images_file, out_file = sys.argv[1:4]
    model = tf.saved_model.load(path)
    x = tf.constant(np.load(images_file))
    enc = model.signatures["encode"](images=x)
    out = {
        "reconstruct": model.signatures["reconstruct"](images=x)["images"].numpy(),
        "reconstruct_again": model.signatures["reconstruct"](images=x)["images"].numpy(),
        "default": model.signatures["serving_default"](images=x)["images"].numpy(),
        "mean": enc["mean"].numpy(), "logvar": enc["logvar"].numpy(),
        "decode_mean": model.signatures["decode"](z=enc["mean"])["images"].numpy(),
        "log_prob": model.signatures["log_likelihood"](images=x, z=enc["mean"])["log_prob"].numpy(),
    }
    np.savez(out_file, **out)
""")


def test_saved_model_loads_without_vae_tf_and_matches_the_model(tmp_path):
    config = tiny_config(output_dir=str(tmp_path / "runs"), run_name="export")
    run_dir = train.run(config)["run_dir"]
    images, _ = synthetic.make_shapes(6, seed=7)
    images = images.astype(np.float32) / 255.0
    np.save(tmp_path / "x.npy", images)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = tmp_path / "load.py"
    script.write_text(_LOADER)
    proc = subprocess.run([sys.executable, str(script), os.path.join(run_dir, "saved_model"),
                           str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")

    model = build_vae(config, (28, 28, 1))
    model.load_weights(os.path.join(run_dir, "checkpoints", "epoch_0002.weights.h5"))
    expected = model(images).numpy()
    assert out["reconstruct"].shape == images.shape
    np.testing.assert_allclose(out["reconstruct"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["reconstruct"], out["reconstruct_again"])  # deterministic
    np.testing.assert_array_equal(out["default"], out["reconstruct"])
    np.testing.assert_allclose(out["decode_mean"], out["reconstruct"], atol=1e-6)
    mean, logvar = (t.numpy() for t in model.encode(images))
    np.testing.assert_allclose(out["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(out["logvar"], logvar, atol=1e-5)
    np.testing.assert_allclose(out["log_prob"], model.log_likelihood(images, mean).numpy(),
                               rtol=1e-5)
    assert 0.0 <= out["reconstruct"].min() and out["reconstruct"].max() <= 1.0


def _ops_of_dtype(saved_model_dir: str, dtype) -> set:
    """The ops of a SavedModel's functions that take or give tensors of `dtype`."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    enum = tf.as_dtype(dtype).as_datatype_enum
    return {node.op for graph in saved.meta_graphs for function in graph.graph_def.library.function
            for node in function.node_def for value in node.attr.values()
            if value.type == enum or enum in value.list.type}


# Signatures that draw random numbers (stateless ops) or loop over samples (tensor
# lists): TFLite runs those ops with TensorFlow's kernels (Select TF ops), which
# the tensorflow wheel's Python interpreter cannot load (it has no Flex delegate).
_NEEDS_SELECT_OPS = ("sample", "log_weights")
_SELECT_OPS = {"FlexStatelessRandomGetKeyCounter", "FlexStatelessRandomNormalV2",
               "FlexTensorListReserve", "FlexTensorListStack"}


def test_a_mixed_bfloat16_run_exports_float32_that_converts_to_tflite(tmp_path):
    import json

    import tensorflow as tf

    from vae_tf.training import export
    from vae_tf.training.checkpoints import load_vae

    config = tiny_config(precision="mixed_bfloat16", epochs=1, steps_per_epoch=3, eval_steps=1,
                         output_dir=str(tmp_path), run_name="bf16")
    run_dir = train.run(config)["run_dir"]
    path = os.path.join(run_dir, "saved_model")
    with open(os.path.join(path, "precision.json")) as f:
        assert json.load(f) == {"training": "mixed_bfloat16", "export": "float32"}
    assert _ops_of_dtype(path, "bfloat16") == set()

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 28, 28, 1)).astype(np.float32)
    inputs = {"reconstruct": {"images": images}, "encode": {"images": images},
              "decode": {"z": rng.normal(size=(3, 4)).astype(np.float32)},
              "log_likelihood": {"images": images, "z": rng.normal(size=(3, 4)).astype(np.float32)},
              "sampling_prior": {},
              "sample": {"num": np.int32(3), "seed": np.int64(7),
                         "temperature": np.array([0.8], np.float32)},
              "log_weights": {"images": images, "seeds": np.array([[1, 2], [3, 4], [5, 6]]),
                              "first": np.int32(0), "num": np.int32(2)}}
    saved = tf.saved_model.load(path)
    assert set(inputs) == set(saved.signatures) - {"serving_default"}
    for name, feed in inputs.items():
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[name])
        if name in _NEEDS_SELECT_OPS:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                                   tf.lite.OpsSet.SELECT_TF_OPS]
        interpreter = tf.lite.Interpreter(model_content=converter.convert())
        if name in _NEEDS_SELECT_OPS:
            ops = {op["op_name"] for op in interpreter._get_ops_details()}
            flex = {op for op in ops if op.startswith("Flex")}
            assert flex and flex <= _SELECT_OPS, (name, ops)  # the network: TFLite's own ops
            continue
        got = interpreter.get_signature_runner(name)(**feed)
        expected = saved.signatures[name](**{k: tf.constant(v) for k, v in feed.items()})
        assert set(got) == set(expected), name
        for key, value in expected.items():
            # float32 both: only the order of the sums differs.
            np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-4, atol=1e-4,
                                       err_msg=f"{name}/{key}")

    # Asked for, the export keeps bfloat16 compute (the same weights).
    model = load_vae(run_dir)
    assert model.dtype_policy.name == "mixed_bfloat16"
    export.export_saved_model(model, str(tmp_path / "bf16_export"), "mixed_bfloat16")
    assert {"MatMul", "Conv2D"} <= _ops_of_dtype(str(tmp_path / "bf16_export"), "bfloat16")
    bf16 = tf.saved_model.load(str(tmp_path / "bf16_export")).signatures["reconstruct"]
    full = saved.signatures["reconstruct"](images=tf.constant(images))["images"].numpy()
    low = bf16(images=tf.constant(images))["images"].numpy()
    assert 0 < np.abs(low - full).max() < 0.05  # bfloat16's 8-bit mantissa, same weights
