"""A run directory, `<output_dir>/<run_name>/`: the one owner of its file names and
its rules (creating, resuming, finished or not, reading its config and metrics).

    config.json                     every setting, under the flags' names
    metrics.csv                     one row per epoch
    report.html                     the run report
    images/<kind>_epoch_NNNN.png    grids after each epoch (recon, samples, traversal)
    images/samples.gif              the samples grids of all epochs, animated
    tensorboard/                    TensorBoard scalars and images
    checkpoints/epoch_NNNN.weights.h5  weights and optimizer state after each epoch;
                                    a run resumes from the newest one that loads
    test.json                       the test split's figures, evaluated once after the last
                                    epoch (the epochs are evaluated on the validation split)
    saved_model/                    the SavedModel; a run is finished once it is complete
    eval.json                       written by `vae_tf.evaluate` (FID and KID under "fid")
    eval_validation.json            the same of the validation split (`--split=validation`)
    pictures/                       written by the picture commands, among them
      scatter_<method>[_<attribute>][_beside_<run>].png   maps of the test codes (scatter)
      attribute_<name>_<a>-<b>.png, attribute_all_<n>.png   CelebA attribute vectors
    .lock                           held by the one process training the run

Every file is written whole or not at all (vae_tf/run/files.py), and one process at a
time trains a run (an OS file lock, which dies with its process). Imports no
TensorFlow: the report, the commands' flag checks and tests use it cheaply.
"""

import csv
import datetime
import errno
import fcntl
import glob
import io
import json
import math
import os
import re
import shutil
from typing import List, Optional, Tuple

from absl import logging

from vae_tf.config import Config, predated
from vae_tf.errors import UserError
from vae_tf.run import files


CONFIG = "config.json"
METRICS = "metrics.csv"
REPORT = "report.html"
IMAGES = "images"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"
SAVED_MODEL = "saved_model"
EVAL = "eval.json"
EVAL_VALIDATION = "eval_validation.json"
TEST_METRICS = "test.json"
PICTURES = "pictures"
SAMPLES_GIF = "samples.gif"
SCATTER, ATTRIBUTE = "scatter", "attribute"  # prefixes of those pictures' names
_GRID_EPOCH = re.compile(r"_epoch_(\d+)\.png$")
_CHECKPOINT_EPOCH = re.compile(r"epoch_(\d+)\.weights\.h5$")


