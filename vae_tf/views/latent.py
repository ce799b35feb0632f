"""The latent space in numbers (numpy, no model): the codes that sampling,
interpolation, traversal, the 2-D manifold and attribute arithmetic decode; active
units; attribute vectors; the 2-D projection of codes; and the two pictures made
from codes or grids alone (the scatter plot, the animated GIF of the samples grids).
`vae_tf.views.pictures` pairs the codes with a model's decoder.
"""

import statistics

import numpy as np
from PIL import Image

from vae_tf.run import files


# Active units (Burda et al. 2016) are the latent dimensions whose posterior mean
# varies across images by more than this, as a share of the posterior's own variance
# (see active_units).
ACTIVE_UNITS_THRESHOLD = 0.01
# Values a traversal sweeps each latent dimension over, in prior standard deviations.
TRAVERSAL_STEPS, TRAVERSAL_LIMIT = 9, 3.0


def prior_codes(num: int, latent_dim: int, seed: int = 0, temperature: float = 1.0,
                mean: np.ndarray = None, scale_tril: np.ndarray = None) -> np.ndarray:
    """`num` codes z = mean + temperature * scale_tril @ e, e ~ N(0, I) [num, latent_dim]:
    N(0, temperature^2 I) by default, the same e for a seed whatever the Gaussian."""
    z = np.random.default_rng(seed).standard_normal((num, latent_dim)) * temperature
    if scale_tril is not None:
        z = z @ np.asarray(scale_tril, np.float64).T
    if mean is not None:
        z = z + np.asarray(mean, np.float64)
    return z.astype(np.float32)


def fit_gaussian(means: np.ndarray, logvars: np.ndarray):
    """The Gaussian with the mean and covariance of the aggregate posterior
    (1/N) sum_n q(z|x_n) of posteriors N(means[n], diag(exp(logvars[n]))):

        mean = average of the means,  cov = Cov_n(means) + average of diag(exp(logvars))

    (the law of total covariance). Returns (mean [latent], its Cholesky factor
    [latent, latent]), in float64. Fitting such a Gaussian after training and
    sampling from it is Ghosh et al. 2020's ex-post density estimation; it keeps
    samples where the codes of real images are.
    """
    means = np.asarray(means, np.float64)
    variances = np.exp(np.asarray(logvars, np.float64)).mean(axis=0)
    centred = means - means.mean(axis=0)
    cov = centred.T @ centred / len(means) + np.diag(variances)
    # A tiny ridge keeps the factorization alive for codes the encoder left
    # constant (an autoencoder's floor variance is e^-30).
    cov += 1e-6 * np.eye(len(cov))
    return means.mean(axis=0), np.linalg.cholesky(cov)


def fit_low_rank_gaussian(means: np.ndarray, rank: int):
    """A Gaussian for codes too long for a full covariance (a hierarchy's every
    group, in its prior's units), on the span of their means' first `rank`
    principal directions:

        mean = average of the means,  cov = F F^T

    F [latent, rank] those directions scaled by the means' standard deviations
    along them (probabilistic PCA's form as its noise goes to 0). Fitted to the
    posteriors' means, not to the aggregate posterior of fit_gaussian, and with no
    diagonal for the variance the directions leave: either is independent noise in
    every cell of a map, which the decoder turns into blotches (see
    vae_tf/models/hierarchical.py). The products run in the means' own precision
    (float32 codes stay float32). Returns (mean, F) in float64; the columns of F
    beyond what the codes span are zero.
    """
    means = _floating(means)
    centred = _Centred(means)
    # The right singular vectors of the centred means are the covariance's eigenvectors.
    singular, directions = _leading_singular_pairs(centred, rank)
    kept = min(rank, len(singular))
    factor = np.zeros((means.shape[1], rank))
    factor[:, :kept] = directions[:kept].T * (singular[:kept] / np.sqrt(len(means)))
    return centred.mean, factor


# The mixture's covariances get this much variance added on their diagonals (in
# the principal directions' standardized units): a component of fewer images than
# directions has a singular covariance of its own.
MIXTURE_COVARIANCE_RIDGE = 1e-3


