"""PyTorch reference for benchmarks/compare.py: the project's plain conv VAE, trained on CPU.

    python benchmarks/torch_ref.py --size 64 --channels 32,64,128,256 --latent 128 \\
        --batch 64 --steps 30 [--warmup 5] [--threads N] [--compile] [--bfloat16]
    python benchmarks/torch_ref.py --size 64 --channels 32,64,128,256 --latent 128 --print_params

The network is the project's `--architecture=conv --kernel_size=4 --activation=relu`:
per entry of --channels a 4x4 stride-2 convolution padded as Keras' padding="same"
(output side ceil(side / 2), an odd pixel of padding going after) and a ReLU; flatten;
a linear layer to 2 * latent (mean and log-variance). The decoder mirrors it: a linear
layer with ReLU to the smallest feature map, 4x4 stride-2 transposed convolutions that
double the side exactly (ReLU between them), the last one to 3 channels, then a crop
back to --size when it is not a multiple of 2 ** len(channels).

Protocol (as keras_ref.py and the project's throughput.py): 8 * --batch random images
uniform in [0, 1] (not binarized) held in memory and cycled; the loss is the negative
ELBO, a Bernoulli likelihood (cross-entropy on logits summed over pixels) plus the
analytic Gaussian KL summed over latents, averaged over the batch; Adam, learning rate
1e-3; seed 0. --warmup untimed steps, then --steps timed ones. Prints a line saying
what ran, then `images_per_s=<float>`. Tensors keep PyTorch's default NCHW layout;
the model runs eagerly unless --compile (torch.compile). --threads sets PyTorch's
intra-op threads (default: PyTorch's own choice). --bfloat16 runs the forward pass
under `torch.autocast("cpu", dtype=torch.bfloat16)` (float32 weights, Adam in
float32), PyTorch's counterpart of Keras' mixed_bfloat16.

PyTorch is not a dependency of the project; give it its own environment:
    python -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0
"""

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

import ref_protocol  # benchmarks/, beside this script

KERNEL = 4
IMAGE_CHANNELS = 3


def same_padding(side):
    """(before, after) zeros that make a KERNEL-wide stride-2 convolution give
    ceil(side / 2) outputs, split as Keras' padding="same" splits them."""
    total = max((math.ceil(side / 2) - 1) * 2 + KERNEL - side, 0)
    return total // 2, total - total // 2


class ConvVAE(nn.Module):
    def __init__(self, size, channels, latent):
        super().__init__()
        encoder, width, side = [], IMAGE_CHANNELS, size
        for c in channels:
            before, after = same_padding(side)
            if before != after:
                encoder.append(nn.ZeroPad2d((before, after, before, after)))
                before = 0
            encoder += [nn.Conv2d(width, c, KERNEL, stride=2, padding=before), nn.ReLU()]
            width, side = c, math.ceil(side / 2)
        self.encoder = nn.Sequential(*encoder, nn.Flatten(),
                                     nn.Linear(side * side * width, 2 * latent))

        decoder = [nn.Linear(latent, side * side * width), nn.ReLU(),
                   nn.Unflatten(1, (width, side, side))]
        for c in [*reversed(channels[:-1]), IMAGE_CHANNELS]:
            # Kernel 4, stride 2, padding 1: exactly twice the side, as Keras' "same".
            decoder += [nn.ConvTranspose2d(width, c, KERNEL, stride=2, padding=1), nn.ReLU()]
            width = c
        self.decoder = nn.Sequential(*decoder[:-1])  # no ReLU on the logits
        extra = side * 2 ** len(channels) - size
        self.crop = (extra // 2, extra // 2 + size)

    def forward(self, images):
        """The batch's mean negative ELBO."""
        mean, logvar = self.encoder(images).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        top, bottom = self.crop
        logits = self.decoder(z)[:, :, top:bottom, top:bottom]
        nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(1)
        return (nll + kl).mean()


def main():
    p = ref_protocol.parser(__doc__.split("\n\n")[0], "PyTorch")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss")
    p.add_argument("--bfloat16", action="store_true",
                   help="forward pass under CPU autocast to bfloat16 (mixed precision)")
    a = ref_protocol.parse(p)

    torch.manual_seed(0)
    if a.threads:
        torch.set_num_threads(a.threads)
    model = ConvVAE(a.size, [int(c) for c in a.channels.split(",")], a.latent)
    if a.print_params:
        print(f"params={sum(w.numel() for w in model.parameters() if w.requires_grad)}")
        return
    loss_of = torch.compile(model) if a.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(8 * a.batch, IMAGE_CHANNELS, a.size, a.size)

    def step(i):
        start = (i % 8) * a.batch
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bfloat16):
            loss = loss_of(images[start:start + a.batch])
        loss.backward()
        optimizer.step()

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.warmup, a.warmup + a.steps):
        step(i)
    seconds = time.perf_counter() - start
    print(f"torch_ref: torch {torch.__version__}, {'compiled' if a.compile else 'eager'}, "
          f"{'bfloat16 autocast' if a.bfloat16 else 'float32'}, "
          f"NCHW, {torch.get_num_threads()} threads; {a.steps} steps of batch {a.batch} "
          f"at {a.size}x{a.size}x{IMAGE_CHANNELS} in {seconds:.2f} s")
    print(f"images_per_s={a.steps * a.batch / seconds:.1f}")


if __name__ == "__main__":
    main()
