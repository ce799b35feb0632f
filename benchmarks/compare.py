"""The project's training step against PyTorch and plain Keras on the same network.

    python benchmarks/compare.py --torch_python=.venv-torch/bin/python

Runs benchmarks/throughput.py (the project, its default speed settings),
../shared/bench/torch_ref.py and ../shared/bench/keras_ref.py in turn, round after
round (interleaved, so that a machine whose speed drifts slows all of them alike),
each as its own process with the same protocol: 5 untimed steps, then --steps timed
steps of the plain conv VAE (channels 32,64,128,256, kernel 4, latent 128, ReLU,
Bernoulli likelihood, Adam 1e-3) at --size x --size x 3, batch --batch. Prints each
one's median images/s over the rounds, its spread, and the project's ratio to it.

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
    found = {"project": project}
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
    p.add_argument("--bench_dir", default=os.path.join(os.path.dirname(REPO), "shared", "bench"),
                   help="folder of torch_ref.py and keras_ref.py")
    p.add_argument("--project_flags", default="", help="extra flags for the project's run, "
                   "e.g. '--jit_compile --precision=mixed_bfloat16'")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                   help="another contestant: a command printing images_per_s=<float>")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per process")
    p.add_argument("--log", default="", help="file to which every run's output is appended")
    a = p.parse_args()

    contestants = commands(a)
    names = list(contestants)
    rates = {name: [] for name in names}
    ratios = {name: [] for name in names}  # project / this, within each round
    for r in range(a.repeats):
        # Rotate the order so that no contestant always runs first (or after the same one).
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            rate = run_once(contestants[name], a.timeout, a.log)
            if rate is not None:
                rates[name].append(rate)
        if len(rates["project"]) == r + 1:
            for name in names:
                if len(rates[name]) == r + 1:
                    ratios[name].append(rates["project"][-1] / rates[name][-1])
        load = os.getloadavg()[0]
        print(f"round {r + 1}/{a.repeats} (load {load:.1f}): " + ", ".join(
            f"{n} {rates[n][-1]:.1f}" if rates[n] else f"{n} -" for n in names), flush=True)

    print(f"\nimages/s, batch {a.batch}, {a.size}x{a.size}x3, channels {a.channels}, "
          f"latent {a.latent}; median of {a.repeats} interleaved runs of {a.steps} steps "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("project/this: the ratio of the medians, and the median of the per-round "
          "ratios (robust to the machine's speed drifting between rounds)")
    width = max(len(n) for n in names)
    print(f"{'':{width}} {'median':>8} {'min':>8} {'max':>8} {'project/this':>13} "
          f"{'per round':>10}")
    project = statistics.median(rates["project"]) if rates["project"] else float("nan")
    for name in names:
        if not rates[name]:
            print(f"{name:{width}} {'failed':>8}")
            continue
        median = statistics.median(rates[name])
        paired = statistics.median(ratios[name]) if ratios[name] else float("nan")
        print(f"{name:{width}} {median:8.1f} {min(rates[name]):8.1f} {max(rates[name]):8.1f} "
              f"{project / median:13.2f} {paired:10.2f}")


if __name__ == "__main__":
    main()
