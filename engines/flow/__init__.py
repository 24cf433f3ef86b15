"""Normalizing flows: a Glow-style multi-scale flow with exact log-likelihood and exact latents
(layers.py: squeeze, actnorm, invertible 1×1 conv; coupling.py: affine coupling; prior.py: split
and top priors; dequant.py: dequantisation and bits/dim; model.py: the multi-scale flow;
engine.py: the Engine)."""
