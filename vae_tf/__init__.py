"""vae_tf: train variational autoencoders on image datasets with Keras 3 / TensorFlow."""

import os

# TensorFlow's C++ start-up chatter (CPU feature notices, oneDNN banners) hides the
# run's own messages; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# oneDNN's convolution kernels instead of Eigen's: 1.8-2.2x the training images/s
# of the conv VAE on 2 AMD EPYC (AVX2) cores, where TensorFlow leaves them off by
# default (it turns them on only on CPUs with AVX-512 VNNI/BF16 or AMX), so the same
# command ran at two speeds depending on the CPU. Must be set before TensorFlow is
# imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
