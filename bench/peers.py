"""Reference implementations the benchmarks compare against ("peers"), written the usual way.

- `PlainConvVAE` / `PlainConvAE`: what a PyTorch tutorial would write for the same image size —
  nn.Sequential Conv → BatchNorm → ReLU stages down, a Linear bottleneck, ConvTranspose →
  BatchNorm → ReLU stages up, a Sigmoid at the end — with the same stage plan (channels,
  resolutions) as our engines' `engines.autoencoders.nets.ConvEncoder/ConvDecoder`, trained by the standard
  `zero_grad(); loss.backward(); step(); loss.item()` loop at the same batch size and Adam lr.
  `layers="ours"` swaps BatchNorm → ReLU for our GroupNorm → SiLU (the same work as our engine,
  written the usual way; GroupNorm keeps one-image decodes equal to batched ones, SiLU is smooth).
- `PlainDCGAN` / `gan_step`: the PyTorch examples' DCGAN loop (dcgan/main.py): one
  discriminator step on real and detached fake images with BCE, one generator step with BCE on
  "real" labels, Adam(2e-4, β₁ = 0.5) — on networks with our GAN's stage plan (generator:
  ConvTranspose → BatchNorm → ReLU, tanh; discriminator: strided Conv → LeakyReLU(0.2), no batch
  norm, like ours), so the difference is the training step, not the nets.
- `pythae_vae()` / `train_pythae()` / `pythae_bounds()`: pythae's VAE with its default MLP
  networks, when pythae is installed (None otherwise).

Qt-free; imported by bench/run.py.
"""
from __future__ import annotations

import math
import time

import common
import torch
import torch.nn.functional as F
from torch import nn

common.on_path()

from engines.autoencoders.nets import down_plan  # noqa: E402
from engines.spec import ImageSpec  # noqa: E402

LOG_2PI = math.log(2 * math.pi)


def _stage(c: int, layers: str, first: bool = False) -> list[nn.Module]:
    """Normalisation and activation after a conv stage: "usual" BatchNorm → ReLU, or "ours" — the
    engine's GroupNorm(min(8, c)) → SiLU (no norm after the encoder's first conv, as ours)."""
    if layers == "usual":
        return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    return [nn.SiLU(inplace=True)] if first else [nn.GroupNorm(min(8, c), c), nn.SiLU(inplace=True)]


def _encoder(spec: ImageSpec, width: int, layers: str = "usual") -> tuple[nn.Sequential, int]:
    chans, h, w = down_plan(spec, width, width * 8)
    out: list[nn.Module] = []
    c_in = spec.channels
    for i, c in enumerate(chans):
        out += [nn.Conv2d(c_in, c, 4, stride=2, padding=1)] + _stage(c, layers, first=i == 0)
        c_in = c
    return nn.Sequential(*out, nn.Flatten()), c_in * h * w


def _decoder(spec: ImageSpec, width: int, layers: str = "usual") -> tuple[nn.Sequential, tuple[int, int, int]]:
    chans, h, w = down_plan(spec, width, width * 8)
    rev = list(reversed(chans))
    out: list[nn.Module] = []
    for i, c in enumerate(rev):
        last = i == len(rev) - 1
        c_out = spec.channels if last else rev[i + 1]
        out.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1))
        out += [nn.Sigmoid()] if last else _stage(c_out, layers)
    return nn.Sequential(*out), (rev[0], h, w)


def _act(layers: str):
    return F.relu if layers == "usual" else F.silu


class PlainConvVAE(nn.Module):
    def __init__(self, spec: ImageSpec, latent_dim: int = 16, width: int = 32, layers: str = "usual"):
        super().__init__()
        self.encoder, feat = _encoder(spec, width, layers)
        self.fc_mu = nn.Linear(feat, latent_dim)
        self.fc_logvar = nn.Linear(feat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, feat)
        self.decoder, self.start = _decoder(spec, width, layers)
        self.act = _act(layers)

    def decode(self, z):
        return self.decoder(self.act(self.fc_dec(z)).view(len(z), *self.start))

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def vae_loss(recon, mu, logvar, x):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / len(x)


