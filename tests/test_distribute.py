"""tf.distribute for real on one machine: two logical CPU devices under `mirrored`,
two worker processes on 127.0.0.1 under `multi_worker` (a killed run resumes)."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from vae_tf.run import rundir


@pytest.mark.parametrize("architecture", ["conv", "hierarchical"])
def test_mirrored_update_equals_the_single_device_update(architecture):
    result = subprocess.run([sys.executable, os.path.join(REPO, "tests", "mirrored_check.py"),
                             architecture],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(result.stdout.strip().splitlines()[-1])
    assert check["replicas"] == 2
    # Summing unscaled per-replica gradients would make this as large as the update.
    assert check["max_update_difference"] < 1e-4 * check["max_update"], check
    assert abs(check["mirrored_loss"] - check["single_loss"]) < 1e-4 * check["single_loss"]
    # The seeded generator works under the strategy, and each replica draws its own noise.
    assert check["noise_finite"] and check["noise_replicas_differ"], check
    # One step each: the replicas' increments of the step counter are not summed.
    assert check["single_steps"] == check["mirrored_steps"] == 1, check


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(args, ports, log_dir, attempt):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(len(ports)):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(log_dir),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        log = open(log_dir / f"worker{index}_{attempt}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "vae_tf.train", *args], cwd=REPO,
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _rows(run_dir):
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def test_multi_worker_run_writes_one_set_of_outputs_and_resumes(tmp_path):
    out = tmp_path / "out"
    # With the fitted sampling prior, refitted by every worker after each epoch.
    args = ["--flagfile=flags/smoke.cfg", "--strategy=multi_worker", "--epochs=4",
            "--steps_per_epoch=20", f"--output_dir={out}", "--run_name=mw",
            "--sample_prior=fitted"]
    run_dir = out / "mw"
    logs = lambda attempt: "\n".join(  # noqa: E731
        (tmp_path / f"worker{i}_{attempt}.log").read_text()[-2000:] for i in range(2))

    # First attempt: killed (both workers, as a lost machine would take the job down)
    # once the first epoch's checkpoint, the point a run resumes from, is written.
    procs = _start_workers(args, _free_ports(2), tmp_path, attempt=1)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and all(p.poll() is None for p in procs):
            if (run_dir / "checkpoints" / "epoch_0001.weights.h5").exists():
                break
            time.sleep(0.1)
        assert all(p.poll() is None for p in procs), logs(1)
        for p in procs:
            p.send_signal(signal.SIGKILL)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert _rows(run_dir), logs(1)
    assert not rundir.RunDir(str(run_dir)).is_finished()
    done_before = len(_rows(run_dir))
    killed_leftovers = set(os.listdir(tmp_path))

    # The same command again (new ports: the old ones may linger) resumes on both.
    procs = _start_workers(args, _free_ports(2), tmp_path, attempt=2)
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0], logs(2)
    assert "Epoch 1/4" not in logs(2)  # both continued; neither started over
    epochs = [int(r["epoch"]) for r in _rows(run_dir)]
    assert epochs == list(range(1, 5)), (epochs, done_before)

    # One set of outputs, all from the chief; the other worker left nothing behind.
    assert sorted(os.listdir(out)) == ["mw"]
    assert not [name for name in set(os.listdir(tmp_path)) - killed_leftovers
                if name.startswith("vae_tf_worker")]
    assert sorted(os.listdir(run_dir)) == [".lock", "checkpoints", "config.json", "images",
                                           "metrics.csv", "report.html", "saved_model",
                                           "tensorboard", "test.json"]
    assert sorted(os.listdir(run_dir / "checkpoints")) == [
        f"epoch_{e:04d}.weights.h5" for e in range(1, 5)]
    assert rundir.RunDir(str(run_dir)).is_finished()
    assert json.load(open(run_dir / "config.json"))["strategy"] == "multi_worker"
    # The export carries a fitted sampling prior, not N(0, I).
    import tensorflow as tf

    prior = tf.saved_model.load(str(run_dir / "saved_model")).signatures["sampling_prior"]()
    assert np.abs(prior["scale_tril"].numpy() - np.eye(4)).max() > 1e-3
