"""The run report: one static HTML page per run, and one page comparing runs
(`python -m vae_tf.report` writes them on demand).

Training rewrites <run>/report.html after every epoch. A page embeds its images as
base64 data URIs, so the one file opens from the file system in any browser, with
no server, and still shows everything after it is copied or mailed elsewhere.
The report reads only the run directory (config.json, metrics.csv, images/, and
where the commands wrote them eval.json's FID and the newest pictures/ of scatter
and attributes), through `vae_tf.run.rundir`; those commands rewrite it when they add one.
"""

import base64
import dataclasses
import html
import io
import math
import os
import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from vae_tf import temperatures
from vae_tf.config import Config, group_sides
from vae_tf.run import files, rundir


# The curves drawn, as (metrics.csv column, panel title). metrics.csv holds them per
# epoch for the training split and, prefixed val_, for the validation split.
CURVES = (("loss", "loss: negative ELBO (nats)"),
          ("reconstruction", "reconstruction: -log p(x|z) (nats)"),
          ("kl", "KL(q(z|x) || N(0, I)) (nats)"),
          ("kl_groups", "KL per latent group, validation split (nats; g0 = top)"),
          ("bits_per_dim", "negative ELBO in bits per dimension"),
          ("kl_weight", "KL weight (beta) at each epoch's last step"),
          ("active_units", "active units (validation images)"),
          ("grad_norm", "gradients' global norm (epoch mean)"),
          ("skipped_updates", "updates skipped (per epoch)"))
# The curves whose first epochs may be left off the axis (`_leave_early_peaks_off`);
# the KL weight's and the active units' ramps are the story of their panels.
FALLING_CURVES = ("loss", "reconstruction", "kl", "kl_groups", "bits_per_dim", "grad_norm")
# Headline metrics of the comparison table, in order.
COMPARED = ("loss", "val_loss", "val_bits_per_dim", "val_reconstruction", "val_kl",
            "kl_weight", "active_units")
# A report shows at most this many epochs' sample grids (first and last included).
MAX_EPOCH_THUMBS = 12
THUMB_SIDE = 240  # pixels; thumbnails are shrunk by an integer factor to about this
# The newest attribute pictures a report shows.
MAX_ATTRIBUTE_PICTURES = 4
# eval.json's FID section: (key, what the row shows).
FID_ROWS = (("samples", "FID, samples from the prior vs test images"),
            ("reconstructions", "FID, reconstructions vs test images"),
            ("kid_samples", "KID, samples vs test images"),
            ("kid_reconstructions", "KID, reconstructions vs test images"))


@dataclasses.dataclass
class RunRecord:
    """What a report shows of one run directory: its settings and its metrics."""
    dir: rundir.RunDir
    settings: dict  # config.json as written
    rows: list  # metrics.csv: one dict of floats per epoch, in epoch order

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def config(self):
        """The settings as a Config, or None for a run written by another version."""
        try:
            return Config.from_dict(self.settings)
        except (ValueError, TypeError):
            return None

    def x(self):
        """Optimizer steps at each epoch's end (epoch numbers for older runs)."""
        return [r["step"] if "step" in r else r["epoch"] for r in self.rows]


def load_run(run_dir: str) -> RunRecord:
    run = rundir.RunDir(run_dir)
    return RunRecord(run, run.read_settings(), run.read_metrics())


