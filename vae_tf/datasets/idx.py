"""Reader for the IDX files of MNIST and Fashion-MNIST (gzip-compressed or raw)."""

import gzip

import numpy as np

from vae_tf.errors import UserError


_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Returns the array stored in an IDX file; UserError if the file is corrupt."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"Cannot read IDX file {path}: {e}.") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise UserError(f"{path} is truncated or corrupt: {len(body)} data bytes where "
                        f"its header promises {expected}.")
    return np.frombuffer(body, dtype=dtype).reshape(shape)
