"""The GAN family: the engine, generator/discriminator networks, the adversarial losses and
regularisers, and inversion (image -> latent by optimisation)."""
