"""The run directory's rules: its lock, its metrics rows, and damaged files recovered
from the last good state or reported in one line."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, error_line, run_module, tiny_config
from vae_tf import train
from vae_tf.run import rundir
from vae_tf.errors import UserError

HEADER = "epoch,kl,loss\n"


def _metrics(tmp_path, text):
    run = rundir.RunDir(str(tmp_path))
    with open(run.metrics_path, "w") as f:
        f.write(text)
    return run


def test_metrics_rows_cut_short_or_trained_again_are_dropped(tmp_path):
    run = _metrics(tmp_path, HEADER + "1,2.5,10.0\n2,2.0,9.0\n3,1.5,8.")  # killed mid-row
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    run.keep_metrics_before(3)  # resuming after epoch 2: the half row goes
    assert open(run.metrics_path).read() == HEADER + "1,2.5,10.0\n2,2.0,9.0\n"
    run.keep_metrics_before(2)  # resuming after epoch 1: epoch 2 is trained again
    assert open(run.metrics_path).read() == HEADER + "1,2.5,10.0\n"
    assert run.read_metrics() == [{"epoch": 1.0, "kl": 2.5, "loss": 10.0}]


def test_a_header_cut_short_is_removed(tmp_path):
    run = _metrics(tmp_path, "epoch,k")
    assert run.read_metrics() == [] and run.metrics_header() is None
    run.keep_metrics_before(1)
    assert not os.path.exists(run.metrics_path)


def test_a_locked_run_names_its_holder_and_a_killed_holder_frees_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vae_tf.run import rundir; "
         f"lock = rundir.RunDir({str(tmp_path)!r}).lock(); print('locked', flush=True); "
         "time.sleep(60)"], cwd=REPO, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(rundir.RunInUse, match=f"being trained by process {holder.pid}"):
            rundir.RunDir(str(tmp_path)).lock()
    finally:
        holder.kill()
        holder.wait()
    lock = rundir.RunDir(str(tmp_path)).lock()  # no stale lock after a SIGKILL
    lock.release()


@pytest.fixture
def finished_run(tmp_path):
    config = tiny_config(epochs=3, steps_per_epoch=4, output_dir=str(tmp_path), run_name="r")
    train.run(config)
    return config, rundir.RunDir(str(tmp_path / "r"))


def test_a_damaged_checkpoint_resumes_from_the_one_before(finished_run, caplog):
    config, run = finished_run
    # Unexported again, and the newest checkpoint cut in half by a kill.
    os.remove(os.path.join(run.saved_model_dir, "variables", "variables.index"))
    newest = run.checkpoint(3)
    data = open(newest, "rb").read()
    with open(newest, "wb") as f:
        f.write(data[:len(data) // 2])
    assert not run.is_finished()  # a SavedModel without its variables is no export

    result = train.run(config)
    assert result["resumed"]
    assert "epoch_0003.weights.h5 does not load" in caplog.text
    assert [int(r["epoch"]) for r in run.read_metrics()] == [1, 2, 3]
    assert [int(r["step"]) for r in run.read_metrics()] == [4, 8, 12]
    assert run.is_finished()


def test_a_damaged_saved_model_is_one_line_then_exported_again(finished_run):
    config, run = finished_run
    os.remove(os.path.join(run.saved_model_dir, "variables", "variables.index"))
    line = error_line(run_module("vae_tf.evaluate", f"--run_dir={run.path}"))
    assert "saved_model" in line and "run the training command again" in line

    result = train.run(config)  # trains nothing again: exports from the last checkpoint
    assert [int(r["epoch"]) for r in run.read_metrics()] == [1, 2, 3]
    assert run.is_finished() and result["resumed"]


def test_a_config_that_is_not_json_is_one_line(finished_run):
    config, run = finished_run
    with open(run.config_path, "w") as f:
        f.write('{"dataset": "synth')  # cut short
    with pytest.raises(UserError, match="config.json is not readable JSON"):
        train.run(config)
    line = error_line(run_module("vae_tf.train", "--dataset=synthetic",
                                 f"--output_dir={os.path.dirname(run.path)}", "--run_name=r"))
    assert "not readable JSON" in line and "choose another --run_name" in line


@pytest.mark.parametrize("named", [True, False])
def test_a_run_written_before_the_validation_split_resumes_as_it_was_trained(tmp_path, named):
    """An older config.json has no validation_size: such a run trained on its whole
    training split, and resumes so (by its name, or found by its settings)."""
    import json
    import shutil

    first = train.run(tiny_config(epochs=1, validation_size=0, output_dir=str(tmp_path),
                                  run_name="old"))
    run = rundir.RunDir(first["run_dir"])
    with open(run.config_path) as f:
        settings = json.load(f)
    del settings["validation_size"]  # as vae_tf wrote it before the setting existed
    with open(run.config_path, "w") as f:
        json.dump(settings, f)
    shutil.rmtree(run.saved_model_dir)  # unfinished
    again = tiny_config(epochs=1, output_dir=str(tmp_path), run_name="old" if named else "")
    assert again.validation_size == -1  # the default now holds images out
    result = train.run(again)
    assert result["resumed"] and result["run_dir"] == run.path
    assert "val_loss" not in result and rundir.RunDir(run.path).read_config().validation_size == 0
    assert os.listdir(tmp_path) == ["old"]
