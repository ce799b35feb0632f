"""The explorer's latency: from a direction slider's input event to the new image on
screen, in Debian's headless Chromium, on a trained run.

    python benchmarks/explorer_latency.py outputs/<run> [--steps=60] [--data_dir=DIR]

Starts `python -m vae_tf.explore --port=0` on the run as a user would, opens its
page and moves the first direction slider two ways: single steps (an arrow key,
one input event, each image awaited before the next step) and a drag (a mouse move
every 10 ms, nothing awaited: the page keeps one request in flight and then sends
the newest code). Prints the median, 90th percentile and maximum of each, and the
server's share (decoding and PNG encoding, from the Server-Timing header).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def start_explorer(run_dir, data_dir):
    args = [sys.executable, "-m", "vae_tf.explore", f"--run_dir={run_dir}", "--port=0"]
    if data_dir:
        args.append(f"--data_dir={data_dir}")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # SIGINT at its default in the explorer, which is stopped with it: a benchmark
    # started with nohup or in the background would pass on an ignored SIGINT.
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stdout:
        if line.startswith("Exploring "):
            return process, line.split(" at ")[1].split()[0]
    sys.exit(f"error: the explorer did not start (exit status {process.wait()}).")


def summary(name, values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return (f"{name} median {statistics.median(values):.1f} ms, 90th percentile {p90:.1f} ms, "
            f"max {values[-1]:.1f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--steps", type=int, default=60, help="single slider steps to time")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    process, url = start_explorer(args.run_dir, args.data_dir)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", timeout=120000)
            page.wait_for_function("() => window.explorer.updates >= 1")
            info = page.evaluate("[explorer.info.image_shape, explorer.info.latent_dim]")
            print(f"run {args.run_dir}: images {info[0]}, {info[1]} latent dimensions, "
                  f"{os.cpu_count()} CPUs")
            slider = page.locator("#directions input[type=range]").first
            slider.focus()
            page.keyboard.press("ArrowRight")  # one warm-up update
            page.wait_for_function("() => window.explorer.updates >= 2")

            first = page.evaluate("explorer.updates")
            for _ in range(args.steps):
                before = page.evaluate("explorer.updates")
                page.keyboard.press("ArrowRight" if _ < args.steps // 2 else "ArrowLeft")
                page.wait_for_function("(n) => explorer.updates > n", arg=before)
            latencies = page.evaluate("(n) => explorer.latencies.slice(n)", first)
            server = page.evaluate("(n) => explorer.serverMs.slice(n)", first)
            print(summary(f"single steps ({len(latencies)} updates): slider to image", latencies))
            print(summary("  of which the server's decode and PNG:", server))

            box = slider.bounding_box()
            y = box["y"] + box["height"] / 2
            first = page.evaluate("explorer.updates")
            page.mouse.move(box["x"] + 2, y)
            page.mouse.down()
            moves, started = 50, time.perf_counter()
            for k in range(1, moves + 1):
                page.mouse.move(box["x"] + 2 + (box["width"] - 4) * k / moves, y)
                time.sleep(0.01)
            page.mouse.up()
            seconds = time.perf_counter() - started
            page.wait_for_function(
                "() => JSON.stringify(explorer.code) === JSON.stringify(currentCode())")
            latencies = page.evaluate("(n) => explorer.latencies.slice(n)", first)
            print(summary(f"drag ({moves} mouse moves in {seconds:.2f} s, {len(latencies)} images "
                          "shown): input to image", latencies))
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


if __name__ == "__main__":
    main()
