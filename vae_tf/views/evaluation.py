"""The evaluation of a trained run through its export: the negative ELBO, NLL_IWAE
(importance-sampled, Burda et al. 2015), reconstruction error and active units on
the test split, in nats per image and bits/dim where they apply (docs/evaluation.md).
`python -m vae_tf.evaluate` prints and saves them."""

import time

import numpy as np
from tqdm import tqdm

from vae_tf import temperatures
from vae_tf.config import group_sides
from vae_tf.views.latent import ACTIVE_UNITS_THRESHOLD, active_units


def _log_mean_exp(values: np.ndarray) -> np.ndarray:
    """log((1/K) sum_k exp(values[..., k])), stable for large |values|."""
    values = values.astype(np.float64)
    top = values.max(axis=-1, keepdims=True)
    return (top + np.log(np.mean(np.exp(values - top), axis=-1, keepdims=True)))[..., 0]


def _make_log_weights(run):
    """A function: (images [n,...], seeds [n,2], first, num) -> log p(x|z_k) and log w_k
    for samples k = first .. first+num-1 of each image, each [n, num], and the ELBO's
    KL term per latent group [n, num, groups] (a flat model's is one group), in one
    batched call of the export's log_weights signature.

    Image i's samples come from its own seed, so the figures do not depend on how
    the images are split into calls.
    """
    if "log_weights" in run.signatures:
        signature = run.signatures["log_weights"]

        def log_weights(images, seeds, first, num):
            out = signature(images=images, seeds=seeds, first=first, num=num)
            kl_groups = out["kl_groups"] if "kl_groups" in out else out["kl"][..., None]
            return out["log_likelihood"], out["log_weight"], kl_groups

        return log_weights
    return _legacy_log_weights(run)


def _legacy_log_weights(run):
    """_make_log_weights for an export made before the log_weights signature, from its
    encode and log_likelihood signatures (a one-vector latent with prior N(0, I));
    image n's samples are rows of one draw from seeds[n] itself."""
    import tensorflow as tf

    from vae_tf.models.gaussian import DiagonalGaussian, per_image_draw

    encode = run.signatures["encode"]
    log_likelihood = run.signatures["log_likelihood"]
    latent = run.latent_dim

    @tf.function(input_signature=[
        tf.TensorSpec([None, *run.image_shape], tf.float32),
        tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32)])
    def log_weights(images, seeds, first, num):
        posterior = encode(images=images)
        # Each image's Gaussian against its `num` samples [n, num, latent].
        q = DiagonalGaussian(posterior["mean"][:, None], posterior["logvar"][:, None])
        n = tf.shape(q.mean)[0]
        eps = tf.reshape(per_image_draw(seeds, first, num, fold_in=False)([n * num, latent]),
                         [n, num, latent])
        z = q.sample(eps)
        ll = log_likelihood(images=tf.repeat(images, num, axis=0),
                            z=tf.reshape(z, [-1, latent]))["log_prob"]
        ll = tf.reshape(ll, [n, num])
        log_prior = tf.reduce_sum(DiagonalGaussian.standard(z).log_prob(z), axis=-1)
        log_q = tf.reduce_sum(q.noise_log_prob(eps), axis=-1)
        kl = tf.repeat(tf.reduce_sum(q.kl_standard(), axis=-1), num, axis=1)
        return ll, ll + log_prior - log_q, kl[..., None]

    return log_weights


# Pixel values per decoder call when --decoder_batch_size is 0: 10,000 (image,
# sample) pairs of 28x28 images, 638 of 64x64 RGB ones, whose hierarchical decoder
# holds 64 channels at every pixel (10,000 of those asked for 10 GB at once).
DECODER_VALUES = 10000 * 28 * 28


