"""The SavedModel contract, checked in a process that cannot import vae_tf."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from conftest import tiny_config
from vae_tf import train
from vae_tf.datasets import synthetic
from vae_tf.models.vae import build_vae

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
