"""Headless latent-space exploration: the math behind the Map, Scrub, Atlas, Paths, Inspect and
Arithmetic panels (issue #5). The panels only show; everything they compute lives here.

Everything works on *flattened* latents, float arrays of shape (N, D) with D = prod(latent_shape),
so any engine with `encode`/`decode` plugs in (PCA, AE, VAE now; a GAN through inversion or a
diffusion model through its deterministic latent later). `interpolate.flatten`/`unflatten` convert.

Modules, one concept each (import the one you need; nothing heavy is imported here):

- `interpolate`  lerp, slerp, norm-interpolating slerp, paths through points, easing
- `planes`       `Plane`: an exact affine map between 2-D map coordinates and latent space
- `inverse`      `ScatterMap`: map ↔ latent for non-linear maps (UMAP), by modified Shepard interpolation
- `atlas`        grids of latents over a map, ordered coarse-to-fine, decoded in batches
- `projection`   PCA / latent-axes projections (instant) and the cancellable, cached UMAP runner
- `cache`        model and data identities; encoded data sets cached in HDF5
- `neighbours`   nearest data latents and the in-distribution indicator
- `attributes`   attribute vectors, their quality, z + s·Δ, analogies, JSON save/load
- `history`      visited latents with undo/redo, bookmarks
- `progress`     the `Progress` value long-running generators yield
"""
