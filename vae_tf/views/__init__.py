"""A trained run seen through its export: pictures, grids, latent maps, evaluation, FID, the report page."""
