"""The command line that every reference training loop (torch_ref.py, keras_ref.py)
shares, so that compare.py runs them all with one protocol. Imports only argparse:
the PyTorch reference runs in an environment without TensorFlow."""

import argparse


def parser(description: str, framework: str) -> argparse.ArgumentParser:
    """The shared flags; each script adds its own (--compile, --jit, --bf16)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", type=int, default=64, help="side of the square RGB images")
    p.add_argument("--channels", default="32,64,128,256", help="comma list, one conv each")
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=0,
                   help=f"intra-op threads; 0: {framework}'s default")
    p.add_argument("--print_params", action="store_true",
                   help="print params=<trainable parameter count> and exit")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return a
