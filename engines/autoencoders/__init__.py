"""The autoencoder family: PCA (the linear baseline), autoencoder / denoising autoencoder, VAE, and
the convolutional encoder/decoder networks they (and the GAN's inversion encoder) share."""
