"""Tiny checkpoints for the Compare tests: a VAE, a GAN and a diffusion model on the built-in
digits at 8×8, trained a few steps (real, if poor, numbers), and a VAE on another data set."""
from __future__ import annotations

import os

import numpy as np

DIGITS_SIZE = 8
STEPS = 15
TINY = {
    "vae": {"latent_dim": 2, "width": 8},
    "gan": {"latent_dim": 4, "width": 8, "invert_steps": 5, "invert_restarts": 1},
    "diffusion": {"width": 8, "levels": 2, "batch_size": 8, "sample_steps": 4, "latent_steps": 3},
}


def digits():
    from engines.data import load_dataset

    return load_dataset("digits", size=DIGITS_SIZE)


def save_model(path, family: str, data, seed: int = 0, steps: int = STEPS, metrics=None, **overrides) -> str:
    import engines
    from engines import checkpoint as ckpt

    e = engines.create(family, data.spec, device="cpu", seed=seed, **{**TINY.get(family, {}), **overrides})
    train = data.split("train").images
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        e.train_step(train[rng.choice(len(train), 16, replace=False)])
    ckpt.save(str(path), e, data=data.describe(), metrics=metrics or {},
              train_state={"elapsed_s": 12.5 + seed, "state": "finished"}, include_optimizer=False)
    return str(path)


def make_models(folder, families=("vae", "gan", "diffusion")) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    data = digits()
    return {f: save_model(os.path.join(folder, f"{f}-digits.safetensors"), f, data) for f in families}
