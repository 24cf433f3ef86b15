"""Tiny real checkpoints of the newer kinds (latent diffusion built in and with a reused first stage,
flow, PixelCNN with and without the `positions` field, a VQ-VAE with a PixelCNN code prior), each
trained a few steps on random images (seconds), for the fuzz corpus (tests/new_kinds_corpus.py)
and the full-disk tests of their writers."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

import engines
from engines import checkpoint as ckpt
from engines.spec import ImageSpec

SPEC = ImageSpec(1, 8, 8)
LD = dict(ae_width=4, latent_channels=2, width=8, blocks=1, levels=1, timesteps=20, batch_size=8,
          sample_steps=2, latent_steps=2, ae_epochs=1.0)
FLOW = dict(steps=1, width=4, levels=2, batch_size=8)
PIXELCNN = dict(hidden=4, layers=2, kernel=3, batch_size=8)
VQ = dict(codebook_size=6, code_dim=2, width=4, batch_size=8, prior="pixelcnn", prior_dim=8, prior_layers=2)
AE = dict(latent_dim=2, width=4)


def _images(n=8, seed=0):
    return torch.rand(n, *SPEC.shape, generator=torch.Generator().manual_seed(seed))


def _trained(name, train_steps=2, seed=0, **cfg):
    torch.manual_seed(seed)
    e = engines.create(name, SPEC, device="cpu", seed=seed, **cfg)
    for i in range(train_steps):
        e.train_step(_images(seed=i))
    return e


def save(path, e):
    return ckpt.save(path, e, data={"name": "noise"}, metrics={"loss": 0.5},
                     thumbnail=np.zeros((8, 8, 1), np.uint8))


def make_ld(**kw):
    e = _trained("latent-diffusion", train_steps=3, **{**LD, **kw})  # 1 step of stage 1, then the scale factor
    assert e.stage == 2 and float(e.nets["stats"].scale) > 0
    return e


def make_ae_file(folder):
    path = os.path.join(folder, "first-stage-ae.safetensors")
    if not os.path.exists(path):
        save(path, _trained("ae", train_steps=2, **AE))
    return path


def make_ld_reused(folder, **kw):
    return _trained("latent-diffusion", train_steps=2, **{**LD, "autoencoder": make_ae_file(folder), **kw})


def make_flow(**kw):
    return _trained("flow", train_steps=2, **{**FLOW, **kw})


def make_pixelcnn(**kw):
    return _trained("pixelcnn", train_steps=2, **{**PIXELCNN, **kw})


def make_vq_pixelcnn_prior(**kw):
    e = _trained("vqvae", train_steps=2, **{**VQ, **kw})
    grids = e.encode_indices(_images())
    for _ in range(2):
        e.prior_step(grids)
    assert e.prior_trained
    return e


def without_config_field(src, dst, field):
    """`src` rewritten as a file from before `field` existed (the field dropped from its config,
    the content hash recomputed: a well-formed older file)."""
    meta, tensors = ckpt._read_all(src)
    cfg = json.loads(meta["config"])
    cfg.pop(field)
    meta["config"] = json.dumps(cfg)
    ckpt._write(dst, tensors, meta)
    return dst


def kinds(folder):
    """{kind: (path of a good file, a function making a fresh engine of that kind)}."""
    os.makedirs(folder, exist_ok=True)
    makers = {
        "latent-diffusion": make_ld,
        "latent-diffusion-reused": lambda: make_ld_reused(folder),
        "flow": make_flow,
        "pixelcnn": make_pixelcnn,
        "vq-pixelcnn-prior": make_vq_pixelcnn_prior,
    }
    out = {}
    for kind, make in makers.items():
        path = os.path.join(folder, f"{kind}.safetensors")
        save(path, make())
        out[kind] = (path, make)
    legacy = os.path.join(folder, "pixelcnn-before-positions.safetensors")
    save(legacy + ".src", make_pixelcnn(positions=False))
    without_config_field(legacy + ".src", legacy, "positions")
    os.unlink(legacy + ".src")
    out["pixelcnn-before-positions"] = (legacy, lambda: make_pixelcnn(positions=False))
    return out