class RunInUse(UserError):
    """Another process holds the run's lock."""


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
    def saved_model_dir(self) -> str:
        return self.join(SAVED_MODEL)

    @property
    def eval_path(self) -> str:
        return self.join(EVAL)

    def evaluation_path(self, split: str) -> str:
        """eval.json for the test split, eval_validation.json for the validation split."""
        return self.eval_path if split == "test" else self.join(EVAL_VALIDATION)

    @property
    def test_metrics_path(self) -> str:
        return self.join(TEST_METRICS)

    def read_test_metrics(self) -> dict:
        """test.json's figures ({} before training finished, or unreadable)."""
        return files.read_json_object(self.test_metrics_path)

    def read_evaluation(self) -> dict:
        """eval.json's figures ({} where evaluate has not run, or unreadable)."""
        return files.read_json_object(self.eval_path)

    @property
    def samples_gif(self) -> str:
        return self.join(IMAGES, SAMPLES_GIF)

    def picture(self, name: str) -> str:
        """Where a picture command writes `name` by default."""
        return self.join(PICTURES, name)

    def latest_pictures(self, prefix: str, count: int = 1) -> List[str]:
        """The `count` newest pictures/<prefix>_*.png (SCATTER, ATTRIBUTE), newest first."""
        found = glob.glob(self.join(PICTURES, f"{prefix}_*.png"))
        return sorted(found, key=os.path.getmtime, reverse=True)[:count]

    def checkpoint(self, epoch: int) -> str:
        """The weights after epoch `epoch` (counted from 1)."""
        return self.join(CHECKPOINTS, f"epoch_{epoch:04d}.weights.h5")

    def checkpoints(self) -> List[Tuple[int, str]]:
        """(epoch, path) of every epoch's checkpoint, newest first."""
        found = []
        for path in glob.glob(self.join(CHECKPOINTS, "epoch_*.weights.h5")):
            match = _CHECKPOINT_EPOCH.search(path)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

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
        place only when complete; one damaged since counts as not written)."""
        return all(os.path.isfile(os.path.join(self.saved_model_dir, *part)) for part in
                   (("saved_model.pb",), ("variables", "variables.index")))

    def remove_leftovers(self) -> None:
        """Deletes the temporary files and folders that killed writers left behind
        (`files.is_leftover`). Only for the process holding the lock: no other writer
        can be at work."""
        for folder in (self.path, self.image_dir, self.join(CHECKPOINTS)):
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if files.is_leftover(name):
                    path = os.path.join(folder, name)
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.remove(path)

    def remove_if_unused(self) -> None:
        """Removes the directory if it holds nothing but its lock: a run that failed
        before writing a file (a missing dataset, a wrong flag) leaves no empty run
        behind. Only for the process holding the lock."""
        if os.path.isdir(self.path) and os.listdir(self.path) == [LOCK]:
            os.remove(self.join(LOCK))
            os.rmdir(self.path)

    def lock(self) -> "RunLock":
        """Takes the run's lock for this process (RunInUse when another holds it)."""
        return RunLock(self)

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
        """metrics.csv as one dict of floats per epoch, in epoch order. An epoch logged
        twice keeps its last row; a line cut short (a killed write) is left out."""
        header, lines = self._metrics_lines()
        by_epoch = {}
        for row in csv.DictReader(io.StringIO("".join([header] + lines))):
            values = {k: _number(v) for k, v in row.items() if k}
            epoch = values.get("epoch", float("nan"))
            if math.isfinite(epoch) and not any(v is None for v in row.values()):
                by_epoch[int(epoch)] = values
        return [by_epoch[e] for e in sorted(by_epoch)]

    def keep_metrics_before(self, epoch: int) -> None:
        """Rewrites metrics.csv with only the whole rows of epochs before `epoch`
        (counted from 1), the state a run resuming after epoch - 1 continues from."""
        header, lines = self._metrics_lines()
        if not header:  # no file, or only a header cut short
            if os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
            return
        kept = "".join([header] + [line for line in lines if _row_epoch(line) < epoch])
        with open(self.metrics_path, newline="") as f:
            if f.read() == kept:
                return
        files.write_text(self.metrics_path, kept)

    def metrics_header(self) -> Optional[List[str]]:
        """The column names of metrics.csv, or None before its first row."""
        header, _ = self._metrics_lines()
        return header.rstrip("\n").split(",") if header else None

    def _metrics_lines(self):
        """(header line, whole data lines) of metrics.csv; ("", []) when absent."""
        if not os.path.isfile(self.metrics_path):
            return "", []
        with open(self.metrics_path, newline="") as f:
            lines = f.readlines()
        if not lines or not lines[0].endswith("\n"):
            return "", []
        width = lines[0].count(",")
        whole = [line for line in lines[1:] if line.endswith("\n") and line.count(",") == width]
        return lines[0], whole

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


class RunLock:
    """An exclusive lock on a run directory, held until `release` or the process ends.

    flock on <run>/.lock: the kernel drops it when the process dies, however it
    dies, so a killed run never leaves a stale lock. The file holds the holder's
    process id, for the message another process shows.
    """

    def __init__(self, run: RunDir):
        os.makedirs(run.path, exist_ok=True)
        path = run.join(LOCK)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunInUse(f"Run {run.path} is being trained by process {holder}; wait "
                               "for it to finish, or choose another --run_name.") from None
            raise UserError(f"Cannot lock {path}: {e.strerror}.") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def scatter_picture(method: str, beside_run: str = "", attribute: str = "") -> str:
    """The file name of a scatter plot made by `method`, coloured by a CelebA
    attribute or not, beside another run's or not."""
    return (f"{SCATTER}_{method}" + (f"_{attribute}" if attribute else "")
            + (f"_beside_{beside_run}" if beside_run else "") + ".png")


