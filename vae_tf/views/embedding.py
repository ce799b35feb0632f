"""Two-dimensional maps of latent codes, for the scatter plot.

PCA (numpy, `latent.project_2d`) shows the codes' largest directions of spread and
keeps distances; t-SNE (scikit-learn) and UMAP (umap-learn) keep each code's
neighbours together instead, which shows clusters that a linear map folds on top of
each other, at the price of distances between clusters meaning little. Both print
their progress: they take tens of seconds for 5,000 codes on 2 CPU cores.
"""

import numpy as np

from vae_tf.views import latent


METHODS = ("pca", "tsne", "umap")
NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def project(codes: np.ndarray, method: str = "pca", seed: int = 0, verbose: bool = True):
    """Maps codes [N, latent] to points [N, 2]. Returns (points, axis names).

    The same codes and seed give the same map (UMAP then runs on one thread).
    """
    if method == "pca":
        return latent.project_2d(codes)
    codes = np.asarray(codes, np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        # Perplexity (the effective number of neighbours) must stay below N; 30 is
        # the usual value. PCA initialisation keeps the global layout repeatable.
        model = TSNE(n_components=2, perplexity=min(30.0, (len(codes) - 1) / 3.0),
                     init="pca", random_state=seed, verbose=2 if verbose else 0)
    elif method == "umap":
        import umap

        model = umap.UMAP(n_components=2, n_neighbors=min(15, len(codes) - 1), min_dist=0.1,
                          random_state=seed, n_jobs=1, verbose=verbose)
    else:
        raise ValueError(f"Unknown projection method {method!r}; one of {METHODS}.")
    points = model.fit_transform(codes)
    return np.asarray(points), (f"{NAMES[method]} 1", f"{NAMES[method]} 2")