def decoder_pairs(decoder_batch_size: int, image_shape) -> int:
    """(image, sample) pairs per decoder call: the given number, or, for 0, as many
    as DECODER_VALUES pixel values allow."""
    if decoder_batch_size > 0:
        return decoder_batch_size
    return max(1, DECODER_VALUES // int(np.prod(image_shape)))


def importance_bounds(run, images, num_samples: int, seed: int = 0,
                      decoder_batch_size: int = 0):
    """Per-image E_q[-log p(x|z)], the ELBO's KL term (its average over the K samples
    for a hierarchy, whose KL depends on the sampled groups) and NLL_IWAE(K), each [N]
    in nats, and the KL term per latent group [N, groups] (a flat model: one group).

    Images go in groups sized so that one decoder call sees about `decoder_batch_size`
    (image, sample) pairs; when K alone exceeds it, the samples are split into
    calls too. Only the K log-weights per image are kept, so K is bounded by
    memory for N*K floats, not by the decoder's activations.
    """
    log_weights = _make_log_weights(run)
    decoder_batch_size = decoder_pairs(decoder_batch_size, images.shape[1:])
    per_call = min(num_samples, decoder_batch_size)
    group = max(1, decoder_batch_size // num_samples)
    rec, nll, kl_groups = [], [], []
    # A progress bar with the time left: K=1000 on 10,000 images takes minutes.
    bar = tqdm(total=len(images), desc=f"IWAE K={num_samples}", unit="img",
               mininterval=2.0)
    for start in range(0, len(images), group):
        x = images[start:start + group]
        seeds = np.stack([np.full(len(x), seed), np.arange(start, start + len(x))], axis=1)
        lls, lws, kgs = [], [], []
        for first in range(0, num_samples, per_call):
            ll, lw, kg = log_weights(x, seeds, np.int32(first),
                                     np.int32(min(per_call, num_samples - first)))
            lls.append(ll.numpy())
            lws.append(lw.numpy())
            kgs.append(kg.numpy())
        rec.append(-np.concatenate(lls, axis=1).astype(np.float64).mean(axis=1))
        kl_groups.append(np.concatenate(kgs, axis=1).astype(np.float64).mean(axis=1))
        nll.append(-_log_mean_exp(np.concatenate(lws, axis=1)))
        bar.update(len(x))
        bar.set_postfix_str(f"NLL_IWAE so far {np.concatenate(nll).mean():.2f} nats",
                            refresh=False)
    bar.close()
    kl_groups = np.concatenate(kl_groups)
    return np.concatenate(rec), kl_groups.sum(axis=1), np.concatenate(nll), kl_groups


def evaluate(run, num_samples: int = 100, num_images: int = 0, seed: int = 0,
             decoder_batch_size: int = 0, split: str = "test") -> dict:
    """The figures of eval.json for a `trained.TrainedRun` (see docs/evaluation.md),
    on its test split or, for choices, on its validation split."""
    start = time.perf_counter()
    images = run.split_images(split, num_images or None)
    mean, logvar = run.encode(images)
    config = run.config
    from vae_tf.models import likelihoods

    likelihood = likelihoods.describe(config)[0]
    bits_per_nat = likelihoods.bits_per_nat(config, run.image_shape)
    results = {
        "run_dir": run.run_dir, "dataset": config.dataset, "split": split,
        "num_images": len(images), "model": config.model, "likelihood": likelihood,
        "num_importance_samples": None, "seed": seed,
        "neg_elbo": None, "reconstruction": None, "kl": None, "nll_iwae": None,
        "neg_elbo_bits_per_dim": None, "nll_iwae_bits_per_dim": None, "groups": None,
    }
    kl_groups = None
    if config.model == "ae":
        # No posterior to sample or weigh: only the reconstruction term at the code.
        ll = run.log_likelihood(images, mean).astype(np.float64)
        results["reconstruction"] = float(-ll.mean())
    else:
        rec, kl, nll, kl_groups = importance_bounds(run, images, num_samples, seed,
                                                    decoder_batch_size)
        results.update(num_importance_samples=num_samples, reconstruction=float(rec.mean()),
                       kl=float(kl.mean()), neg_elbo=float((rec + kl).mean()),
                       nll_iwae=float(nll.mean()))
        if bits_per_nat is not None:
            results["neg_elbo_bits_per_dim"] = results["neg_elbo"] * bits_per_nat
            results["nll_iwae_bits_per_dim"] = results["nll_iwae"] * bits_per_nat
    recon = run.reconstruct(images)
    results["mse"] = float(np.mean(np.square(recon.astype(np.float64) - images)))
    results["latent_dim"] = run.latent_dim
    # The same count as training's CollapseMonitor (after Burda et al. 2016).
    results["active_units"] = active_units(mean, logvar)
    results["active_unit_threshold"] = ACTIVE_UNITS_THRESHOLD
    group_posteriors = run.group_posteriors(images)
    if group_posteriors is not None:
        # A hierarchy: every group counts, as in training (the top group alone can be
        # collapsed while the groups below carry the image).
        counts = [active_units(m, v) for m, v in group_posteriors]
        results["active_units"] = sum(counts)
        results["groups"] = [
            {"side": side, "units": m.shape[1], "active_units": n,
             "kl": None if kl_groups is None else float(kl_groups[:, g].mean())}
            for g, (side, (m, _), n) in enumerate(zip(group_sides(config.hierarchy),
                                                      group_posteriors, counts))]
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results


def format_table(r: dict) -> str:
    def nats(value, bits):
        if value is None:
            return "n/a"
        return f"{value:9.2f} nats" + (f"  ({bits:.4f} bits/dim)" if bits is not None else "")

    k = r["num_importance_samples"]
    groups = r.get("groups") or []  # a hierarchy's
    units = sum(g["units"] for g in groups) if groups else r["latent_dim"]
    rows = [
        ("negative ELBO", nats(r["neg_elbo"], r["neg_elbo_bits_per_dim"])),
        (f"NLL_IWAE (K={k})", nats(r["nll_iwae"], r["nll_iwae_bits_per_dim"])),
        ("reconstruction", nats(r["reconstruction"], None)),
        ("KL", nats(r["kl"], None)),
        ("MSE per pixel", f"{r['mse']:.5f}"),
        ("active units", f"{r['active_units']} of {units}"),
    ]
    for g, group in enumerate(groups):
        side = group["side"]
        kl = "n/a" if group["kl"] is None else f"{group['kl']:9.2f} nats"
        rows.append((f"group {g} ({side}x{side})",
                     f"KL {kl}, {group['active_units']} of {group['units']} units active"
                     + ("  UNUSED" if group["active_units"] == 0 else "")))
    fid = r.get("fid")
    if fid:
        at = f" (T={temperatures.text(fid['temperature'])})" if "temperature" in fid else ""
        for key, name in (("samples", "FID samples" + at),
                          ("reconstructions", "FID reconstructions")):
            std = fid.get(f"kid_{key}_std")
            spread = (f"± {std:.4f}" if std is not None
                      else f"on all {fid['num_images']} images, no subsets")
            rows.append((name, f"{fid[key]:9.2f}   (KID {fid['kid_' + key]:.4f} {spread})"))
    head = (f"{r['run_dir']}: {r['num_images']} {r['dataset']} {r.get('split', 'test')} images, "
            f"{r['seconds']:.0f} s\nlikelihood: {r['likelihood']}")
    lines = [head] + [f"  {name:<20}{value}" for name, value in rows]
    if fid and fid["num_images"] < 10000:
        lines.append(f"  FID on {fid['num_images']} images is biased upward: compare it only "
                     "with FIDs on as many images (papers use 10,000 or 50,000).")
    return "\n".join(lines)

