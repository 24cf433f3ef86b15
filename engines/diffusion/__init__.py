"""The diffusion family: the engine (DDPM training), the U-Net, noise schedules, step-wise samplers
(DDPM, DDIM, DPM-Solver++(2M), DDIM inversion; SDEdit starts one mid-way) driven by one loop and
kept apart from the model, and the variational bound."""