class PlainConvAE(nn.Module):
    def __init__(self, spec: ImageSpec, latent_dim: int = 16, width: int = 32, layers: str = "usual"):
        super().__init__()
        self.encoder, feat = _encoder(spec, width, layers)
        self.fc_z = nn.Linear(feat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, feat)
        self.decoder, self.start = _decoder(spec, width, layers)
        self.act = _act(layers)

    def forward(self, x):
        z = self.fc_z(self.encoder(x))
        return (self.decoder(self.act(self.fc_dec(z)).view(len(z), *self.start)),)


def ae_loss(recon, x):
    return F.mse_loss(recon, x)


PLAIN = {"vae": (PlainConvVAE, vae_loss), "ae": (PlainConvAE, ae_loss)}


class PlainDCGAN(nn.Module):
    """Generator and discriminator as the DCGAN example writes them, with our stage plan."""

    def __init__(self, spec: ImageSpec, latent_dim: int = 64, width: int = 16):
        super().__init__()
        chans, h, w = down_plan(spec, width, width * 8)
        rev = list(reversed(chans))
        g: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, rev[0], (h, w), 1, 0, bias=False),
                              nn.BatchNorm2d(rev[0]), nn.ReLU(True)]
        for i, c in enumerate(rev):
            last = i == len(rev) - 1
            c_out = spec.channels if last else rev[i + 1]
            g.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))
            g += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU(True)]
        self.G = nn.Sequential(*g)
        d: list[nn.Module] = []
        c_in = spec.channels
        for c in chans:
            d += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.D = nn.Sequential(*d, nn.Conv2d(c_in, 1, (h, w), 1, 0), nn.Flatten())
        self.latent_dim = latent_dim



def gan_step(gan: PlainDCGAN, x: torch.Tensor, batch: int, lr: float = 2e-4):
    """The DCGAN example's training step as `step(i)` on the i-th contiguous slice of `x`; returns
    the images trained on."""
    G, D = gan.G, gan.D
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch, 1, device=x.device), torch.zeros(batch, 1, device=x.device)
    n = len(x)
    G.train()
    D.train()

    def step(i):
        real = x[(i * batch) % (n - batch):][:batch] * 2 - 1
        fake = G(torch.randn(batch, gan.latent_dim, 1, 1, device=x.device))
        opt_d.zero_grad()
        err_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        err_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        err_g = bce(D(fake), ones)
        err_g.backward()
        opt_g.step()
        err_d.item(), err_g.item()
        return batch

    return step


class LucidrainsVQVAE(nn.Module):
    """Our VQ-VAE's encoder and decoder (engines.vq.nets, the same config) around lucidrains'
    `VectorQuantize` (EMA codebook, k-means init, dead-code replacement) — what a user of that
    library would write: loss = MSE(sigmoid(decoder(q)), x) + its commitment loss."""

    def __init__(self, spec: ImageSpec, c):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        from engines.vq.nets import GridDecoder, GridEncoder, grid_plan

        k = grid_plan(spec, c.downsample)
        self.encoder = GridEncoder(spec, c.code_dim, c.width, k, c.res_blocks)
        self.decoder = GridDecoder(spec, c.code_dim, c.width, k, c.res_blocks)
        self.vq = VectorQuantize(dim=c.code_dim, codebook_size=c.codebook_size, decay=c.ema_decay,
                                 commitment_weight=c.beta, kmeans_init=c.kmeans_init, kmeans_iters=10,
                                 threshold_ema_dead_code=2, accept_image_fmap=True)

    def forward(self, x):
        q, _, commit = self.vq(self.encoder(x))
        return F.mse_loss(torch.sigmoid(self.decoder(q)), x) + commit.sum()


