"""vae_tf: train variational autoencoders on image datasets with Keras 3 / TensorFlow."""

import os

# TensorFlow's C++ start-up chatter (CPU feature notices, oneDNN banners) hides the
# run's own messages; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
