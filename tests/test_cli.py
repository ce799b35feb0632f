"""`python -m vae_tf.train` as a user runs it: the real MNIST command and bad input."""

import ast
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_module


def _error_line(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


def test_mnist_command_from_the_issue(tmp_path, mnist_dir):
    result = run_module("vae_tf.train", "--dataset=mnist", f"--data_dir={mnist_dir}",
                        "--epochs=1", "--steps_per_epoch=50", f"--output_dir={tmp_path}",
                        "--run_name=mnist")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "mnist"
    for name in ("config.json", "metrics.csv", "images/recon_epoch_0001.png",
                 "images/samples_epoch_0001.png", "checkpoints/epoch_0001.weights.h5",
                 "saved_model/saved_model.pb"):
        assert (run_dir / name).exists(), name
    assert "nats per image" in result.stdout
    recon = np.asarray(Image.open(run_dir / "images" / "recon_epoch_0001.png"), np.float32)
    # Real digits are mostly black with ~19% bright ink; white grid lines add some more.
    assert 0.1 < (recon > 128).mean() < 0.5


def test_bad_flag_value_is_one_clear_line(tmp_path):
    result = run_module("vae_tf.train", "--recon_loss=poisson", f"--output_dir={tmp_path}")
    assert result.returncode != 0
    assert "--recon_loss" in result.stderr and "bernoulli" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_combination(tmp_path):
    result = run_module("vae_tf.train", "--recon_loss=bernoulli", "--learn_scale=pixel",
                        f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert "--learn_scale" in _error_line(result.stderr)


def test_missing_dataset_is_one_clear_line(tmp_path):
    result = run_module("vae_tf.train", "--dataset=mnist", f"--data_dir={tmp_path}/none",
                        f"--output_dir={tmp_path}/out")
    assert result.returncode == 1
    line = _error_line(result.stderr)
    assert "No mnist IDX files" in line and "--data_dir" in line
    # Nothing was trained, so no empty run is left to be mistaken for one (or resumed).
    assert os.listdir(tmp_path / "out") == []


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is wanted")
    result = run_module("vae_tf.train", "--flagfile=flags/smoke.cfg",
                        f"--output_dir={blocker}/runs")
    assert result.returncode == 1
    assert "Cannot create --output_dir" in _error_line(result.stderr)
    assert blocker.read_text() == "a file where a folder is wanted"


COMMAND_MODULES = ("train", "evaluate", "sample", "reconstruct", "interpolate", "traverse",
                   "scatter", "attributes", "manifold", "animate", "report", "gradcheck",
                   "explore")


def test_no_tensorflow_before_flags_are_parsed():
    # Importing the package, its TF-free modules and every command's module loads no
    # TensorFlow, so a bad flag is reported without TensorFlow's start-up.
    code = ("import sys, vae_tf.config, vae_tf.run.rundir, vae_tf.flag_defs, vae_tf.cli, vae_tf.run.files\n"
            f"for name in {COMMAND_MODULES!r}:\n"
            "    __import__('vae_tf.' + name)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras'))\n"
            "assert not loaded, loaded\n"
            "import os; assert 'TF_ENABLE_ONEDNN_OPTS' not in os.environ\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("flag", ["--dataset=nope", "--latent_dim=-1"])
def test_bad_flags_fail_at_once(flag):
    start = time.perf_counter()
    result = run_module("vae_tf.train", flag)
    seconds = time.perf_counter() - start
    assert result.returncode == 2
    line = _error_line(result.stderr)
    assert flag.split("=")[0] in line
    assert result.stderr.strip() == line  # nothing else: no TensorFlow banner
    assert seconds < 5, seconds  # about 0.2 s here; TensorFlow's import alone takes ~4 s


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_every_command_runs_through_the_dispatcher(command):
    result = run_module("vae_tf", command, "--help")
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: vae-tf {command} [--flagfile=FILE]")
    assert REPO not in result.stdout  # no source paths
    # The command's own docstring, then its own flags.
    assert f"vae_tf.{command}" in result.stdout or command == "gradcheck"
    assert "\n  --" in result.stdout


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_help_exits_0_however_it_is_asked(command):
    for args in (("--help",), ("-h",), ("--helpfull",), ("--run_dir=x", "--help")):
        result = run_module(f"vae_tf.{command}", *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert "\n  --" in result.stdout and result.stderr == "", args


def test_train_help_starts_with_usage_presets_and_commands():
    lines = run_module("vae_tf.train", "--help").stdout.splitlines()
    assert lines[0] == "usage: python -m vae_tf.train [--flagfile=FILE] [--<flag>=<value> ...]"
    presets = lines.index(next(l for l in lines if l.startswith("presets: --dataset=X starts from")))
    names = sorted(f[:-4] for f in os.listdir(os.path.join(REPO, "flags")) if f.endswith(".cfg"))
    assert [l.split()[0] for l in lines[presets + 1:presets + 1 + len(names)]] == names
    assert any(l.startswith("  smoke                    A run that finishes in seconds") for l in lines)
    # The preset each dataset starts from is marked with the dataset's name.
    assert any(l.startswith("  celeba_hierarchical      [celeba] CelebA faces") for l in lines)
    assert all(len(l) <= 97 for l in lines[presets + 1:presets + 1 + len(names)])
    assert lines[presets + len(names) + 2].startswith("commands: train, evaluate, sample,")
    assert presets < 16 and lines.index("flags:") < 34
    assert not any(REPO in l or "/vae_tf/" in l for l in lines)


def test_unknown_command_and_missing_run_dir_are_one_line():
    assert "Unknown command 'nope'" in _error_line(run_module("vae_tf", "nope").stderr)
    result = run_module("vae_tf", "sample")
    assert result.returncode == 2
    assert "--run_dir is required" in _error_line(result.stderr)


def test_console_scripts_cover_every_command():
    """setup.py's console scripts, as setuptools reads them, are the registry's commands."""
    from vae_tf.cli import COMMANDS
    script = ("import runpy, setuptools\n"
              "setuptools.setup = lambda **kw: print(kw['entry_points']['console_scripts'])\n"
              "runpy.run_path('setup.py')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, check=True)
    scripts = dict(s.split("=") for s in ast.literal_eval(result.stdout.strip()))
    assert set(COMMANDS) == set(COMMAND_MODULES)
    assert scripts == {"vae-tf": "vae_tf.cli:dispatch",
                       **{f"vae-tf-{n}": f"vae_tf.{n}:console_main" for n in COMMANDS}}


def test_the_first_lines_a_user_sees_are_the_projects(tmp_path):
    result = run_module("vae_tf.train", "--flagfile=flags/smoke.cfg", f"--output_dir={tmp_path}",
                        env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.splitlines()[0].startswith("Data: synthetic shapes"), result.stderr[:500]
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr
    epochs = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(epochs) == 2 and " nats (reconstruction " in epochs[0]
    assert "step:" not in result.stdout and "val_kl_weight" not in result.stdout

    help_text = run_module("vae_tf.train", "--help").stdout
    flag_lines = help_text.split("\nflags:\n", 1)[1]  # training flags first, with their help
    first = "\n".join(flag_lines.splitlines()[:30])
    assert "--activation:" in first and "--batch_size: Global batch size" in first


def test_the_same_command_after_the_run_finished_prints_its_result_and_exits_0(tmp_path):
    args = ["--flagfile=flags/smoke.cfg", f"--output_dir={tmp_path}", "--run_name=done"]
    first = run_module("vae_tf.train", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    loss = first.stdout.strip().splitlines()[-1].split("test loss (negative ELBO) ")[1]
    again = run_module("vae_tf.train", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == (f"Already finished {tmp_path / 'done'}: test loss (negative ELBO) "
                            f"{loss}\n")
    assert again.stderr == ""
    changed = run_module("vae_tf.train", *args, "--epochs=3")
    assert changed.returncode == 1
    assert _error_line(changed.stderr) == (
        f"error: Run {tmp_path / 'done'} is already finished with other settings (differing: "
        "epochs); choose another --run_name to train again (nothing was changed).")
