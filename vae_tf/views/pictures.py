"""The pictures of a model, as arrays of images [N, H, W, C] in [0, 1].

Each function takes a `model` with numpy methods `encode(images) -> (mean, logvar)`,
`decode(z) -> images`, `reconstruct(images) -> images` and
`sample(num, seed, temperature) -> images`, and a `latent_dim`: a
`vae_tf.views.trained.TrainedRun` (the exported model, for the commands) or the training
callbacks' view of the Keras model, so that training's grids and the commands'
pictures are drawn by the same code.
"""

import numpy as np

from vae_tf.errors import UserError
from vae_tf.views import grids, latent


def samples(model, num: int, temperature=1.0, seed: int = 0) -> np.ndarray:
    """Decoder means of `num` samples from the model's sampling prior at `temperature`
    (N(0, temperature^2 I) unless fitted; a hierarchy's groups each from their prior,
    at one temperature or one per group); the same images for a seed."""
    return model.sample(num, seed, temperature)


def reconstruction_pairs(model, images: np.ndarray) -> np.ndarray:
    """[2N, ...]: each image followed by its deterministic reconstruction."""
    return grids.interleave(images, model.reconstruct(images))


def traversal(model, image: np.ndarray, steps: int = latent.TRAVERSAL_STEPS,
              limit: float = latent.TRAVERSAL_LIMIT, dims=None) -> np.ndarray:
    """[len(dims) * steps, ...], row-major: row r sweeps latent dimension dims[r]
    (every dimension by default) from -limit to +limit while the others keep
    `image`'s mean code."""
    mean, _ = model.encode(image[None])
    codes = latent.traversal_codes(np.asarray(mean)[0],
                                   latent.traversal_values(steps, limit), dims)
    return model.decode(codes)


def interpolation(model, image_a: np.ndarray, image_b: np.ndarray, steps: int) -> np.ndarray:
    """[steps + 2, ...]: image a, the decoder means at `steps` codes on the straight
    line between the two mean codes (both ends included), image b."""
    ends = np.stack([image_a, image_b])
    mean, _ = model.encode(ends)
    mean = np.asarray(mean)
    decoded = model.decode(latent.interpolation_codes(mean[0], mean[1], steps))
    return np.concatenate([ends[:1], decoded, ends[1:]])


def manifold(model, grid_size: int) -> np.ndarray:
    """Decoder means on a grid_size x grid_size grid of 2-D codes (latent_dim=2 only)."""
    if model.latent_dim != 2:
        raise UserError(f"The manifold grid needs a 2-D latent space; this run has "
                        f"latent_dim={model.latent_dim} (use vae_tf.traverse instead).")
    return model.decode(latent.manifold_codes(grid_size))


def attribute_rows(model, images: np.ndarray, codes: np.ndarray, vectors: np.ndarray,
                   amounts) -> np.ndarray:
    """[rows * (1 + len(amounts)), ...], row-major: row r is images[r], then the decoder
    means at codes[r] + a * vectors[r] for each a of `amounts` (one vector [latent]
    serves every row)."""
    decoded = model.decode(latent.attribute_codes(codes, vectors, amounts))
    decoded = decoded.reshape(len(codes), len(amounts), *decoded.shape[1:])
    return np.concatenate([images[:, None], decoded], axis=1).reshape(-1, *decoded.shape[2:])


def save_code_scatter(models, images: np.ndarray, labels: np.ndarray, path: str, titles,
                      class_names=(), method: str = "pca", seed: int = 0) -> None:
    """A scatter plot PNG of the images' mean codes under each model, side by side,
    coloured by label (named by `class_names`); `method` maps codes to 2-D (see
    `vae_tf.views.embedding`: the codes themselves when they are 2-D and method is pca)."""
    from vae_tf.views import embedding

    panels = []
    for model, title in zip(models, titles):
        mean, _ = model.encode(images)
        points, axis_names = embedding.project(np.asarray(mean), method, seed)
        panels.append((points, axis_names, title))
    latent.save_scatters(path, panels, labels, class_names)
