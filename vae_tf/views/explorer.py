"""A trained run's latent space, live in the browser: a small HTTP server over the
run's SavedModel and one static page (explorer_static/) that keeps each tab's state.

    python -m vae_tf.explore --run_dir=outputs/<run>        (vae_tf/explore.py)

The server holds no per-user state: every request carries the code it wants
decoded, so two tabs never see each other. It answers these routes and no others:

  GET  /  /explorer.js  /explorer.css   the page, read into memory at start-up
  GET  /api/info      the run: shapes, the start code, direction and attribute vectors
  GET  /api/gallery   the first test images with their reconstructions and codes
  POST /api/decode    {"z": [latent floats]} -> image/png, the decoder's mean at z
                      (its Server-Timing header: the milliseconds of decode and PNG)
  POST /api/sample    {"seed", "temperature"} -> {"codes", "images"} from the sampling prior
  POST /api/upload    an image file's bytes -> {"image", "reconstruction", "code"}

No part of a request names a file: the page reaches the run it was started on and
its own assets, nothing else. Images travel as PNG (data URLs inside JSON).
"""

import base64
import dataclasses
import errno
import io
import ipaddress
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional

import numpy as np
from PIL import Image

from vae_tf.errors import UserError
from vae_tf.views import latent


STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer_static")
# URL path -> (file in STATIC_DIR, content type): the only files the server sends.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/explorer.js": ("explorer.js", "text/javascript; charset=utf-8"),
    "/explorer.css": ("explorer.css", "text/css; charset=utf-8"),
}
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
# Pillow reads a small compressed file into a huge image; refuse those before decoding.
MAX_UPLOAD_PIXELS = 40_000_000
MAX_JSON_BYTES = 64 * 1024
NUM_DIRECTIONS = 8
SAMPLE_GRID = 16
GALLERY_SIZE = 24
# The attributes the page lists first; the others follow in CelebA's order.
FEATURED_ATTRIBUTES = ("Smiling", "Eyeglasses", "Male", "Blond_Hair", "Young", "Bald")
# Test images whose codes give the active dimensions and the attribute vectors.
STATS_IMAGES = 2000
# The centered box of CelebA's aligned images the dataset cuts (datasets/celeba.py).
CELEBA_CROP = 148
SECURITY_HEADERS = {
    # Scripts, styles and requests only from this server; images also from data:
    # and blob: URLs, which is how the page shows what the server sends.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RequestError(Exception):
    """A request the server refuses; its message is shown in the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Direction:
    """A slider: `vector` is one unit of the slider (one standard deviation of the
    codes along the direction), `label` what the page writes beside it."""
    name: str
    label: str
    vector: np.ndarray


def principal_directions(cov: np.ndarray, count: int) -> List[Direction]:
    """The `count` principal axes of a Gaussian with covariance `cov`, largest
    variance first, each scaled to one standard deviation; an axis' sign makes its
    largest component positive, so the same covariance gives the same sliders."""
    values, vectors = np.linalg.eigh(np.asarray(cov, np.float64))
    values = np.maximum(values, 0.0)
    total = values.sum()
    out = []
    for rank, k in enumerate(np.argsort(values)[::-1][:count]):
        axis = vectors[:, k] * np.sign(vectors[np.argmax(np.abs(vectors[:, k])), k])
        out.append(Direction(f"PC{rank + 1}", f"{100 * values[k] / total:.1f}% of variance",
                             (axis * np.sqrt(values[k])).astype(np.float32)))
    return out


def active_directions(means: np.ndarray, logvars: np.ndarray, count: int) -> List[Direction]:
    """The `count` latent dimensions whose posterior means vary most across images
    (active units, most active first), each scaled to one standard deviation of the
    aggregate posterior along it: Var(means) + mean(exp(logvars))."""
    spread = np.var(np.asarray(means, np.float64), axis=0)
    std = np.sqrt(spread + np.exp(np.asarray(logvars, np.float64)).mean(axis=0))
    out = []
    for u in np.argsort(spread)[::-1][:count]:
        axis = np.zeros(len(spread), np.float32)
        axis[u] = std[u]
        out.append(Direction(f"z{u}", f"means vary by {spread[u]:.3g}", axis))
    return out


def upload_transform(config, image_shape):
    """How an uploaded file becomes the model's input (a preprocess.Transform): the
    run's dataset's crop (CelebA's centered box, or --crop) resized to the model's
    side, in its channels."""
    from vae_tf.datasets.preprocess import Transform  # the package imports TensorFlow

    height, width, channels = image_shape
    crop = config.crop or (CELEBA_CROP if config.dataset == "celeba" else 0)
    return Transform(crop=crop, size=max(height, width), channels=channels)


def preprocess_upload(data: bytes, config, image_shape) -> np.ndarray:
    """An uploaded file as float32 [H, W, C] in [0, 1], cut and resized as the run's
    dataset was (RequestError when it is not an image or too large)."""
    from vae_tf.datasets.preprocess import BadImage
    from vae_tf.datasets.preprocess import decode as decode_image

    if len(data) > MAX_UPLOAD_BYTES:
        raise RequestError(413, f"That file is {len(data) / 2**20:.1f} MB; the explorer takes "
                                f"images up to {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # noqa: BLE001  Pillow raises many types for a non-image
        raise RequestError(400, "That file is not an image (JPEG, PNG, GIF, WebP, BMP, ...).")
    if width * height > MAX_UPLOAD_PIXELS:
        raise RequestError(413, f"That image is {width}x{height} pixels; the explorer takes "
                                f"images up to {MAX_UPLOAD_PIXELS // 10**6} megapixels.")
    try:
        square, _ = decode_image(data, upload_transform(config, image_shape))
    except BadImage as e:
        raise RequestError(400, f"That image cannot be read ({e}).") from None
    # A model of non-square images (Frey faces) takes the centre of the square.
    height, width = image_shape[:2]
    top, left = (square.shape[0] - height) // 2, (square.shape[1] - width) // 2
    return square[top:top + height, left:left + width].astype(np.float32) / 255.0


def png(image: np.ndarray) -> bytes:
    """An [H, W, C] array in [0, 1] as 8-bit PNG bytes."""
    array = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    buffer = io.BytesIO()
    # Level 1: a 64x64 image compresses in well under a millisecond.
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
        buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode("ascii")


class Explorer:
    """What the page asks of a run, on numpy arrays; every image comes from the
    SavedModel's signatures (through `TrainedRun`)."""

    def __init__(self, run):
        self.run = run
        self.prior_mean, self.prior_scale_tril = self._sampling_prior()
        images = run.test_images(STATS_IMAGES)
        means, logvars = run.encode(images)
        self.gallery_images = images[:GALLERY_SIZE]
        self.gallery_codes = means[:GALLERY_SIZE]
        fitted = run.config.sample_prior == "fitted" and "sampling_prior" in run.signatures
        if fitted:
            self.direction_source = "principal axes of the run's fitted sampling prior"
            self.directions = principal_directions(
                self.prior_scale_tril @ self.prior_scale_tril.T, NUM_DIRECTIONS)
        else:
            self.direction_source = "the most active latent dimensions (test images)"
            self.directions = active_directions(means, logvars, NUM_DIRECTIONS)
        self.attributes, self.attribute_note = self._attributes(means)

    def _sampling_prior(self):
        import tensorflow as tf

        dim = self.run.latent_dim
        if "sampling_prior" not in self.run.signatures:  # an export made before it existed
            return np.zeros(dim, np.float32), np.eye(dim, dtype=np.float32)
        out = self.run.signatures["sampling_prior"]()
        return (tf.cast(out["mean"], tf.float32).numpy(),
                tf.cast(out["scale_tril"], tf.float32).numpy())

    def _attributes(self, means):
        """CelebA's attribute vectors from the test images' codes (as the attributes
        command makes them), or none and the reason."""
        try:
            names, has = self.run.test_attributes()
        except UserError as e:
            return [], str(e)
        has = has[:len(means)]
        vectors = latent.attribute_vectors(means, has)
        counts = has.sum(axis=0)
        usable = [(name, vector, int(n)) for name, vector, n in zip(names, vectors, counts)
                  if not np.isnan(vector).any()]
        featured = lambda item: (FEATURED_ATTRIBUTES + (item[0],)).index(item[0])
        usable.sort(key=featured)  # stable: the rest keep their order
        note = (f"mean code of the test images with the attribute minus that of those "
                f"without ({len(means)} test images)")
        return usable, note

    def info(self) -> dict:
        config = self.run.config
        return {
            "run": os.path.basename(os.path.normpath(self.run.run_dir)),
            "dataset": config.dataset,
            "image_shape": list(self.run.image_shape),
            "latent_dim": self.run.latent_dim,
            "hierarchical": config.architecture == "hierarchical",
            "sample_prior": config.sample_prior,
            "temperature": config.temperature,
            "direction_source": self.direction_source,
            "directions": [{"name": d.name, "label": d.label, "vector": d.vector.tolist()}
                           for d in self.directions],
            "attributes": [{"name": name, "count": count, "vector": vector.tolist()}
                           for name, vector, count in self.attributes],
            "attribute_note": self.attribute_note,
            "sample_grid": SAMPLE_GRID,
            "upload_limit_bytes": MAX_UPLOAD_BYTES,
        }

    def gallery(self) -> dict:
        recons = self.run.reconstruct(self.gallery_images)
        return {"items": [{"image": data_url(x), "reconstruction": data_url(r),
                           "code": z.tolist()}
                          for x, r, z in zip(self.gallery_images, recons, self.gallery_codes)]}

    def decode_png(self, z: np.ndarray) -> bytes:
        return png(self.run.decode(z[None])[0])

    def sample(self, seed: int, temperature: float) -> dict:
        """A grid of codes from the sampling prior at `temperature` (mean +
        temperature * scale_tril @ e, e ~ N(0, I) from `seed`) and their images."""
        codes = latent.prior_codes(SAMPLE_GRID, self.run.latent_dim, seed, temperature,
                                   self.prior_mean, self.prior_scale_tril)
        images = self.run.decode(codes)
        return {"codes": codes.tolist(), "images": [data_url(x) for x in images]}

    def upload(self, data: bytes) -> dict:
        image = preprocess_upload(data, self.run.config, self.run.image_shape)
        code, _ = self.run.encode(image[None])
        recon = self.run.reconstruct(image[None])[0]
        return {"image": data_url(image), "reconstruction": data_url(recon),
                "code": code[0].tolist()}

    # -- what requests carry, checked -------------------------------------------------
    def parse_code(self, body: dict) -> np.ndarray:
        z = body.get("z")
        if not isinstance(z, list) or len(z) != self.run.latent_dim or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in z):
            raise RequestError(400, f"z must be a list of {self.run.latent_dim} numbers.")
        # A huge integer would overflow float(); such a code is refused like NaN.
        z = np.asarray([v if abs(v) < 1e30 else np.nan for v in z], np.float32)
        if not np.isfinite(z).all():
            raise RequestError(400, "z must be finite.")
        return z


def parse_sample_request(body: dict):
    seed, temperature = body.get("seed"), body.get("temperature")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise RequestError(400, "seed must be an integer from 0 to 2^32 - 1.")
    if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
            or not 0 <= temperature <= 10):
        raise RequestError(400, "temperature must be a number from 0 to 10.")
    return seed, float(temperature)


