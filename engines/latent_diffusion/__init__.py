"""The latent-diffusion family: a first stage (a KL-regularised convolutional autoencoder, or a
reused AE/VAE/VQ-VAE checkpoint) and the diffusion family's U-Net, schedules and samplers run over
its scaled latents."""
