"""A run directory, `<output_dir>/<run_name>/`: the one owner of its file names and
its rules (creating, resuming, finished or not, reading its config and metrics).

    config.json                     every setting, under the flags' names
    metrics.csv                     one row per epoch
    report.html                     the run report
    images/<kind>_epoch_NNNN.png    grids after each epoch (kinds: GRID_KINDS)
    images/samples.gif              the samples grids of all epochs, animated
    tensorboard/                    TensorBoard scalars and images
    checkpoints/epoch_NNNN.weights.h5
    backup/                         resume state while the run is unfinished
    saved_model/                    the SavedModel; a run is finished once it is complete
    eval.json                       written by `vae_tf.evaluate`
    pictures/                       written by the picture commands

Imports no TensorFlow: the report, the commands' flag checks and tests use it cheaply.
"""

import csv
import datetime
import glob
import json
import os
import re
from typing import List, Optional, Tuple

from vae_tf import files
from vae_tf.config import Config
from vae_tf.errors import UserError

CONFIG = "config.json"
METRICS = "metrics.csv"
REPORT = "report.html"
IMAGES = "images"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
SAVED_MODEL = "saved_model"
EVAL = "eval.json"
PICTURES = "pictures"
SAMPLES_GIF = "samples.gif"
# The grids written after every epoch, in the order the report shows them.
GRID_KINDS = ("recon", "samples", "traversal")
_GRID_EPOCH = re.compile(r"_epoch_(\d+)\.png$")


class RunDir:
    """The paths and files of one run directory (which need not exist yet)."""

    def __init__(self, path: str):
        self.path = path

    def __repr__(self):
        return f"RunDir({self.path!r})"

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    # -- names ------------------------------------------------------------------------
    @property
    def config_path(self) -> str:
        return self.join(CONFIG)

    @property
    def metrics_path(self) -> str:
        return self.join(METRICS)

    @property
    def report_path(self) -> str:
        return self.join(REPORT)

    @property
    def image_dir(self) -> str:
        return self.join(IMAGES)

    @property
    def tensorboard_dir(self) -> str:
        return self.join(TENSORBOARD)

    @property
    def backup_dir(self) -> str:
        return self.join(BACKUP)

    @property
    def saved_model_dir(self) -> str:
        return self.join(SAVED_MODEL)

    @property
    def eval_path(self) -> str:
        return self.join(EVAL)

    @property
    def samples_gif(self) -> str:
        return self.join(IMAGES, SAMPLES_GIF)

    def picture(self, name: str) -> str:
        """Where a picture command writes `name` by default."""
        return self.join(PICTURES, name)

    def checkpoint_pattern(self) -> str:
        """Keras ModelCheckpoint's file pattern (it fills in the 1-based epoch)."""
        return self.join(CHECKPOINTS, "epoch_{epoch:04d}.weights.h5")

    def checkpoint(self, epoch: int) -> str:
        return self.checkpoint_pattern().format(epoch=epoch)

    def grid(self, kind: str, epoch: int) -> str:
        """The `kind` grid written after epoch `epoch` (counted from 1)."""
        return self.join(IMAGES, f"{kind}_epoch_{epoch:04d}.png")

    def grids(self, kind: str) -> List[str]:
        """Every epoch's `kind` grid, oldest first."""
        return sorted(glob.glob(self.join(IMAGES, f"{kind}_epoch_*.png")))

    # -- state ------------------------------------------------------------------------
    def exists(self) -> bool:
        return os.path.isfile(self.config_path)

    def is_finished(self) -> bool:
        """Whether training ended and the SavedModel was written (it is renamed into
        place only when complete)."""
        return os.path.isfile(os.path.join(self.saved_model_dir, "saved_model.pb"))

    # -- reading ----------------------------------------------------------------------
    def read_settings(self) -> dict:
        """config.json as written (also by other versions of vae_tf)."""
        if not os.path.isfile(self.config_path):
            raise UserError(f"{self.path} holds no vae_tf run (no {CONFIG}); pass a run "
                            "directory such as outputs/<run_name>.")
        try:
            with open(self.config_path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"{self.config_path} is not readable JSON ({e}).") from None

    def read_config(self) -> Config:
        """The run's settings as a Config (UserError when missing or unreadable)."""
        try:
            return Config.from_dict(self.read_settings())
        except (ValueError, TypeError) as e:
            if isinstance(e, UserError):
                raise
            raise UserError(f"{self.config_path} is not a readable vae_tf config "
                            f"({e}).") from None

    def read_metrics(self) -> List[dict]:
        """metrics.csv as one dict of floats per epoch, in epoch order; an epoch logged
        twice (a resumed run) keeps its last row."""
        by_epoch = {}
        if os.path.isfile(self.metrics_path):
            with open(self.metrics_path, newline="") as f:
                for row in csv.DictReader(f):
                    values = {k: _number(v) for k, v in row.items() if k}
                    by_epoch[int(values["epoch"])] = values
        return [by_epoch[e] for e in sorted(by_epoch)]

    # -- writing ----------------------------------------------------------------------
    def write_config(self, config: Config) -> None:
        files.write_text(self.config_path, config.to_json() + "\n")

    def output_path(self, given: Optional[str], default: str) -> str:
        """`given` (a command's --output) or else `default`; its folder is created
        and must be writable."""
        path = given or default
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise UserError(f"Cannot create {folder}: {e.strerror}.") from None
        if not os.access(folder, os.W_OK):
            raise UserError(f"{folder} is not writable.")
        return path