def vector_quantize_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("vector-quantize-pytorch")
    except Exception:  # noqa: BLE001 - not installed
        return None


def vq_step(model: LucidrainsVQVAE, x: torch.Tensor, batch: int, lr: float):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(x)

    def step(i):
        loss = model(x[(i * batch) % (n - batch):][:batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        return batch

    return step


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plain_model(name: str, spec: ImageSpec, latent_dim: int = 16, width: int = 32, seed: int = 0,
                layers: str = "usual"):
    """The AE/VAE peer: `layers` "usual" (BatchNorm → ReLU, what a tutorial writes) or "ours" (the
    engine's GroupNorm → SiLU layers, the same work as ours in a plain loop)."""
    if layers not in ("usual", "ours"):
        raise ValueError(f"layers is 'usual' or 'ours', not {layers!r}")
    cls, loss = PLAIN[name]
    torch.manual_seed(seed)
    return cls(spec, latent_dim, width, layers), loss


def plain_step(model, loss_fn, x: torch.Tensor, batch: int, lr: float = 1e-3):
    """The standard training step as `step(i)` on the i-th contiguous slice of `x`; returns the images."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(x)

    def step(i):
        xb = x[(i * batch) % (n - batch):][:batch]
        out = model(xb)
        loss = loss_fn(*out, xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        return batch

    return step


# ---- pythae -------------------------------------------------------------------------------------
def pythae_version() -> str | None:
    try:
        from importlib import metadata

        return metadata.version("pythae")
    except Exception:  # noqa: BLE001 - not installed, or broken metadata
        return None


def pythae_vae(input_dim=(1, 28, 28), latent_dim: int = 16, seed: int = 0):
    """pythae's VAE with its default MLP encoder/decoder (784-512-z, z-512-784, sigmoid output)."""
    from pythae.models import VAE, VAEConfig

    torch.manual_seed(seed)
    return VAE(VAEConfig(input_dim=tuple(input_dim), latent_dim=latent_dim, reconstruction_loss="bce"))


def train_pythae(model, xtr: torch.Tensor, seconds: float, batch: int = 64, lr: float = 1e-3, seed: int = 0) -> dict:
    """Shuffled epochs of `model({'data': xb}).loss` with Adam for `seconds` of wall time."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(xtr)
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < seconds:
        perm = torch.randperm(n)
        for i in range(0, n - batch + 1, batch):
            loss = model({"data": xtr[perm[i:i + batch]]}).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - t0 >= seconds:
                break
    model.eval()
    return {"img_per_s": steps * batch / (time.perf_counter() - t0), "steps": steps}


@torch.no_grad()
def pythae_bounds(model, x: torch.Tensor, k: int = 64, seed: int = 0) -> tuple[float, float]:
    """−ELBO and −IWAE_k in nats/image, the same estimator as bench/vae_vs_mlp.mlp_bounds."""
    g = torch.Generator().manual_seed(seed)
    out = model.encoder(x)
    mu, logvar = out.embedding, out.log_covariance
    std = (0.5 * logvar).exp()
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    eps = torch.randn((k, *mu.shape), generator=g)
    z = mu + std * eps
    probs = model.decoder(z.flatten(0, 1))["reconstruction"].reshape(k * len(x), -1)
    target = x.reshape(len(x), -1).repeat(k, 1)
    lpx = -F.binary_cross_entropy(probs, target, reduction="none").sum(1).view(k, -1)
    lpz = -0.5 * (z ** 2 + LOG_2PI).sum(-1)
    lqz = (-0.5 * (eps ** 2 + LOG_2PI) - 0.5 * logvar).sum(-1)
    nelbo = kl - lpx.mean(0)
    niwae = -(torch.logsumexp(lpx + lpz - lqz, 0) - math.log(k))
    return float(nelbo.mean()), float(niwae.mean())
