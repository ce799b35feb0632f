"""The explore command: a real server on a free port, driven in Debian's headless
Chromium through playwright (no browser is downloaded), and its error exits."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import (CELEBA_DIR, REPO, copy_celeba_images, ctrl_c_reaches_it, error_line,
                      require_dir, run_module, tiny_config)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LATENT, SIDE = 4, 28
# The pixels of an <img> as the page has them: RGBA [H * W * 4].
PIXELS = """(image) => {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
}"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A briefly trained run (every latent dimension active) with a fitted sampling prior."""
    from vae_tf import train

    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(latent_dim=LATENT, epochs=2, steps_per_epoch=30,
                         sample_prior="fitted", output_dir=str(out), run_name="explore")
    return train.run(config)["run_dir"]


@pytest.fixture(scope="module")
def run(run_dir):
    from vae_tf.views.trained import TrainedRun

    return TrainedRun(run_dir)


class Explorer:
    """`python -m vae_tf.explore` in a subprocess, as a user starts it."""

    def __init__(self, *args):
        env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vae_tf.explore", *args], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=ctrl_c_reaches_it)
        self.lines = []
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    def wait_for_address(self, timeout=240) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.lines:
                if line.startswith("Exploring "):
                    return line.split(" at ")[1].split()[0]
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            time.sleep(0.2)
        raise AssertionError("no address printed: " + "".join(self.lines)[-3000:])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def explorer(run_dir):
    server = Explorer(f"--run_dir={run_dir}", "--port=0")
    server.url = server.wait_for_address()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=60000)
    page.wait_for_function("() => window.explorer.updates >= 1 && "
                           "document.querySelectorAll('#samples img').length > 0")
    page.errors = errors
    return page


@pytest.fixture
def page(browser, explorer):
    page = open_page(browser, explorer.url)
    yield page
    assert not page.errors
    page.close()


def pixels(page, selector) -> np.ndarray:
    """The image's pixels [H, W, 3] as the page shows them."""
    flat = np.array(page.eval_on_selector(selector, PIXELS), np.int32)
    size = page.eval_on_selector(selector, "(i) => [i.naturalHeight, i.naturalWidth]")
    return flat.reshape(size[0], size[1], 4)[..., :3]


def state(page, name):
    return page.evaluate(f"window.explorer.{name}")