class _Handler(BaseHTTPRequestHandler):
    server_version = "vae_tf-explorer"
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves a slider's updates
    # Headers and body leave in two writes; with Nagle's algorithm the body then
    # waited for the browser's delayed ACK, about 40 ms of every update.
    disable_nagle_algorithm = True
    # Seconds a connection may sit idle or half-sent before its thread lets it go.
    timeout = 60

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _get(self, path):
        if path in ASSETS:
            body, content_type = self.server.assets[path]
            return self._send(200, body, content_type)
        explorer = self.server.explorer
        if path == "/api/info":
            return self._send_json(explorer.info())
        if path == "/api/gallery":
            return self._send_json(explorer.gallery())
        raise RequestError(404, "Not found.")

    def _post(self, path):
        explorer = self.server.explorer
        if path == "/api/upload":
            return self._send_json(explorer.upload(self._body(MAX_UPLOAD_BYTES)))
        if path not in ("/api/decode", "/api/sample"):
            raise RequestError(404, "Not found.")
        try:
            body = json.loads(self._body(MAX_JSON_BYTES))
        except ValueError:
            raise RequestError(400, "The request is not JSON.") from None
        if not isinstance(body, dict):
            raise RequestError(400, "The request is not a JSON object.")
        if path == "/api/decode":
            z = explorer.parse_code(body)
            started = time.perf_counter()
            image = explorer.decode_png(z)
            # The page shows the server's share of each update's latency.
            ms = 1000 * (time.perf_counter() - started)
            return self._send(200, image, "image/png", {"Server-Timing": f"decode;dur={ms:.2f}"})
        return self._send_json(explorer.sample(*parse_sample_request(body)))

    def _answer(self, route):
        try:
            if not self.server.host_allowed(self.headers.get("Host", "")):
                raise RequestError(403, "Unknown Host header.")
            route(self.path.split("?", 1)[0])
        except RequestError as e:
            self._send_json({"error": str(e)}, e.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001  one failed request must not stop the server
            print(f"warning: {self.command} {self.path}: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
            self._send_json({"error": f"The server failed on this request ({type(e).__name__})."},
                            500)

    def _body(self, limit: int) -> bytes:
        """The request body, read into memory up to `limit` bytes. A larger one is read
        and dropped in chunks so that the answer reaches the browser."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError(411, "The request has no Content-Length.") from None
        if length > limit:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise RequestError(413, f"That file is {length / 2**20:.1f} MB; the explorer takes "
                                    f"up to {limit / 2**20:g} MB.")
        return self.rfile.read(length)

    def _send_json(self, value, status: int = 200):
        self._send(status, json.dumps(value).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002  one line per request is noise here
        pass


class ExplorerServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection, the page's assets in memory."""

    daemon_threads = True  # Ctrl-C does not wait for open keep-alive connections

    def __init__(self, host: str, port: int):
        super().__init__((host, port), _Handler)
        self.explorer: Optional[Explorer] = None
        self.assets = {}
        for path, (name, content_type) in ASSETS.items():
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                self.assets[path] = (f.read(), content_type)
        # On a loopback address, only requests naming it: a web page on another site
        # cannot reach the explorer through a DNS name rebound to 127.0.0.1.
        self.loopback = is_loopback(host)
        port = self.server_address[1]
        self.allowed_hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", host)}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def host_allowed(self, host_header: str) -> bool:
        return not self.loopback or host_header.lower() in self.allowed_hosts


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_server(host: str, port: int) -> ExplorerServer:
    """Listens on host:port (port 0: a free one); UserError when that is impossible."""
    try:
        return ExplorerServer(host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"Port {port} on {host} is in use: choose another with --port "
                            "(--port=0 takes a free one).") from None
        raise UserError(f"Cannot listen on {host}:{port} ({e.strerror or e}): check --host "
                        "and --port.") from None


def serve(run_dir: str, data_dir: Optional[str], host: str, port: int) -> None:
    """Opens the run, listens, prints the address and serves until Ctrl-C."""
    from vae_tf.views.trained import TrainedRun

    run = TrainedRun(run_dir, data_dir)
    server = open_server(host, port)
    try:
        if not server.loopback:
            print(f"warning: --host={host} makes the explorer reachable from other machines; "
                  "anyone who reaches it sees this run's test images and uses its model, "
                  "with no password.", file=sys.stderr, flush=True)
        server.explorer = Explorer(run)
        print(f"Exploring {run.run_dir} at {server.url} (Ctrl-C stops it)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.", flush=True)
    finally:
        server.server_close()