# -- figures -----------------------------------------------------------------------
def curves_png(runs: list) -> bytes:
    """The CURVES that the runs logged against training steps, one colour per run:
    solid for the training split, dashed for the validation split."""
    logged = {key for run in runs for row in run.rows[:1] for key in row}
    groups = sorted((k for k in logged if re.fullmatch(r"val_kl_group\d+", k)),
                    key=lambda k: int(k[len("val_kl_group"):]))
    shown = [(key, title) for key, title in CURVES
             if key == "loss" or key in logged or "val_" + key in logged
             or (key == "kl_groups" and groups)]
    rows = math.ceil((len(shown) + 1) / 3)  # a last cell for the legend
    fig = Figure(figsize=(13, 3.75 * rows), dpi=90, layout="constrained")
    axes = fig.subplots(rows, 3).ravel()
    for ax in axes[len(shown):-1]:
        ax.axis("off")
    panels = dict(zip((key for key, _ in shown), axes))
    drawn = {key: [] for key in panels}  # each panel's plotted series of values
    for i, run in enumerate(runs):
        color, x = f"C{i % 10}", run.x()
        for key, ax in panels.items():
            for prefix, style in (("", "-"), ("val_", "--")):
                if run.rows and prefix + key in run.rows[0]:
                    drawn[key].append([r[prefix + key] for r in run.rows])
                    ax.plot(x, drawn[key][-1], style, color=color, marker="o", markersize=3)
        if "kl_groups" in panels and run.rows and groups[0] in run.rows[0]:
            for g, key in enumerate(groups):
                drawn["kl_groups"].append([r[key] for r in run.rows])
                panels["kl_groups"].plot(x, drawn["kl_groups"][-1], "--", color=color,
                                         alpha=1.0 - 0.6 * g / len(groups))
                panels["kl_groups"].annotate(f"g{g}", (x[-1], run.rows[-1][key]),
                                             fontsize=7, color=color)
        config = run.config
        if config is not None and config.free_bits > 0:
            panels["kl"].axhline(config.free_bits * config.latent_dim, ls=":", color=color)
    for key, title in shown:
        if key in FALLING_CURVES:
            _leave_early_peaks_off(panels[key], drawn[key])
        panels[key].set_title(title, fontsize=10)
        panels[key].set_xlabel("training step")
        panels[key].grid(alpha=0.3)
    legend = axes[-1]
    legend.axis("off")
    handles = [Line2D([], [], color=f"C{i % 10}", lw=3, label=run.name)
               for i, run in enumerate(runs)]
    handles += [Line2D([], [], color="k", ls="-", label="training split (epoch mean)"),
                Line2D([], [], color="k", ls="--", label="validation split"),
                Line2D([], [], color="k", ls=":", label="free-bits floor")]
    legend.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _leave_early_peaks_off(ax, series: list) -> None:
    """Fits the top of the y-axis to what follows each series' first tenth (its
    first value at least) where the early values would stretch the axis by more
    than half again: a loss that starts at 400 nats and settles near 84 would
    otherwise draw the epochs a user is watching as a flat line. A note says how
    high the early ones go. (Early values below the rest, a KL rising from its
    first epochs, stay in view: they are the curve's story.)"""
    later, every = [], []
    for values in series:
        every += [v for v in values if math.isfinite(v)]
        if len(values) >= 3:
            later += [v for v in values[max(1, math.ceil(len(values) / 10)):]
                      if math.isfinite(v)]
    if not later or max(later) == min(later):
        return
    low, high = min(every), max(later)
    span = high - low
    if max(every) <= high + 0.5 * span:
        return
    ax.set_ylim(low - 0.05 * span, high + 0.1 * span)
    peak = max(every)
    peak = f"{peak:,.0f}" if abs(peak) >= 1e4 else f"{peak:.4g}"
    ax.text(0.98, 0.97, f"first epochs up to {peak}, off the top", transform=ax.transAxes,
            ha="right", va="top", fontsize=8, color="0.35")


def _thumbnail(path: str) -> bytes:
    """The PNG shrunk by an integer factor (sharp pixels) to about THUMB_SIDE wide."""
    image = Image.open(path)
    factor = max(1, image.width // THUMB_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _evenly(items: list, count: int) -> list:
    if len(items) <= count:
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]


