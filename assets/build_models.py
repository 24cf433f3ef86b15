"""Train the bundled models that `python main.py` opens with. Reproducible: fixed seeds,
settings and time budgets below; run from the repository root:

    python assets/build_models.py                 # all of them (about 2.5 hours on one core)
    python assets/build_models.py vae-faces-64    # just one

Each model is trained by the same `train` command users run, then its optimizer state is
dropped so the file stays small (a few MB).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OUT = os.path.join(ROOT, "assets", "models")

# name: (engine, data, size, channels, epochs, settings). Epochs, not minutes, so that the
# same command gives the same weights on any machine of the same kind (CPU training is seeded).
MODELS = {
    "vae-faces-64": ("vae", "faces", 64, 3, 20, ["latent_dim=32", "width=32"]),
    "ae-faces-64": ("ae", "faces", 64, 3, 10, ["latent_dim=32", "width=32"]),
    "pca-faces-64": ("pca", "faces", 64, 3, 1, ["n_components=32"]),
    # The default GAN (width 16), 160 epochs (16,960 steps): 57 min on one core (100 epochs: FD 44 instead
    # of 40). 15 epochs left it noisy with smiling women missing; width 32 collapsed by epoch 40 (see the
    # README's GAN section).
    "gan-faces-64": ("gan", "faces", 64, 3, 160, ["latent_dim=64", "width=16"]),
    "vae-digits-28": ("vae", "digits", 28, 1, 150, ["latent_dim=16"]),
    "ae-digits-28": ("ae", "digits", 28, 1, 80, ["latent_dim=16"]),
    "pca-digits-28": ("pca", "digits", 28, 1, 1, ["n_components=16"]),
    # Class-conditional (guidance 2 by default), v-prediction: ε-prediction with the cosine schedule
    # needs far longer training before the deterministic samplers (DDIM, DPM-Solver++) stop leaving noise.
    "diffusion-digits-28": ("diffusion", "digits", 28, 1, 25, ["width=16", "batch_size=32", "lr=1e-3", "ema_decay=0.995",
                                                               "num_classes=10", "target=v"]),
    "vqvae-faces-64": ("vqvae", "faces", 64, 3, 8, ["codebook_size=256"]),
    # Both stages in one run: 10 epochs of the KL autoencoder (28 px → 7×7×4), then 40 of the U-Net on
    # its scaled latents (class-conditional, v-prediction, as the pixel model).
    "latent-diffusion-digits-28": ("latent-diffusion", "digits", 28, 1, 50, [
        "ae_epochs=10", "ae_width=16", "width=32", "batch_size=32", "lr=1e-3", "ema_decay=0.995", "num_classes=10"]),
    # Glow-style flow (engines/flow): 2 levels × 8 steps, coupling nets 32 wide; uniform dequantisation.
    "flow-digits-28": ("flow", "digits", 28, 1, 100, ["steps=8", "width=32"]),
    # Class-conditional gated PixelCNN, narrow (32 channels), 10 layers with a 7-wide first kernel: a
    # receptive field of 12 rows above each pixel; positions on (a learned row/column bias, see
    # engines/pixelcnn/layers.py). Trained on real MNIST strokes (the shipped `mnist-5k`, 4,250
    # training images): on the built-in `digits` (scikit-learn's 8×8 images blurred up to 28×28) the
    # same net drew strokes, rarely a digit, after 120 epochs / 5,640 steps (earlier tries there: 5, 6
    # and 8 layers, 15-60 epochs, all strokes); on real strokes it draws digits within ~3,400 steps.
    # 32 epochs = 4,256 steps; the bundled file was built with --threads 2 (2026-12-07, ~35 min).
    "pixelcnn-digits-28": ("pixelcnn", "mnist-5k", 28, 1, 32, ["hidden=32", "layers=10", "kernel=7", "batch_size=32",
                                                                 "num_classes=10"]),
}
# Extra `train` arguments: a PixelCNN's checkpoint thumbnail is 16 samples drawn pixel by pixel, so
# it is saved at the end only.
TRAIN_ARGS = {"pixelcnn-digits-28": ["--checkpoint-every", "100000"]}
# Models with a prior over codes, trained after the model itself: name -> prior epochs.
PRIOR_EPOCHS = {"vqvae-faces-64": 4}


def build(name: str, device: str) -> str:
    from engines import checkpoint as ckpt
    from engines.cli import main as cli

    engine, data, size, channels, epochs, settings = MODELS[name]
    out = os.path.join(OUT, f"{name}.safetensors")
    argv = ["train", "--engine", engine, "--data", data, "--size", str(size), "--channels", str(channels),
            "--seed", "0", "--device", device, "--out", out]
    argv += ["--epochs", str(epochs)] + TRAIN_ARGS.get(name, [])
    for s in settings:
        argv += ["--set", s]
    t0 = time.time()
    rc = cli(argv)
    if rc != 0:
        raise SystemExit(f"training {name} failed ({rc})")
    if name in PRIOR_EPOCHS:
        rc = cli(["train-prior", "--checkpoint", out, "--epochs", str(PRIOR_EPOCHS[name]), "--seed", "0",
                  "--device", device])
        if rc != 0:
            raise SystemExit(f"training the prior of {name} failed ({rc})")
    ckpt.update(out, drop_optimizer=True)
    print(f"{name}: {os.path.getsize(out) / 1e6:.1f} MB in {time.time() - t0:.0f} s", file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"models to build (default all: {', '.join(MODELS)})")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads; the default 1 gives the same weights on machines with any number of cores")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    for n in a.names or MODELS:
        if n not in MODELS:
            raise SystemExit(f"unknown model {n} (known: {', '.join(MODELS)})")
        build(n, a.device)


if __name__ == "__main__":
    main()
