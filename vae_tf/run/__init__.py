"""A run on disk: the run directory, whole-or-nothing files, fault points, TensorFlow's process environment."""