# -- HTML --------------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; }
img { image-rendering: pixelated; border: 1px solid #ddd; }
img.curves, img.plot { image-rendering: auto; max-width: 100%; }
code { background: #f5f5f5; padding: 1px 4px; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _img(png: bytes, alt: str, css_class: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _figure(png: bytes, caption: str, css_class: str = "") -> str:
    return (f"<figure>{_img(png, caption, css_class)}<figcaption>{html.escape(caption)}"
            "</figcaption></figure>")


def _zoomed(png: bytes, min_width: int = 450) -> bytes:
    """The PNG enlarged by an integer factor to at least `min_width` (the traversal of
    many latent dimensions is tall and narrow, and unreadable at its own size)."""
    image = Image.open(io.BytesIO(png))
    factor = -(-min_width // image.width)
    if factor <= 1:
        return png
    buffer = io.BytesIO()
    image.resize((image.width * factor, image.height * factor), Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def _table(header: list, rows: list) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _metric_names(rows: list) -> list:
    names = [k for k in rows[0] if k != "epoch"] if rows else []
    return sorted(names, key=lambda k: (k.startswith("val_"), k))


def _status(run: RunRecord) -> str:
    exported = run.dir.is_finished()
    return (f"{len(run.rows)} of {run.settings.get('epochs', '?')} epochs done"
            + ("; SavedModel exported" if exported else ""))


def run_page(run: RunRecord) -> str:
    """The HTML of one run's report."""
    parts = [f"<p>Run directory <code>{html.escape(os.path.abspath(run.dir.path))}</code>: "
             f"{html.escape(_status(run))}. Live curves and images: "
             f"<code>tensorboard --logdir {html.escape(run.dir.tensorboard_dir)}"
             "</code>.</p>"]
    if run.rows:
        final = run.rows[-1]
        key = "val_loss" if "val_loss" in final else "loss"
        best = min(run.rows, key=lambda r: r[key])
        parts.append(f"<h2>Metrics</h2><p>Final: the last epoch. Best: the epoch with the "
                     f"lowest <code>{key}</code>. Losses in nats per image; "
                     "<code>val_</code> is the validation split.</p>")
        parts.append(_table(["metric", f"final (epoch {int(final['epoch'])})",
                             f"best (epoch {int(best['epoch'])})"],
                            [[k, final[k], best[k]] for k in _metric_names(run.rows)]))
        parts.append(_groups_table(run))
        test = run.dir.read_test_metrics()
        if test:
            parts.append("<h2>Test split</h2><p>Evaluated once, after the last epoch "
                         "(<code>test.json</code>); nothing during training saw it.</p>")
            parts.append(_table(["metric", "value"], [[k, v] for k, v in sorted(test.items())]))
        parts.append("<h2>Curves</h2>" + _img(curves_png([run]), "training curves", "curves"))
    latest = run.dir.grids("samples")
    if latest:
        epoch = rundir.epoch_of_grid(latest[-1])
        parts.append(f"<h2>Latest grids (epoch {rundir.epoch_of_grid(latest[-1])})</h2>")
        for kind, caption in (("recon", "validation images (left) and reconstructions (right)"),
                              ("samples", "samples: decoder means at fixed z ~ N(0, I)"),
                              ("traversal", "traversal: one latent dimension per row, "
                                            "swept from -3 to 3 at one image's mean code")):
            path = run.dir.grid(kind, epoch)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    parts.append(_figure(_zoomed(f.read()), caption))
        parts.append("<h2>Samples across epochs</h2><p>The same latent codes every epoch.</p>")
        parts += [_figure(_thumbnail(p), f"epoch {rundir.epoch_of_grid(p)}")
                  for p in _evenly(latest, MAX_EPOCH_THUMBS)]
    parts += _command_outputs(run)
    parts.append("<h2>Configuration</h2>")
    parts.append(_table(["setting", "value"], [[k, _show(v)] for k, v in sorted(run.settings.items())]))
    return _page(f"VAE run {run.name}", "\n".join(parts))


def _groups_table(run: RunRecord) -> str:
    """A hierarchy's latent groups at the last epoch, top first: each one's side, units,
    KL (the validation split's where it was logged) and active units; "" for a run
    that logged no active units per group (a flat model, an older run)."""
    final, config = run.rows[-1], run.config
    if config is None or "active_units_group0" not in final:
        return ""
    split = "val_" if "val_kl_group0" in final else ""
    rows = []
    for g, side in enumerate(group_sides(config.hierarchy)):
        active = int(final[f"active_units_group{g}"])
        rows.append([g, f"{side}x{side}", side * side * config.latent_dim,
                     final[f"{split}kl_group{g}"], active, "unused" if active == 0 else ""])
    return (f"<h2>Latent groups</h2><p>Epoch {int(final['epoch'])}, top group first; KL in "
            f"nats per image{' on the validation split' if split else ''}; active units on "
            "the fixed validation images, each group's posterior taken with the groups "
            "above at their posterior means.</p>"
            + _table(["group", "side", "units", "KL (nats)", "active units", ""], rows))


def _command_outputs(run: RunRecord) -> list:
    """What the commands added to the run: eval.json's FID, the newest scatter plot
    and the newest attribute pictures."""
    parts = []
    evaluation = run.dir.read_evaluation()
    if evaluation.get("reconstruction") is not None:
        parts.append(f"<h2>Test likelihood</h2><p>From <code>eval.json</code> (the evaluate "
                     f"command): {evaluation.get('num_images')} test images, "
                     f"{html.escape(str(evaluation.get('likelihood')))}. Lower is better.</p>")
        parts.append(_table(["figure", "nats per image", "bits/dim"], _evaluation_rows(evaluation)))
    fid = fid_section(evaluation)
    if fid:
        parts.append(f"<h2>Sample quality</h2><p>From <code>eval.json</code>: "
                     f"{fid['num_images']} test images and as many samples and "
                     f"reconstructions; features: {html.escape(str(fid['network']))}. "
                     + (f"Samples at temperature {temperatures.text(fid['temperature'])}. "
                        if "temperature" in fid else "")
                     + "Lower is better.</p>")
        parts.append(_table(["figure", "value"],
                            [[name, fid[key]] for key, name in FID_ROWS if key in fid]))
    for path in run.dir.latest_pictures(rundir.SCATTER):
        parts.append("<h2>Latent map</h2>" + _figure(_file(path), os.path.basename(path), "plot"))
    attributes = run.dir.latest_pictures(rundir.ATTRIBUTE, MAX_ATTRIBUTE_PICTURES)
    if attributes:
        parts.append("<h2>Attribute vectors</h2>")
        parts += [_figure(_file(path), os.path.basename(path), "plot") for path in attributes]
    return parts


def _evaluation_rows(e: dict) -> list:
    """The likelihood rows of an eval.json: (figure, nats, bits/dim), those it has."""
    k = e.get("num_importance_samples")
    rows = []
    for key, name in (("neg_elbo", "negative ELBO"), ("nll_iwae", f"NLL_IWAE (K={k})"),
                      ("reconstruction", "reconstruction"), ("kl", "KL")):
        if isinstance(e.get(key), (int, float)):
            bits = e.get(f"{key}_bits_per_dim")
            rows.append([name, f"{e[key]:.2f}", f"{bits:.4f}" if bits is not None else ""])
    return rows


def fid_section(evaluation: dict):
    """eval.json's "fid" section, or None."""
    fid = evaluation.get("fid")
    return fid if isinstance(fid, dict) else None


def _file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def compare_page(runs: list) -> str:
    """The HTML of a page comparing runs: their differing settings, final metrics,
    overlaid curves and latest samples."""
    keys = sorted({k for run in runs for k in run.settings} - {"run_name"})
    differing = [k for k in keys if len({_show(run.settings.get(k)) for run in runs}) > 1]
    rows = []
    for run in runs:
        final = run.rows[-1] if run.rows else {}
        rows.append([run.name] + [_show(run.settings.get(k)) for k in differing]
                    + [len(run.rows)] + [final.get(m, "") for m in COMPARED])
    parts = [f"<p>{len(runs)} runs. Settings shown are those that differ between them; "
             "metrics are the last epoch's (losses in nats per image; <code>val_</code> "
             "is the validation split).</p>",
             _table(["run"] + differing + ["epochs"] + list(COMPARED), rows),
             "<h2>Curves</h2>" + _img(curves_png(runs), "training curves", "curves"),
             "<h2>Latest samples</h2>"]
    for run in runs:
        samples = run.dir.grids("samples")
        if samples:
            parts.append(_figure(_thumbnail(samples[-1]),
                                 f"{run.name}, epoch {rundir.epoch_of_grid(samples[-1])}"))
    return _page("VAE runs compared", "\n".join(parts))


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


# -- writing -------------------------------------------------------------------------
def write_report(run_dir: str, output: str = "") -> str:
    """Writes the run's report (default `<run_dir>/report.html`); returns its path."""
    run = load_run(run_dir)
    # A browser reloading the page mid-write would see half of it; replace it whole.
    return files.write_text(output or run.dir.report_path, run_page(run))


def wrote(run_dir: str, written: str) -> None:
    """Says a command wrote `written`, and rewrites the run's report when that went into
    the run, so that the report shows it (not when it went elsewhere, or the run has no
    report)."""
    print(f"wrote {written}")
    inside = os.path.abspath(written).startswith(os.path.abspath(run_dir) + os.sep)
    if inside and os.path.isfile(rundir.RunDir(run_dir).report_path):
        print(f"updated {write_report(run_dir)}")


def write_compare(run_dirs: list, output: str = "") -> str:
    """Writes the comparison page (default `compare.html` beside the first run)."""
    runs = [load_run(d) for d in run_dirs]
    path = output or os.path.join(os.path.dirname(os.path.normpath(run_dirs[0])), "compare.html")
    return files.write_text(path, compare_page(runs))
