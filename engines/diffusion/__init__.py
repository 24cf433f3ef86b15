"""The diffusion family: the engine (DDPM training), the U-Net, noise schedules, step-wise samplers
(DDPM, DDIM, SDEdit) kept apart from the model, and the variational bound."""