def fit_low_rank_mixture(means: np.ndarray, rank: int, components: int):
    """fit_low_rank_gaussian's Gaussian refined into a mixture: the means' coordinates
    c on its `rank` directions, standardized (e = mean + F c, so c has mean 0 and
    covariance I), modelled by `components` full-covariance Gaussians (scikit-learn's
    EM, k-means start, seed 0), as Ghosh et al. 2020 fit their ex-post mixture.
    Faces cluster (hair, pose, background), and draws from one Gaussian blend the
    clusters into ghostly, averaged faces; a mixture keeps a draw within one.

    Returns (mean, F, weights [components], component means [components, rank],
    component Cholesky factors [components, rank, rank]), in float64. With fewer
    codes than components the extra components have weight 0; directions F does not
    use (beyond what the codes span) get zero coordinates.
    """
    from sklearn.mixture import GaussianMixture

    means = _floating(means)
    mean, factor = fit_low_rank_gaussian(means, rank)
    scales = np.linalg.norm(factor, axis=0)
    # Directions of round-off size (past what the codes span; in float32 about 1e-7
    # of the largest) are not used.
    used = scales > np.sqrt(np.finfo(means.dtype).eps) * scales.max(initial=0.0)
    weights = np.zeros(components)
    component_means = np.zeros((components, rank))
    scale_trils = np.zeros((components, rank, rank))
    if not used.any():  # every code the same: all of the mixture at the mean
        weights[0] = 1.0
        return mean, factor, weights, component_means, scale_trils
    directions = factor[:, used] / scales[used] ** 2
    coords = _Centred(means, mean).times(directions.astype(means.dtype)).astype(np.float64)
    fitted = min(components, len(coords))
    mixture = GaussianMixture(fitted, covariance_type="full", random_state=0,
                              reg_covar=MIXTURE_COVARIANCE_RIDGE).fit(coords)
    weights[:fitted] = mixture.weights_
    component_means[:fitted, used] = mixture.means_
    scale_trils[np.ix_(np.arange(fitted), used, used)] = np.linalg.cholesky(mixture.covariances_)
    return mean, factor, weights, component_means, scale_trils


def _floating(codes) -> np.ndarray:
    """Codes as a float array, float32 kept (the codes of a CelebA hierarchy are
    4,591 x 10,752: in float64 a copy of 395 MB, and products at half the speed)."""
    codes = np.asarray(codes)
    return codes if codes.dtype in (np.float32, np.float64) else codes.astype(np.float64)


class _Centred:
    """A matrix less its column means, never formed: its products are the matrix's
    corrected by the means (a centred copy of a hierarchy's codes, freshly allocated
    after every epoch, took seconds of page faults on its own)."""

    def __init__(self, matrix: np.ndarray, mean: np.ndarray = None):
        self.matrix = matrix
        self.mean = matrix.mean(axis=0, dtype=np.float64) if mean is None else mean
        self.shape = matrix.shape
        self._mean = self.mean.astype(matrix.dtype)

    def times(self, right: np.ndarray) -> np.ndarray:
        """(matrix - 1 mean^T) @ right."""
        return self.matrix @ right - self._mean @ right

    def transposed_times(self, left: np.ndarray) -> np.ndarray:
        """(matrix - 1 mean^T)^T @ left."""
        return self.matrix.T @ left - np.outer(self._mean, left.sum(axis=0))

    def dense(self) -> np.ndarray:
        return self.matrix - self._mean


def _leading_singular_pairs(matrix: _Centred, rank: int, oversampling: int = 128,
                            power_iterations: int = 4):
    """The `rank` largest singular values of `matrix` and their right singular
    vectors (rows), by Halko et al. 2011's randomized range finder: a full SVD of the
    4,591 x 10,752 codes of a CelebA hierarchy takes 47 s, after every epoch; this
    a few seconds, its F F^T within 0.7% of the exact one at rank 128. With `rank +
    oversampling` at least the matrix's smaller side it is the exact SVD."""
    width = rank + oversampling
    if width >= min(matrix.shape):
        _, singular, directions = np.linalg.svd(matrix.dense(), full_matrices=False)
        return singular[:rank].astype(np.float64), directions[:rank].astype(np.float64)
    dtype = matrix.matrix.dtype
    sketch = matrix.times(np.random.default_rng(0).standard_normal((matrix.shape[1], width))
                          .astype(dtype))
    basis = np.linalg.qr(sketch)[0]
    for _ in range(power_iterations):  # sharpens the leading directions' share
        basis = np.linalg.qr(matrix.times(np.linalg.qr(matrix.transposed_times(basis))[0]))[0]
    _, singular, directions = np.linalg.svd(matrix.transposed_times(basis).T, full_matrices=False)
    return singular[:rank].astype(np.float64), directions[:rank].astype(np.float64)


def active_units(posterior_means: np.ndarray, posterior_logvars: np.ndarray = None) -> int:
    """How many columns of [N, latent] posterior means vary over the N images by more
    than ACTIVE_UNITS_THRESHOLD times the column's average posterior variance.

    Where the posteriors keep the prior's unit variance (a collapsed unit's, and the
    default when `posterior_logvars` is None) this is Burda et al.'s count, a variance
    above 0.01. Measured against the posterior's own spread instead of that absolute
    scale, it stays true for an encoder that shrinks its codes: means varying by 2e-3
    around posteriors of variance 1e-6 tell the images apart far better than the count
    of variances above 0.01 would say (that count fell to 2 of 64 on such a model
    while its KL was 408 nats). The ratio is the signal-to-noise of the unit's code, a
    unit's mutual information being about 0.5 log(1 + ratio) nats.
    """
    variance = np.var(np.asarray(posterior_means, np.float64), axis=0)
    noise = 1.0
    if posterior_logvars is not None:
        noise = np.exp(np.asarray(posterior_logvars, np.float64)).mean(axis=0)
    return int(np.sum(variance > ACTIVE_UNITS_THRESHOLD * noise))


def traversal_values(steps: int = TRAVERSAL_STEPS, limit: float = TRAVERSAL_LIMIT) -> np.ndarray:
    return np.linspace(-limit, limit, steps, dtype=np.float32)


