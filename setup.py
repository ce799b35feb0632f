import os
import runpy

from setuptools import find_packages, setup

# The command names, read from the registry by path: it imports nothing to install.
COMMANDS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "vae_tf", "registry.py"))["COMMANDS"]

setup(
    name="vae_tf",
    version="0.1.0",
    description="Train variational autoencoders on image datasets with Keras 3 / TensorFlow.",
    packages=find_packages(include=["vae_tf", "vae_tf.*"]),
    # The fused kernels' C++ source, compiled on first use (vae_tf/kernels).
    package_data={"vae_tf.models.kernels": ["*.cc"],
                  # The explore command's page (vae_tf/views/explorer.py serves it).
                  "vae_tf.views": ["explorer_static/*"],
                  # The CelebA subset of the README's figures (--celeba_subset).
                  "vae_tf.datasets": ["celeba_subset.txt"]},
    python_requires=">=3.10",
    install_requires=[
        # The one TensorFlow package that runs everywhere (CPU; a GPU once CUDA's
        # libraries are there, which the `gpu` extra brings). tensorflow-cpu would be
        # smaller, but a GPU install would then put a second TensorFlow beside it.
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets' downloader imports it but does not declare it.
        "importlib_resources",
        "absl-py>=2.1",
        "matplotlib>=3.8",
        "numpy>=1.26",
        # Progress bars of the image cache build and of evaluate.
        "tqdm>=4.60",
        "pillow>=10",
        # --dataset=frey reads Roweis' MAT v5 file with scipy.io.loadmat.
        "scipy>=1.10",
        # scatter --method=tsne (sklearn.manifold.TSNE) and --method=umap.
        "scikit-learn>=1.3",
        "umap-learn>=0.5.4",
        # tf.summary (the TensorBoard scalars and images of a run) needs it at run time.
        "tensorboard>=2.20",
    ],
    extras_require={
        # pytest-xdist runs the test files in parallel processes (setup.cfg): most of
        # a test's time is one-threaded Python (TensorFlow's import, tracing).
        # playwright drives Debian's chromium (.ci/run installs it) in the explore
        # command's tests; its own browser download (`playwright install`) is not used.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "playwright>=1.40"],
        # pip install -e ".[gpu]": the same tensorflow with NVIDIA's CUDA and cuDNN wheels.
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
    },
    # `vae-tf <command>` and one `vae-tf-<command>` script per command of the registry.
    entry_points={"console_scripts": ["vae-tf=vae_tf.cli:dispatch"] + [
        f"vae-tf-{name}={COMMANDS.target(name)}:console_main" for name in COMMANDS]},
)
