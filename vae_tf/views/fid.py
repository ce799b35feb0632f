"""Sample quality: FID and KID of a run's samples and reconstructions against its test
images, on Inception pool_3 features (`vae_tf.views.inception`).

    FID (Heusel et al. 2017) = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

for the means mu and covariances S of the two sets' features: the Fréchet distance
of two Gaussians, in float64. It is biased upward for small sets, so only figures
with the same number of images compare; papers use 10,000 or 50,000.

    KID (Binkowski et al. 2018) = unbiased MMD^2 with the kernel (x.y / 2048 + 1)^3,

averaged over KID_SUBSETS random subsets of KID_SUBSET_SIZE images of each set;
unbiased, so it compares across set sizes, and near 0 (even below) for one
distribution.
"""

import time

import numpy as np
from tqdm import tqdm


KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # the usual protocol
CHUNK = 500  # test images whose reconstructions and samples are made at once


def statistics(features: np.ndarray):
    """(mean [D], covariance [D, D]) of features [N, D], in float64."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """The Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b), in float64.

    Tr((S_a S_b)^(1/2)) is taken as the sum of the square roots of the eigenvalues
    of the symmetric S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues: two
    symmetric eigendecompositions, five times faster at 2048 dimensions than the
    general matrix square root (scipy's sqrtm, as TTUR computes it) and equal to it
    within 1e-11 for full-rank covariances. Covariances of fewer images than
    dimensions are singular; their zero eigenvalues need no ridge here.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    values, vectors = _covariance_eigh(sigma_a)
    root_a = (vectors * np.sqrt(values)) @ vectors.T
    cross = _covariance_eigh(root_a @ sigma_b @ root_a, vectors=False)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b)
                 - 2.0 * np.sqrt(cross).sum())


def _covariance_eigh(sigma, vectors: bool = True):
    """Eigenvalues (round-off below 0 set to 0) of a covariance, and its eigenvectors
    unless `vectors` is false (eigvalsh: 0.4 s instead of 1.0 s at 2048 dimensions)."""
    if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-12 * np.abs(sigma).max()):
        raise ValueError("The FID statistics hold a covariance that is not symmetric.")
    values, basis = np.linalg.eigh(sigma) if vectors else (np.linalg.eigvalsh(sigma), None)
    if values.min() < -1e-6 * max(values.max(), 0.0):
        raise ValueError(f"The FID statistics hold a covariance with eigenvalue "
                         f"{values.min():.3g}: not positive semi-definite.")
    values = np.clip(values, 0.0, None)
    return (values, basis) if vectors else values


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray,
                              subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0):
    """KID: (mean, standard deviation) over `subsets` subsets of min(subset_size, N)
    images drawn without replacement from each set. Where a subset holds every image
    of both sets, every subset would be the same: one estimate, and None for the
    standard deviation (as for subsets=1)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    m, dims = min(subset_size, len(a), len(b)), a.shape[1]
    if m == len(a) == len(b):
        subsets = 1
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy = (x @ x.T / dims + 1.0) ** 3, (y @ y.T / dims + 1.0) ** 3
        k_xy = (x @ y.T / dims + 1.0) ** 3
        # The unbiased MMD^2 leaves out each image's kernel with itself.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2.0 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values)) if subsets > 1 else None


def sample_quality(run, images: np.ndarray, network, seed: int = 0,
                   temperature: float = 1.0) -> dict:
    """eval.json's "fid" section for a `trained.TrainedRun`: FID and KID of as many
    samples from the run's sampling prior at `temperature` (decoder means, codes from
    `seed`) and of
    the reconstructions of `images`, against `images`, on `network`'s features (an
    `inception.Inception`)."""
    start = time.perf_counter()
    features = {"test": [], "samples": [], "reconstructions": []}
    bar = tqdm(total=3 * len(images), desc="FID features", unit="img", mininterval=2.0)
    # In chunks: three sets of 10,000 images would hold gigabytes at once.
    for i in range(0, len(images), CHUNK):
        x = images[i:i + CHUNK]
        # Chunk i's samples from seed + i: any chunk's come without drawing the others.
        samples = run.sample(len(x), seed + i, temperature)
        for name, batch in (("test", x), ("samples", samples),
                            ("reconstructions", run.reconstruct(x))):
            features[name].append(network.features(batch))
            bar.update(len(x))
    bar.close()
    features = {k: np.concatenate(v) for k, v in features.items()}
    test_stats = statistics(features["test"])
    results = {"network": f"{network.path} (pool_3, sha256 {network.sha256[:16]})",
               "num_images": len(images), "seed": seed, "temperature": temperature}
    for name in ("samples", "reconstructions"):
        results[name] = frechet_distance(*test_stats, *statistics(features[name]))
    for name in ("samples", "reconstructions"):
        kid, kid_std = kernel_inception_distance(features["test"], features[name], seed=seed)
        results[f"kid_{name}"], results[f"kid_{name}_std"] = kid, kid_std
    # kernel_inception_distance gives no spread where one subset held every image.
    results["kid_subsets"] = 1 if results["kid_samples_std"] is None else KID_SUBSETS
    results["kid_subset_size"] = min(KID_SUBSET_SIZE, len(images))
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results