def interpolation_codes(z_a: np.ndarray, z_b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` codes on the straight line from z_a to z_b, both ends included."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1.0 - t) * z_a[None] + t * z_b[None]


def traversal_codes(z: np.ndarray, values: np.ndarray, dims=None) -> np.ndarray:
    """Row r of the traversal grid: z with dimension dims[r] (every dimension by
    default) set to each of `values`.

    Returns [len(dims) * len(values), latent_dim], row-major.
    """
    dims = np.arange(len(z)) if dims is None else np.asarray(dims)
    codes = np.tile(z.astype(np.float32), (len(dims), len(values), 1))
    codes[np.arange(len(dims)), :, dims] = values
    return codes.reshape(len(dims) * len(values), len(z))


def most_varied_dims(means: np.ndarray, num: int) -> np.ndarray:
    """The `num` latent dimensions (all, if there are no more) whose mean codes vary
    most across images, in index order: the rows worth a traversal, where an
    unused dimension's row is the same picture repeated."""
    if means.shape[1] <= num:
        return np.arange(means.shape[1])
    return np.sort(np.argsort(-np.var(means, axis=0), kind="stable")[:num])


def manifold_codes(n: int) -> np.ndarray:
    """An n x n grid of 2-D codes at the prior's quantiles (5% to 95% per axis), so
    that the grid covers equal prior mass per cell; z1 grows to the right and z2
    upwards. Returns [n * n, 2], row-major from the top row."""
    quantiles = np.linspace(0.05, 0.95, n)
    axis = np.array([statistics.NormalDist().inv_cdf(q) for q in quantiles], np.float32)
    z2, z1 = np.meshgrid(axis[::-1], axis, indexing="ij")
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def attribute_vectors(codes: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Per attribute, the mean code of the images that have it minus the mean code of
    those that do not (codes [N, latent], has: bool [N, attributes]). Returns
    [attributes, latent]; a row is NaN where either group is empty."""
    codes = codes.astype(np.float64)
    vectors = np.full((has.shape[1], codes.shape[1]), np.nan)
    for k in range(has.shape[1]):
        if 0 < has[:, k].sum() < len(has):
            vectors[k] = codes[has[:, k]].mean(axis=0) - codes[~has[:, k]].mean(axis=0)
    return vectors.astype(np.float32)


def attribute_codes(z: np.ndarray, vectors: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Row r: z[r] + a * vectors[r] for each a of `amounts` (a single vector [latent]
    serves every row). Returns [rows * len(amounts), latent], row-major."""
    z = np.atleast_2d(z).astype(np.float32)
    vectors = np.broadcast_to(vectors, z.shape)
    amounts = np.asarray(amounts, np.float32)
    codes = z[:, None, :] + amounts[None, :, None] * vectors[:, None, :]
    return codes.reshape(-1, z.shape[1])


def project_2d(codes: np.ndarray):
    """The codes themselves when they are 2-D, else their first two principal
    components. Returns (points [N, 2], axis names)."""
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    centered = codes - codes.mean(axis=0)
    _, singular, components = np.linalg.svd(centered, full_matrices=False)
    explained = singular ** 2 / np.sum(singular ** 2)
    return centered @ components[:2].T, tuple(
        f"PC{i + 1} ({100 * explained[i]:.0f}% of variance)" for i in range(2))


def save_scatter(path: str, points: np.ndarray, labels: np.ndarray, axis_names,
                 title: str, class_names=(), size_px: int = 800) -> None:
    """A scatter plot of `points` coloured by integer label (-1: no label), as a PNG
    of size_px x size_px pixels, written through a temporary file. The legend shows
    `class_names[label]` where given, else the label."""
    save_scatters(path, [(points, axis_names, title)], labels, class_names, size_px)


def save_scatters(path: str, panels, labels: np.ndarray, class_names=(),
                  size_px: int = 800) -> None:
    """Scatter plots side by side, one per (points [N, 2], axis names, title) of
    `panels`, each size_px square, all coloured by the same labels (see save_scatter)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    dpi = 100
    fig, axes = plt.subplots(1, len(panels), dpi=dpi, squeeze=False,
                             figsize=(len(panels) * size_px / dpi, size_px / dpi))
    classes = sorted(set(int(v) for v in labels))
    colors = (plt.get_cmap("tab10").colors if len(classes) <= 10
              else plt.get_cmap("viridis")(np.linspace(0.0, 1.0, len(classes))))
    for ax, (points, axis_names, title) in zip(axes[0], panels):
        for label, color in zip(classes, colors):
            mask = labels == label
            ax.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.6, color=color,
                       label=("no label" if label < 0 else class_names[label]
                              if label < len(class_names) else str(label)))
        if 1 < len(classes) <= 20:
            ax.legend(markerscale=4, fontsize=8, loc="best")
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def save_gif(path: str, frame_paths, duration_ms: int = 500) -> None:
    """An animated GIF (looping) of the PNG files `frame_paths`, one frame each."""
    frames = [Image.open(p).convert("RGB") for p in frame_paths]
    with files.atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0)