def attribute_picture(attribute: str, start: int = 0, stop: int = 0) -> str:
    """The file name of test images start..stop-1 moved along an attribute vector, or
    (attribute "all") of every attribute vector on test image `start`."""
    images = f"{start}" if stop <= start + 1 else f"{start}-{stop - 1}"
    return f"{ATTRIBUTE}_{attribute}_{images}.png"


def samples_picture(temperature_name: str, seed: int) -> str:
    """The file name of `sample`'s grid at a temperature (or per-group temperatures)."""
    return f"samples_{temperature_name}_seed{seed}.png"


def reconstruct_picture(images: str) -> str:
    """The file name of test images (an index or a range) beside their reconstructions."""
    return f"reconstruct_{images}.png"


def traverse_picture(index: int) -> str:
    return f"traverse_{index}.png"


def interpolate_picture(index_a: int, index_b: int) -> str:
    return f"interpolate_{index_a}_{index_b}.png"


MANIFOLD_PICTURE = "manifold.png"


def epoch_of_grid(path: str) -> int:
    """The epoch number in a grid's file name."""
    return int(_GRID_EPOCH.search(path).group(1))


# --run_dir=latest, or <output_dir>/latest: the newest run of that folder.
LATEST = "latest"


def resolve_latest(path: str) -> str:
    """`path`, or for `latest` (in outputs/) or `<folder>/latest` when no such folder
    exists, the run in that folder written to last; UserError when it has none."""
    if os.path.basename(os.path.normpath(path)) != LATEST or os.path.isdir(path):
        return path
    folder = os.path.dirname(os.path.normpath(path)) or "outputs"
    runs = _runs_newest_first(folder) if os.path.isdir(folder) else []
    if not runs:
        raise UserError(f"--run_dir={path}: no run in {folder}/ to be the latest; train one "
                        "first, or give the run's folder.")
    return runs[0].path


def open_existing(path: str) -> RunDir:
    """A run directory that must exist (UserError otherwise); `latest` or
    `<folder>/latest` names that folder's newest run, said in a log line."""
    resolved = resolve_latest(path)
    if resolved != path:
        logging.info("Run %s (--run_dir=%s: the newest in %s/)", resolved, path,
                     os.path.dirname(resolved))
    if not os.path.isdir(resolved):
        raise UserError(f"--run_dir={path} does not exist.")
    return RunDir(resolved)


