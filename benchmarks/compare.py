"""The project's training step against PyTorch and plain Keras on the same network.

    python benchmarks/compare.py --torch_python=.venv-torch/bin/python

Runs benchmarks/throughput.py (the project, its default speed settings) and the
repository's own references, benchmarks/torch_ref.py (PyTorch) and
benchmarks/keras_ref.py (plain Keras 3, keras.io style), in turn, round after
round (interleaved, so that a machine whose speed drifts slows all of them alike),
each as its own process with the same protocol: 5 untimed steps, then --steps timed
steps of the plain conv VAE (channels 32,64,128,256, kernel 4, latent 128, ReLU,
Bernoulli likelihood, Adam 1e-3) at --size x --size x 3, batch --batch. Prints each
one's median images/s over the rounds, its spread, and the project's ratio to it.
A fourth contestant, "network_only" (throughput.py --network_only), is the ceiling
set by TensorFlow's kernels: the network's forward pass and weight gradients alone.
Everything it runs is in this repository, so a clone can rerun docs/speed.md's comparison;
--bench_dir points it at another folder of torch_ref.py and keras_ref.py that
follow the same protocol (stated in their docstrings).

PyTorch belongs in its own virtual environment (not a project dependency):
    python -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0
"""

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = re.compile(r"images_per_s=([0-9.]+)")


def commands(a):
    """{name: argv} of the contestants; the project comes first."""
    project = [sys.executable, os.path.join(REPO, "benchmarks", "throughput.py"),
               "--architecture=conv", f"--conv_channels={a.channels}", "--kernel_size=4",
               f"--latent_dim={a.latent}", "--activation=relu", "--recon_loss=bernoulli",
               "--learning_rate=0.001", f"--image_size={a.size}", "--image_channels=3",
               f"--batch_size={a.batch}", "--warmup_steps=5", f"--steps={a.steps}",
               "--repeats=1", "--pipeline_batches=0", *shlex.split(a.project_flags)]
    ref = ["--size", str(a.size), "--channels", a.channels, "--latent", str(a.latent),
           "--batch", str(a.batch), "--steps", str(a.steps)]
    found = {"project": project, "network_only": [*project, "--network_only"]}
    if a.torch_python:
        found["pytorch"] = [a.torch_python, os.path.join(a.bench_dir, "torch_ref.py"), *ref]
    found["keras"] = [sys.executable, os.path.join(a.bench_dir, "keras_ref.py"), *ref]
    for extra in a.extra:
        name, _, command = extra.partition("=")
        found[name] = shlex.split(command)
    return found


def run_once(argv, timeout, log=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    if log:
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(argv)}\n{out.stdout}\n")
    rates = RATE.findall(out.stdout)
    if out.returncode or not rates:
        print(f"  failed ({' '.join(argv[:2])} ...): {out.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return float(rates[0])  # the training step (the project prints it before the pipeline)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds; each runs every contestant once")
    p.add_argument("--steps", type=int, default=30, help="timed steps per process")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", default="32,64,128,256")
    p.add_argument("--latent", type=int, default=128)
    default_torch = os.path.join(REPO, ".venv-torch", "bin", "python")
    p.add_argument("--torch_python", default=default_torch if os.path.exists(default_torch) else "",
                   help="python of the environment holding torch; empty skips PyTorch")
    p.add_argument("--bench_dir", default=os.path.join(REPO, "benchmarks"),
                   help="folder of torch_ref.py and keras_ref.py (default: the "
                   "repository's own, beside this script)")
    p.add_argument("--project_flags", default="", help="extra flags for the project's run, "
                   "e.g. '--jit_compile --precision=mixed_bfloat16'")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                   help="another contestant: a command printing images_per_s=<float>")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per process")
    p.add_argument("--log", default="", help="file to which every run's output is appended")
    a = p.parse_args()

    contestants = commands(a)
    names = list(contestants)
    rounds = []  # {name: images/s} of each round; a failed run leaves its name out
    for r in range(a.repeats):
        # Rotate the order so that no contestant always runs first (or after the same one).
        order = names[r % len(names):] + names[:r % len(names)]
        found = {name: run_once(contestants[name], a.timeout, a.log) for name in order}
        rounds.append({name: rate for name, rate in found.items() if rate is not None})
        print(f"round {r + 1}/{a.repeats} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
            f"{n} {rounds[-1][n]:.1f}" if n in rounds[-1] else f"{n} -" for n in names),
            flush=True)

    print(f"\nimages/s, batch {a.batch}, {a.size}x{a.size}x3, channels {a.channels}, "
          f"latent {a.latent}; median of {a.repeats} interleaved runs of {a.steps} steps "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("project/this: the ratio of the medians, and the median of the per-round "
          "ratios (robust to the machine's speed drifting between rounds)")
    width = max(len(n) for n in names)
    print(f"{'':{width}} {'median':>8} {'min':>8} {'max':>8} {'project/this':>13} "
          f"{'per round':>10}")
    for name in names:
        ratio, paired = ratios(rounds, "project", name)
        rates = [found[name] for found in rounds if name in found]
        if not rates:
            print(f"{name:{width}} {'failed':>8}")
            continue
        print(f"{name:{width}} {statistics.median(rates):8.1f} {min(rates):8.1f} "
              f"{max(rates):8.1f} {ratio:13.2f} {paired:10.2f}")
    if "pytorch" in names:
        ratio, paired = ratios(rounds, "network_only", "pytorch")
        print(f"network_only/pytorch: {ratio:.2f} (per round {paired:.2f}), the most "
              "that a training step on TensorFlow's kernels could reach against PyTorch")


def ratios(rounds, numerator, denominator):
    """The ratio of the two contestants' medians, and the median of their per-round
    ratios (rounds where both ran); NaN where there is nothing to divide."""
    top = [found[numerator] for found in rounds if numerator in found]
    bottom = [found[denominator] for found in rounds if denominator in found]
    paired = [found[numerator] / found[denominator] for found in rounds
              if numerator in found and denominator in found]
    if not (top and bottom and paired):
        return float("nan"), float("nan")
    return (statistics.median(top) / statistics.median(bottom), statistics.median(paired))


if __name__ == "__main__":
    main()
