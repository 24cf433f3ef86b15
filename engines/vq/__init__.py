"""The VQ family: VQ-VAE (EMA codebook with dead-code revival, Gumbel/dVAE and VQGAN variants), its
networks, and the autoregressive prior over code grids with its own training loop."""