def resolve(config: Config) -> Tuple[Config, RunDir, bool, RunLock]:
    """Chooses the run directory and locks it for this process: returns (config with
    run_name set, run, resuming, lock).

    An explicit --run_name resumes that run if it is unfinished and has the same
    settings, and fails when another process trains it. Without one, the newest
    unfinished run with the same settings that no other process trains is resumed
    (so re-running a crashed command continues it), else a new run is made. Each
    decision is taken with the lock held, so two commands never share a run.
    """
    try:
        os.makedirs(config.output_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create --output_dir={config.output_dir}: {e.strerror}.") from None
    if not os.access(config.output_dir, os.W_OK):
        raise UserError(f"--output_dir={config.output_dir} is not writable.")

    if config.run_name:
        run = RunDir(os.path.join(config.output_dir, config.run_name))
        if os.path.isdir(run.path) and not run.exists() and _holds_other_files(run):
            raise UserError(f"{run.path} exists and holds no vae_tf run (no {CONFIG}); "
                            "choose another --run_name.")
        lock = run.lock()
        try:
            if run.exists():
                config = config.replace(**predated(_settings_or_error(run)))
            resuming = _check_resumable(run, config)
            run.remove_leftovers()
            return config, run, resuming, lock
        except BaseException:
            lock.release()
            raise

    busy = []
    for run in _runs_newest_first(config.output_dir):
        previous = _config_or_none(run)
        if previous is None or run.is_finished() or config.differences(
                previous, ignore=("run_name", *predated(run.read_settings()))):
            continue
        try:
            lock = run.lock()
        except RunInUse:
            busy.append(run.name)
            continue
        if run.is_finished():  # it finished while we looked
            lock.release()
            continue
        run.remove_leftovers()
        # An older run resumes as it was trained (config.PREDATED).
        return previous, run, True, lock
    config, run = _new_run(config)
    if busy:
        logging.warning("Run %s with these settings is being trained by another process; "
                        "starting a new run %s.", busy[0], run.path)
    return config, run, False, run.lock()


def _check_resumable(run: RunDir, config: Config) -> bool:
    """Whether the locked run `run` resumes (False: it is new); UserError when it
    cannot be trained with `config`."""
    if not run.exists():
        return False
    previous = _config_or_error(run)
    differences = config.differences(previous)
    if differences and run.is_finished():
        raise UserError(f"Run {run.path} is already finished with other settings (differing: "
                        f"{', '.join(differences)}); choose another --run_name to train again "
                        "(nothing was changed).")
    if differences:
        raise UserError(f"Run {run.path} was started with other settings (differing: "
                        f"{', '.join(differences)}); choose another --run_name.")
    if run.is_finished():
        raise RunFinished(run)
    return True


class RunFinished(Exception):
    """The command that trained a finished run, given again: nothing to do (the
    caller reports the run's result, a scheduler's retry succeeds)."""

    def __init__(self, run: RunDir):
        super().__init__(f"Run {run.path} is already finished.")
        self.run = run


def _new_run(config: Config) -> Tuple[Config, RunDir]:
    """A new, empty run directory named after the dataset and the time; created here
    (mkdir is atomic), so that two commands starting together get two names."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = f"{config.dataset}_{stamp}" + (f"-{n}" if n > 1 else "")
        try:
            os.mkdir(os.path.join(config.output_dir, name))
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"Cannot create a run directory in {config.output_dir}: "
                            f"{e.strerror}.") from None
        return config.replace(run_name=name), RunDir(os.path.join(config.output_dir, name))
    raise UserError(f"Cannot find a free run name in {config.output_dir}.")


def _holds_other_files(run: RunDir) -> bool:
    """Whether the folder holds anything but hidden files (the lock, the temporary
    files of a killed run)."""
    return any(not name.startswith(".") for name in os.listdir(run.path))


def _config_or_error(run: RunDir) -> Config:
    return _or_error(run.read_config)


def _settings_or_error(run: RunDir) -> dict:
    return _or_error(run.read_settings)


def _or_error(read):
    """`read()`, its UserError (a damaged config.json) saying what to do."""
    try:
        return read()
    except UserError as e:
        raise UserError(f"{e} Restore it, or choose another --run_name.") from None


def _config_or_none(run: RunDir) -> Optional[Config]:
    """The run's config; None (with a warning) when it is damaged, so that looking
    for a run to resume skips it."""
    try:
        return run.read_config()
    except UserError as e:
        logging.warning("Skipping %s: %s", run.path, e)
        return None


def _runs_newest_first(output_dir: str) -> List[RunDir]:
    runs = [RunDir(os.path.join(output_dir, d)) for d in os.listdir(output_dir)]
    runs = [run for run in runs if run.exists()]
    return sorted(runs, key=lambda run: os.path.getmtime(run.path), reverse=True)


def _row_epoch(line: str) -> float:
    """The epoch number at the start of a metrics.csv line (inf when there is none,
    so that the line is never kept)."""
    try:
        return float(line.split(",", 1)[0])
    except ValueError:
        return math.inf


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")
