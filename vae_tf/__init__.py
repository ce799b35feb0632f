"""vae_tf: train variational autoencoders on image datasets with Keras 3 / TensorFlow.

Importing the package sets nothing and imports no TensorFlow; the commands set
TensorFlow's environment defaults themselves (`vae_tf.run.tfenv`).
"""

__version__ = "0.1.0"