def epoch_of_grid(path: str) -> int:
    """The epoch number in a grid's file name."""
    return int(_GRID_EPOCH.search(path).group(1))


def open_existing(path: str) -> RunDir:
    """A run directory that must exist (UserError otherwise)."""
    if not os.path.isdir(path):
        raise UserError(f"--run_dir={path} does not exist.")
    return RunDir(path)


def resolve(config: Config) -> Tuple[Config, RunDir, bool]:
    """Chooses the run directory: returns (config with run_name set, run, resuming).

    An explicit --run_name resumes that run if it is unfinished and has the same
    settings. Without one, the newest unfinished run with the same settings is
    resumed (so re-running a crashed command continues it), else a new name is made.
    """
    try:
        os.makedirs(config.output_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create --output_dir={config.output_dir}: {e.strerror}.") from None
    if not os.access(config.output_dir, os.W_OK):
        raise UserError(f"--output_dir={config.output_dir} is not writable.")

    if config.run_name:
        run = RunDir(os.path.join(config.output_dir, config.run_name))
        if not run.exists():
            if os.path.isdir(run.path) and os.listdir(run.path):
                raise UserError(f"{run.path} exists and holds no vae_tf run (no {CONFIG}); "
                                "choose another --run_name.")
            return config, run, False
        previous = _config_or_error(run)
        if run.is_finished():
            raise UserError(f"Run {run.path} is already finished; choose another --run_name "
                            "to train again (nothing was changed).")
        differences = config.differences(previous)
        if differences:
            raise UserError(f"Run {run.path} was started with other settings (differing: "
                            f"{', '.join(differences)}); choose another --run_name.")
        return config, run, True

    for run in _runs_newest_first(config.output_dir):
        previous = _config_or_error(run)
        if not run.is_finished() and not config.differences(previous):
            return config.replace(run_name=previous.run_name), run, True
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name, n = f"{config.dataset}_{stamp}", 1
    while os.path.exists(os.path.join(config.output_dir, name)):
        n += 1
        name = f"{config.dataset}_{stamp}-{n}"
    return config.replace(run_name=name), RunDir(os.path.join(config.output_dir, name)), False


def _config_or_error(run: RunDir) -> Config:
    try:
        return run.read_config()
    except UserError as e:
        raise UserError(f"{e} Choose another --run_name.") from None


def _runs_newest_first(output_dir: str) -> List[RunDir]:
    runs = [RunDir(os.path.join(output_dir, d)) for d in os.listdir(output_dir)]
    runs = [run for run in runs if run.exists()]
    return sorted(runs, key=lambda run: os.path.getmtime(run.path), reverse=True)


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")
