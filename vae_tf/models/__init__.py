"""The model: the VAE and the hierarchy, the diagonal Gaussian, likelihoods, KL terms, networks, the optimizer."""