def wait_for_update(page, before, action):
    """Runs `action`, then waits until the current image has been replaced and no
    further request is pending (the code on screen is the page's current code)."""
    action()
    page.wait_for_function(
        "(n) => window.explorer.updates > n && JSON.stringify(window.explorer.code) === "
        "JSON.stringify(currentCode())", arg=before)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Model output [H, W, 1] in [0, 1] as the PNG the server sends, as RGB."""
    return np.repeat(np.round(np.clip(images, 0, 1) * 255).astype(np.int32), 3, axis=-1)


def post(url, body: bytes = None, content_type="application/json", host=None):
    """(status, body) of a POST of `body` to `url`, or of a GET when `body` is None."""
    headers = {"Content-Type": content_type} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    if host:
        request.add_unredirected_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def decode_on_server(url, code) -> np.ndarray:
    import io

    status, body = post(url + "api/decode", json.dumps({"z": list(map(float, code))}).encode())
    assert status == 200, body
    return np.repeat(np.asarray(Image.open(io.BytesIO(body)), np.int32)[..., None], 3, axis=-1)


# -- the page ----------------------------------------------------------------------
def test_page_loads_with_every_panel(page, run):
    assert page.title() == "vae_tf explorer"
    about = page.inner_text("#about")
    assert "synthetic, 28x28x1 images, 4 latent dimensions" in about and "fitted" in about
    assert page.locator("#directions input[type=range]").count() == LATENT
    assert page.locator("#samples img").count() == 16
    assert page.locator("#gallery img").count() == 24
    assert "trained on synthetic" in page.inner_text("#attribute-note")
    # The start code is test image 0's mean code: for a flat VAE its decoding is
    # the image's reconstruction, pixel for pixel.
    test_images = run.test_images(24)
    expected = to_pixels(run.reconstruct(test_images[:1])[0])
    np.testing.assert_array_equal(pixels(page, "#current"), expected)
    np.testing.assert_array_equal(pixels(page, "#chosen-image"), to_pixels(test_images[0]))
    np.testing.assert_array_equal(pixels(page, "#chosen-reconstruction"), expected)
    # The download is the image on screen, as a PNG at the model's size.
    assert page.get_attribute("#download", "href") == page.get_attribute("#current", "src")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "vae_tf_explorer.png"
    saved = np.asarray(Image.open(download.value.path()))
    np.testing.assert_array_equal(saved, expected[..., 0])


def test_direction_slider_changes_the_image(page, explorer, run):
    before = pixels(page, "#current")
    base = np.array(state(page, "base"))
    slider = page.locator("#directions input[type=range]").first
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2

    def drag():  # a real drag: press at the middle (0), release near the right end
        page.mouse.move(box["x"] + box["width"] / 2, y)
        page.mouse.down()
        for step in range(1, 9):
            page.mouse.move(box["x"] + box["width"] * (0.5 + 0.05 * step), y)
        page.mouse.up()

    wait_for_update(page, state(page, "updates"), drag)
    amount = state(page, "directions[0]")
    assert amount > 1.0
    after = pixels(page, "#current")
    assert np.abs(after - before).mean() > 1.0  # on a 0-255 scale
    # The code moved along the first principal axis of the fitted prior, by `amount`
    # standard deviations, and the image is the decoder's at exactly that code.
    vector = np.array(state(page, "info.directions[0].vector"))
    code = np.array(state(page, "code"))
    np.testing.assert_allclose(code, base + amount * vector, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(after, decode_on_server(explorer.url, code))
    mean, scale_tril = (run.signatures["sampling_prior"]()[k].numpy() for k in ("mean", "scale_tril"))
    cov = scale_tril @ scale_tril.T
    np.testing.assert_allclose(vector @ cov @ vector, np.dot(vector, vector) ** 2,
                               rtol=1e-3)  # an eigenvector, scaled by its standard deviation
    assert np.dot(vector, vector) == pytest.approx(np.linalg.eigvalsh(cov)[-1], rel=1e-3)
    latencies = state(page, "latencies")
    print(f"slider-to-image latencies (ms): {[round(v) for v in latencies]}")
    assert all(0 < v < 2000 for v in latencies)


def test_sample_click_sets_the_code(page, run):
    from vae_tf.views import latent

    codes = np.array(state(page, "samples"))
    out = run.signatures["sampling_prior"]()
    # Seed 0 at the run's temperature, from the export's sampling prior.
    np.testing.assert_allclose(codes, latent.prior_codes(
        16, LATENT, 0, 1.0, out["mean"].numpy(), out["scale_tril"].numpy()), atol=1e-5)
    wait_for_update(page, state(page, "updates"), lambda: page.click("#samples img >> nth=5"))
    np.testing.assert_array_equal(np.array(state(page, "code")), codes[5])
    np.testing.assert_array_equal(pixels(page, "#current"), pixels(page, "#samples img >> nth=5"))
    # Another seed draws other codes; the same seed the same ones.
    same = "(c) => window.explorer.samples[0].every((v, i) => v === c[i])"
    page.fill("#seed", "7")
    page.dispatch_event("#seed", "change")
    page.wait_for_function(f"(c) => !({same})(c)", arg=codes[0].tolist())
    page.fill("#seed", "0")
    page.dispatch_event("#seed", "change")
    page.wait_for_function(same, arg=codes[0].tolist())


def test_uploaded_test_image_shows_its_reconstruction(page, run, tmp_path):
    image = run.test_images(4)[3]
    path = tmp_path / "test3.png"
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(path)
    old = page.get_attribute("#chosen-reconstruction", "src")
    page.set_input_files("#upload", str(path))
    page.wait_for_function("(old) => document.getElementById('chosen-reconstruction').src !== old",
                           arg=old)
    np.testing.assert_array_equal(pixels(page, "#chosen-image"), to_pixels(image))
    expected = to_pixels(run.reconstruct(image[None])[0])
    assert np.abs(pixels(page, "#chosen-reconstruction") - expected).max() <= 1
    wait_for_update(page, state(page, "updates"), lambda: page.click("#use-image"))
    assert np.abs(pixels(page, "#current") - expected).max() <= 1

    # A larger colour photo is cut to its centred square and resized, as the dataset's
    # files are, into the model's one channel.
    from vae_tf.datasets.preprocess import Transform, decode

    rgb = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    old = page.get_attribute("#chosen-image", "src")
    page.set_input_files("#upload", str(path))
    page.wait_for_function("(old) => document.getElementById('chosen-image').src !== old", arg=old)
    square, _ = decode(path.read_bytes(), Transform(crop=0, size=SIDE, channels=1))
    np.testing.assert_array_equal(pixels(page, "#chosen-image"),
                                  np.repeat(square.astype(np.int32), 3, axis=-1))
    assert page.is_hidden("#message")


def test_bad_uploads_show_one_message_and_the_app_still_answers(page, explorer, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    page.set_input_files("#upload", str(notes))
    page.wait_for_selector("#message", state="visible")
    assert page.inner_text("#message") == ("That file is not an image (JPEG, PNG, GIF, WebP, "
                                           "BMP, ...).")
    # Still answering: a slider still changes the image.
    before = pixels(page, "#current")
    wait_for_update(page, state(page, "updates"),
                    lambda: page.fill("#directions input[type=range] >> nth=1", "3"))
    assert np.abs(pixels(page, "#current") - before).mean() > 1.0

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(9 * 2**20))
    page.set_input_files("#upload", str(big))
    page.wait_for_function("() => document.getElementById('message').textContent.includes('9.0 MB')")
    assert "up to 8 MB" in page.inner_text("#message")

    # The server refuses the same files itself, with the page's messages, and serves on.
    status, body = post(explorer.url + "api/upload", big.read_bytes(), "application/octet-stream")
    assert status == 413 and "up to 8 MB" in json.loads(body)["error"]
    status, body = post(explorer.url + "api/upload", notes.read_bytes(), "application/octet-stream")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    with urllib.request.urlopen(explorer.url + "api/info", timeout=60) as response:
        assert json.load(response)["latent_dim"] == LATENT


def test_two_tabs_are_independent(browser, explorer):
    first, second = open_page(browser, explorer.url), open_page(browser, explorer.url)
    start = state(second, "code")
    wait_for_update(first, state(first, "updates"), lambda: first.click("#samples img >> nth=2"))
    assert state(first, "code") == state(first, "samples[2]") != start
    assert state(second, "code") == start
    wait_for_update(second, state(second, "updates"),
                    lambda: second.fill("#directions input[type=range] >> nth=0", "-2"))
    assert state(first, "code") == state(first, "samples[2]")
    assert state(first, "directions[0]") == 0 and state(second, "directions[0]") == -2
    assert not np.array_equal(pixels(first, "#current"), pixels(second, "#current"))
    first.close()
    second.close()


def test_blend_moves_between_two_codes(page, explorer):
    a = np.array(state(page, "blendA"))
    b = np.array(state(page, "blendB"))
    assert not np.array_equal(a, b)
    wait_for_update(page, state(page, "updates"), lambda: page.fill("#blend", "0.25"))
    code = np.array(state(page, "code"))
    np.testing.assert_allclose(code, 0.75 * a + 0.25 * b, atol=1e-6)
    np.testing.assert_array_equal(pixels(page, "#current"), decode_on_server(explorer.url, code))


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory):
    """A tiny run on 40 real faces (every third in the test split) with CelebA's
    attribute file."""
    from vae_tf import train
    from vae_tf.config import Config
    from vae_tf.datasets import celeba

    source = require_dir(CELEBA_DIR, "CelebA img_align_celeba + list_attr_celeba.zip")
    root = tmp_path_factory.mktemp("celeba")
    names = copy_celeba_images(root / celeba.IMAGES, 40)
    (root / celeba.PARTITION).write_text(
        "".join(f"{n} {2 if i % 3 == 0 else 0}\n" for i, n in enumerate(names)))
    shutil.copy(os.path.join(source, celeba.ATTRIBUTES_ZIP), root)
    config = Config(dataset="celeba", data_dir=str(root), cache_dir=str(root / "cache"),
                    image_size=16, conv_channels=(8, 16), latent_dim=4, batch_size=8,
                    epochs=1, steps_per_epoch=3, eval_steps=1, grid_size=2,
                    output_dir=str(root / "out"), run_name="faces")
    return train.run(config)["run_dir"], root / celeba.IMAGES / names[1]


def test_celeba_attribute_sliders_and_uploads_cut_like_the_dataset(celeba_run, browser):
    from vae_tf.views import latent
    from vae_tf.datasets.preprocess import Transform, decode
    from vae_tf.views.trained import TrainedRun
    from vae_tf.views import explorer as views

    run_dir, original = celeba_run
    run = TrainedRun(run_dir)
    model = views.Explorer(run)
    names = [name for name, _, _ in model.attributes]
    assert names[0] == "Smiling" and "Eyeglasses" not in names[4:]
    codes, _ = run.encode(run.test_images())
    all_names, has = run.test_attributes()
    expected = latent.attribute_vectors(codes, has)[all_names.index("Smiling")]
    np.testing.assert_allclose(model.attributes[0][1], expected, rtol=1e-6)
    # A 178x218 original: CelebA's centred 148-pixel box, resized to the run's 16x16.
    upload = model.upload(original.read_bytes())
    import base64
    import io

    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(upload["image"].split(",")[1]))))
    square, _ = decode(original.read_bytes(), Transform(crop=148, size=16, channels=3))
    np.testing.assert_array_equal(shown, square)

    server = views.open_server("127.0.0.1", 0)
    server.explorer = model
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = open_page(browser, server.url)
        base = np.array(state(page, "base"))
        wait_for_update(page, state(page, "updates"), lambda: page.fill(
            "#attributes input[data-name=Smiling]", "1.5"))
        np.testing.assert_allclose(state(page, "code"), base + 1.5 * expected, atol=1e-5)
        assert not page.errors
        page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_hierarchy_is_explored_through_its_top_group(tmp_path):
    import base64
    import io

    from vae_tf import train
    from vae_tf.views.trained import TrainedRun
    from vae_tf.views import explorer as views

    config = tiny_config(architecture="hierarchical", conv_channels=(8,), latent_dim=2,
                         hierarchy="1x1,7x1", blocks_per_stage=1, sample_prior="fitted",
                         epochs=1, steps_per_epoch=4,
                         output_dir=str(tmp_path), run_name="hierarchy")
    run = TrainedRun(train.run(config)["run_dir"])
    model = views.Explorer(run)
    info = model.info()
    assert info["hierarchical"] and info["latent_dim"] == 2  # the 1x1 group's 2 channels
    assert [d["name"] for d in info["directions"]] == ["PC1", "PC2"]
    as_array = lambda url: np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",")[1]))))
    sample = model.sample(seed=3, temperature=0.5)
    assert np.array(sample["codes"]).shape == (16, 2)
    z = np.array(sample["codes"][0], np.float32)
    decoded = np.asarray(Image.open(io.BytesIO(model.decode_png(z))))
    np.testing.assert_array_equal(decoded, as_array(sample["images"][0]))
    np.testing.assert_array_equal(decoded, to_pixels(run.decode(z[None])[0])[..., 0])
    # An upload's reconstruction is the export's (every group at its posterior mean).
    image = run.test_images(1)[0]
    buffer = io.BytesIO()
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(buffer, format="PNG")
    upload = model.upload(buffer.getvalue())
    np.testing.assert_array_equal(as_array(upload["reconstruction"]),
                                  to_pixels(run.reconstruct(image[None])[0])[..., 0])
    np.testing.assert_allclose(upload["code"], run.encode(image[None])[0][0], atol=1e-6)


def test_latency_benchmark_prints_its_figures(run_dir, browser):
    import re

    result = subprocess.run(
        [sys.executable, os.path.join("benchmarks", "explorer_latency.py"), str(run_dir),
         "--steps=4"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    single = re.search(r"single steps \(4 updates\): slider to image median ([0-9.]+) ms",
                       result.stdout)
    assert single and float(single.group(1)) > 0, result.stdout
    assert re.search(r"of which the server's decode and PNG: median [0-9.]+ ms", result.stdout)
    assert re.search(r"drag \(50 mouse moves in [0-9.]+ s, [0-9]+ images shown\)", result.stdout)


# -- what the server refuses -----------------------------------------------------------
def test_server_sends_only_its_assets_and_checks_requests(explorer):
    def get(path, host=None):
        return post(explorer.url.rstrip("/") + path, host=host)

    assert get("/explorer.js")[0] == 200
    for path in ("/../../etc/passwd", "/%2e%2e/config.json", "/config.json",
                 "/saved_model/saved_model.pb", "/explorer_static/index.html"):
        assert get(path)[0] == 404, path
    # A page of another site that rebinds its name to 127.0.0.1 is refused.
    assert get("/api/info", host="attacker.example:80")[0] == 403
    decode = explorer.url + "api/decode"
    for body in (b"not json", b"[1, 2]", b'{"z": [1, 2]}', b'{"z": [1, 2, 3, "4"]}',
                 b'{"z": [1, 2, 3, NaN]}', b'{"z": [1, 2, 3, 1e400]}',
                 b'{"z": [1, 2, 3, ' + b"9" * 500 + b"]}"):
        status, answer = post(decode, body)
        assert status == 400 and json.loads(answer)["error"], body
    status, _ = post(explorer.url + "api/sample", b'{"seed": -1, "temperature": 1}')
    assert status == 400
    assert get("/api/info")[0] == 200


def test_is_loopback():
    from vae_tf.views.explorer import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_principal_directions_are_scaled_eigenvectors():
    from vae_tf.views.explorer import principal_directions

    cov = np.array([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 9.0]])
    directions = principal_directions(cov, 2)
    assert [d.name for d in directions] == ["PC1", "PC2"]
    np.testing.assert_allclose(directions[0].vector, [0, 0, 3], atol=1e-6)
    np.testing.assert_allclose(directions[1].vector, [2, 0, 0], atol=1e-6)
    assert directions[0].label == "64.3% of variance"


# -- error exits -------------------------------------------------------------------------
def test_not_a_run_and_unexported_run_are_one_error_line(run_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "config.json" in error_line(run_module("vae_tf.explore", f"--run_dir={empty}"))
    assert "does not exist" in error_line(
        run_module("vae_tf", "explore", f"--run_dir={tmp_path / 'nowhere'}"))
    unexported = tmp_path / "unexported"
    shutil.copytree(run_dir, unexported, ignore=shutil.ignore_patterns("saved_model"))
    assert "no complete saved_model/" in error_line(
        run_module("vae_tf.explore", f"--run_dir={unexported}"))


def test_port_in_use_is_one_error_line(run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(run_module("vae_tf.explore", f"--run_dir={run_dir}", f"--port={port}"))
    assert f"Port {port} on 127.0.0.1 is in use" in line


def test_ctrl_c_stops_the_server(explorer):
    explorer.process.send_signal(signal.SIGINT)
    assert explorer.process.wait(30) == 0
    assert "Stopped." in "".join(explorer.lines)
    assert "Traceback" not in "".join(explorer.lines)
