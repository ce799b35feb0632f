"""`--dataset=frey`: Frey faces, 1,965 grayscale 28x20 video frames of one face.

    python -m vae_tf.train --flagfile=flags/frey.cfg --data_dir=/path/to/frey_faces

The original VAE paper's (Kingma & Welling, 2013) second dataset, from Sam Roweis'
`frey_rawface.mat` (variable `ff`, 560 x 1965 uint8, one 28x20 row-major image per
column). Looked for in --data_dir (a folder holding the file, or the file itself),
else in ~/.keras/datasets.

Split: there is no official one. The frames come from a video, so neighbours are
near-duplicates and a random split would leak training frames into the test split;
the last NUM_TEST frames (a contiguous stretch) are the test split instead.
"""

import os

import numpy as np

from vae_tf.config import Config
from vae_tf.datasets.base import ImageData
from vae_tf.errors import UserError


FILE = "frey_rawface.mat"
HEIGHT, WIDTH = 28, 20
NUM_TEST = 200
_USUAL_PLACES = [os.path.join(os.path.expanduser("~"), ".keras", "datasets")]
_HELP = (f"Download {FILE} from https://cs.nyu.edu/~roweis/data/{FILE} into a folder "
         "and pass it with --data_dir=FOLDER.")


def load(config: Config) -> ImageData:
    path = _find(config.data_dir)
    images = read_frey(path)
    labels = np.full(len(images), -1)
    return ImageData.from_arrays(images[:-NUM_TEST], labels[:-NUM_TEST], images[-NUM_TEST:],
                                 labels[-NUM_TEST:],
                                 source=f"Frey faces {path} (test: the last {NUM_TEST} frames)")


def read_frey(path: str) -> np.ndarray:
    """uint8 images [1965, 28, 20, 1] from frey_rawface.mat; UserError if it is not one."""
    import scipy.io  # reads MAT v5 files; only this dataset needs it

    try:
        ff = scipy.io.loadmat(path)["ff"]
    # A damaged or foreign file makes scipy raise anything from IndexError to
    # ValueError; each means "not the expected file".
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path} is not Roweis' frey_rawface.mat with a variable 'ff' "
                        f"({e.__class__.__name__}: {e}). {_HELP}") from None
    if ff.ndim != 2 or ff.shape[0] != HEIGHT * WIDTH or ff.dtype != np.uint8:
        raise UserError(f"{path}: 'ff' is {ff.dtype} {ff.shape}, not uint8 "
                        f"({HEIGHT * WIDTH}, N). {_HELP}")
    return np.ascontiguousarray(ff.T.reshape(-1, HEIGHT, WIDTH, 1))


def _find(data_dir: str) -> str:
    places = [data_dir] if data_dir else _USUAL_PLACES
    for place in places:
        path = place if os.path.isfile(place) else os.path.join(place, FILE)
        if os.path.isfile(path):
            return path
    raise UserError(f"No {FILE} in {' or '.join(places)}. {_HELP}")
