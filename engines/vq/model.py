"""VQ-VAE family: conv encoder → grid of code indices → decoder.

- `quantizer=vq` (default): nearest-codebook quantisation, straight-through gradients, loss
  ‖x − D(e)‖² + ‖sg[E(x)] − e‖² + β‖E(x) − sg[e]‖² (or EMA codebook updates, default on);
  k-means initialisation and dead-code revival (`engines.vq.quantize`).
- `quantizer=gumbel`: the dVAE relaxation with an annealed temperature and KL to a uniform prior.
- `gan_weight > 0`: VQGAN — a patch discriminator with hinge loss whose generator term is scaled
  by the adaptive weight ‖∇ L_rec‖ / ‖∇ L_G‖ at the decoder's last layer.
- A causal transformer prior over code grids (`engines.vq.prior`; `prior=pixelcnn`: a gated
  PixelCNN, `engines.vq.prior_pixelcnn`) lives in the same checkpoint,
  trained after the autoencoder (`python main.py train-prior`); `sample()` draws code grids from
  it. Until it is trained, samples draw each cell independently from the codes' usage histogram.

The latent that `encode`/`decode` exchange (Manifold and Arithmetic panels) is the grid *before*
quantisation, flattened: (code_dim, h, w) for `vq`, the code logits (K, h, w) for `gumbel`;
`decode` quantises it first, so nearby latents decode to the same image until a cell changes code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.base import Batch, Engine, as_images
from engines.vq.prior import CodePrior
from engines.vq.prior_pixelcnn import PixelCNNCodePrior
from engines.config import LR_MAX, LR_MIN, STEPS_MAX, WEIGHT_MAX, WIDTH_MAX, EngineConfig, option
from engines.device import adam, autocast
from engines.vq.quantize import GumbelQuantizer, VectorQuantizer, codes_used_within, perplexity
from engines.vq.nets import GridDecoder, GridEncoder, PatchDiscriminator, grid_plan


PRIOR_KINDS = ("transformer", "pixelcnn")
PRIOR_SETTINGS = ("prior", "prior_dim", "prior_layers", "prior_heads", "prior_lr")


@dataclass
class VQVAEConfig(EngineConfig):
    codebook_size: int = option(256, "number of codes K in the codebook", minimum=2, maximum=65_536)
    code_dim: int = option(32, "length of each code vector", minimum=1, maximum=1024)
    width: int = option(32, "channels of the first conv stage (doubles per stage, capped at 4×)", minimum=4, maximum=WIDTH_MAX)
    res_blocks: int = option(1, "residual blocks at grid resolution in encoder and decoder", minimum=0, maximum=8)
    downsample: int = option(0, "halvings from image to code grid (0 = automatic: 64→8×8, 28→7×7, 8→4×4)", minimum=0, maximum=6)
    quantizer: str = option("vq", "vq: nearest code (straight-through); gumbel: dVAE Gumbel-softmax relaxation", choices=("vq", "gumbel"))
    beta: float = option(0.25, "weight β of the commitment loss", minimum=0.0, maximum=WEIGHT_MAX)
    ema: bool = option(True, "update the codebook by exponential moving averages instead of the codebook loss")
    ema_decay: float = option(0.99, "EMA decay of the codebook statistics", minimum=0.0, maximum=0.9999)
    kmeans_init: bool = option(True, "initialise the codebook by k-means on the first batch's encoder outputs")
    dead_after: int = option(50, "re-seed codes unused for this many steps from encoder outputs (0 = never)", minimum=0, maximum=STEPS_MAX)
    tau_start: float = option(1.0, "gumbel: initial softmax temperature", minimum=1e-3, maximum=100.0)
    tau_end: float = option(0.0625, "gumbel: final temperature (exponential annealing)", minimum=1e-3, maximum=100.0)
    tau_anneal_steps: int = option(5000, "gumbel: steps over which the temperature is annealed", minimum=1, maximum=STEPS_MAX)
    kl_weight: float = option(5e-4, "gumbel: weight of KL(q ‖ uniform) per cell", minimum=0.0, maximum=WEIGHT_MAX)
    gan_weight: float = option(0.0, "VQGAN: weight of the adaptive-weighted hinge GAN loss (0 = off)", minimum=0.0, maximum=WEIGHT_MAX)
    gan_start: int = option(2000, "VQGAN: step at which the discriminator starts", minimum=0, maximum=STEPS_MAX)
    disc_width: int = option(32, "VQGAN: channels of the patch discriminator's first layer", minimum=4, maximum=WIDTH_MAX)
    prior: str = option("transformer", "prior over code grids: a causal transformer or a gated PixelCNN",
                        choices=PRIOR_KINDS)
    prior_dim: int = option(128, "prior: transformer width (PixelCNN: channels)", minimum=8, maximum=1024)
    prior_layers: int = option(4, "prior: transformer (or gated PixelCNN) layers", minimum=1, maximum=24)
    prior_heads: int = option(4, "prior: attention heads (must divide prior_dim)", minimum=1, maximum=64)
    prior_lr: float = option(5e-4, "prior: Adam learning rate", minimum=LR_MIN, maximum=LR_MAX)


class VQVAEEngine(Engine):
    name = "vqvae"
    Config = VQVAEConfig
    capabilities = frozenset({"encode", "encode_exact", "decode", "sample", "codebook", "code_prior"})
    sampling_options = {"temperature": float}
    # `epoch_steps` (Engine: steps per epoch, set by the training loop): `codes_used_epoch` counts
    # codes chosen within that many steps (100 when trained outside the loop).

    def check_spec(self, spec):
        c = self.config
        if c.prior == "transformer" and c.prior_dim % c.prior_heads:
            raise ValueError(f"prior_heads ({c.prior_heads}) must divide prior_dim ({c.prior_dim})")
        grid_plan(spec, c.downsample)

    def build(self):
        c = self.config
        k = grid_plan(self.spec, c.downsample)
        self.grid = (self.spec.height // 2 ** k, self.spec.width // 2 ** k)
        enc_out = c.codebook_size if c.quantizer == "gumbel" else c.code_dim
        nets = {
            "encoder": GridEncoder(self.spec, enc_out, c.width, k, c.res_blocks),
            "decoder": GridDecoder(self.spec, c.code_dim, c.width, k, c.res_blocks),
            "prior": self._make_prior(c),
            "stats": _Usage(c.codebook_size),
        }
        if c.quantizer == "gumbel":
            nets["quantizer"] = GumbelQuantizer(c.codebook_size, c.code_dim, c.tau_start, c.tau_end,
                                                c.tau_anneal_steps, c.kl_weight)
        else:
            nets["quantizer"] = VectorQuantizer(c.codebook_size, c.code_dim, c.beta, c.ema, c.ema_decay,
                                                c.kmeans_init, dead_after=c.dead_after)
        if c.gan_weight > 0:
            nets["disc"] = PatchDiscriminator(self.spec, c.disc_width)
        return nets

    def _make_prior(self, c) -> nn.Module:
        if c.prior == "pixelcnn":
            return PixelCNNCodePrior(c.codebook_size, self.grid, c.prior_dim, c.prior_layers)
        return CodePrior(c.codebook_size, self.grid, c.prior_dim, c.prior_layers, c.prior_heads)

    def replace_prior(self, **settings) -> None:
        """A fresh, untrained prior built from the config with `settings` (names in
        PRIOR_SETTINGS) changed — e.g. `prior="pixelcnn"` to compare it with the transformer on
        the same codebook. The config changes with it, so the checkpoint rebuilds the new kind."""
        import dataclasses

        from engines import config as cfgmod

        bad = sorted(set(settings) - set(PRIOR_SETTINGS))
        if bad:
            raise cfgmod.ConfigError(f"not a prior setting: {', '.join(bad)} (prior settings: {', '.join(PRIOR_SETTINGS)})")
        c = dataclasses.replace(self.config, **{k: cfgmod.coerce(type(self.config), k, v) for k, v in settings.items()})
        if c.prior == "transformer" and c.prior_dim % c.prior_heads:
            raise cfgmod.ConfigError(f"prior_heads ({c.prior_heads}) must divide prior_dim ({c.prior_dim})")
        with self.lock:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                prior = self._make_prior(c).to(self.device).eval()  # at rest, as the other nets (Engine.rest)
            self.config = c
            self.nets["prior"] = prior
            self.optimizers["prior"] = adam(prior.parameters(), lr=c.prior_lr)

    def make_optimizers(self):
        c = self.config
        main = [p for name in ("encoder", "decoder", "quantizer") for p in self.nets[name].parameters() if p.requires_grad]
        opts = {"main": adam(main, lr=c.lr),
                "prior": adam(self.nets["prior"].parameters(), lr=c.prior_lr)}
        if "disc" in self.nets:
            opts["disc"] = adam(self.nets["disc"].parameters(), lr=c.lr, betas=(0.5, 0.9))
        return opts

    @property
    def latent_shape(self):
        c = self.config
        return (c.codebook_size if c.quantizer == "gumbel" else c.code_dim, *self.grid)

    # ---- model pieces ---------------------------------------------------------------------
    def quantize(self, z_e):
        return self.nets["quantizer"](z_e, self.rng)

    def _encode(self, x):
        return self.nets["encoder"](x)

    def _indices_of_latent(self, z):
        q = self.nets["quantizer"]
        if isinstance(q, GumbelQuantizer):
            return z.argmax(1)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        return q.nearest(flat).view(z.shape[0], z.shape[2], z.shape[3])

    def _decode_indices(self, idx):
        return torch.sigmoid(self.nets["decoder"](self.nets["quantizer"].lookup(idx)).float())

    def _decode(self, z):
        return self._decode_indices(self._indices_of_latent(z))

    def _forward(self, x):
        q = self.quantize(self.nets["encoder"](x))
        return self.nets["decoder"](q.z_q), q

    def _loss(self, batch: Batch):
        out, q = self._forward(batch.x)
        rec = F.mse_loss(torch.sigmoid(out.float()), batch.x)
        loss = rec + q.loss
        return loss, {"loss": loss, "mse": rec, **q.terms, **self._epoch_usage()}

    def _epoch_usage(self) -> dict:
        window = self.epoch_steps or 100
        return {"codes_used_epoch": torch.tensor(float(codes_used_within(self.nets["quantizer"].since_used, window)))}

    def train_step(self, batch):
        if not isinstance(batch, Batch):
            batch = Batch(as_images(batch, self.device))
        if "disc" not in self.nets:
            return super().train_step(batch)
        return self._vqgan_step(batch)

    def _vqgan_step(self, batch: Batch) -> dict[str, float]:
        c = self.config
        with self.lock:
            self.nets.train()
            disc, opt, dopt = self.nets["disc"], self.optimizers["main"], self.optimizers["disc"]
            gan_on = self.step >= c.gan_start

            # Each phase's loss goes through forward_loss/backward: on several processes
            # (torchrun) that is where the gradients are averaged.
            def autoencoder_loss():
                with autocast(self.device):
                    out, q = self._forward(batch.x)
                    x_hat = torch.sigmoid(out.float())
                    rec = F.mse_loss(x_hat, batch.x)
                    loss = rec + q.loss
                    terms = {"mse": rec, **q.terms, **self._epoch_usage()}
                    if gan_on:
                        g_loss = -disc(x_hat * 2 - 1).float().mean()
                        last = self.nets["decoder"].last_layer
                        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
                        g_gan = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
                        w = (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach()
                        loss = loss + c.gan_weight * w * g_loss
                        terms.update(g_loss=g_loss, adaptive_weight=w)
                return loss, terms, x_hat

            def disc_loss(x_hat):
                with autocast(self.device):
                    d_real = disc(batch.x * 2 - 1).float()
                    d_fake = disc(x_hat.detach() * 2 - 1).float()
                    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()  # hinge

            opt.zero_grad(set_to_none=True)
            loss, terms, x_hat = self.forward_loss(autoencoder_loss)
            if self.backward(loss):
                opt.step()
            if gan_on:
                dopt.zero_grad(set_to_none=True)
                d_loss = self.forward_loss(disc_loss, x_hat)
                if self.backward(d_loss):
                    dopt.step()
                terms["d_loss"] = d_loss
            self.step += 1
            res = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}
            res["loss"] = float(loss.detach())
            return res

    # ---- codebook capabilities (the Codebook panel) ---------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def code_vectors(self) -> torch.Tensor:
        with self.lock:
            return self.nets["quantizer"].code_vectors.float().cpu().clone()

    def encode_indices(self, x) -> torch.Tensor:
        """Images → (N, h, w) int64 code grids."""
        x = as_images(x, self.device)
        return self._infer(lambda c: self._indices_of_latent(self._encode(c)), x)

    def decode_indices(self, idx) -> torch.Tensor:
        """(N, h, w) code grids (any codes in [0, K)) → images (N, C, H, W)."""
        idx = torch.as_tensor(idx).to(self.device, torch.long)
        if idx.dim() == 2:
            idx = idx[None]
        if idx.shape[1:] != self.grid:
            raise ValueError(f"code grid must be {self.grid[0]}×{self.grid[1]}, got {tuple(idx.shape[1:])}")
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size})")
        return self._infer(self._decode_indices, idx)

    def code_usage(self, x) -> torch.Tensor:
        """(K,) counts of each code over the images' grids."""
        idx = self.encode_indices(x)
        return torch.bincount(idx.flatten().cpu(), minlength=self.codebook_size)

    @property
    def stored_usage(self) -> torch.Tensor | None:
        """Usage counts over (part of) the training set, saved with the checkpoint; None if never computed."""
        u = self.nets["stats"].usage
        return u.cpu().clone() if float(u.sum()) > 0 else None

    @property
    def cell_size(self) -> tuple[int, int]:
        return (self.spec.height // self.grid[0], self.spec.width // self.grid[1])

    def cell_box(self, i: int, j: int, margin: float = 0.5) -> tuple[int, int, int, int]:
        """Pixel box (top, left, bottom, right) around grid cell (i, j), enlarged by `margin` cells
        on each side: the part of the receptive field that shapes the code most (the theoretical
        field of the conv stack is larger but its weight falls off fast)."""
        ch, cw = self.cell_size
        mh, mw = int(round(margin * ch)), int(round(margin * cw))
        return i * ch - mh, j * cw - mw, (i + 1) * ch + mh, (j + 1) * cw + mw

    # ---- prior ------------------------------------------------------------------------------
    def after_load(self) -> None:
        if int(self.nets["prior"].trained_steps) < 0:  # checkpoint.load refuses the file
            raise ValueError(f"the prior's step count is {int(self.nets['prior'].trained_steps)}")

    @property
    def prior_trained(self) -> bool:
        return self.nets["prior"].trained

    def prior_step(self, grids: torch.Tensor) -> float:
        """One optimisation step of the prior on (N, h, w) code grids; returns nats per token."""
        with self.lock:
            prior = self.nets["prior"]
            prior.train()
            opt = self.optimizers["prior"]
            opt.zero_grad(set_to_none=True)

            def nll_per_token(g):
                with autocast(self.device):
                    return prior.nll(g).mean() / prior.length

            # clone: grids from encode_indices are inference-mode tensors, which autograd refuses
            nll = self.forward_loss(nll_per_token, grids.to(self.device).clone())
            if self.backward(nll):
                torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
                opt.step()
                prior.trained_steps.add_(1)
            return float(nll.detach())

    def prior_nll(self, grids: torch.Tensor) -> torch.Tensor:
        """−log p(grid) under the prior, nats per grid."""
        grids = torch.as_tensor(grids).to(self.device, torch.long)
        return self._infer(lambda g: self.nets["prior"].nll(g).float(), grids)

    def sample_indices(self, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        with self.lock:
            return self._sample_grids(n, g, float(temperature))

    def _sample_grids(self, n, g, temperature):
        prior = self.nets["prior"]
        with torch.inference_mode():
            if prior.trained:
                was = prior.training
                prior.eval()
                try:
                    return prior.sample(n, temperature, g)
                finally:
                    prior.train(was)
            # No prior yet: independent cells from the usage histogram (flat if never computed).
            u = self.nets["stats"].usage.float() + 1e-3
            logits = torch.log(u / u.sum())
            if temperature <= 0:
                return logits.argmax().expand(n, *self.grid).clone()
            p = torch.softmax(logits / temperature, 0)
            return torch.multinomial(p, n * self.grid[0] * self.grid[1], replacement=True, generator=g).view(n, *self.grid)

    def inpaint(self, grids, mask, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """Re-draw the masked cells of (N, h, w) grids from the prior (each given the cells
        before it in raster order). Needs a trained prior."""
        if not self.prior_trained:
            raise ValueError("this model's prior is not trained yet (python main.py train-prior)")
        grids = torch.as_tensor(grids).to(self.device, torch.long)
        mask = torch.as_tensor(mask).to(self.device, torch.bool)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        with self.lock, torch.inference_mode():
            prior = self.nets["prior"]
            was = prior.training
            prior.eval()
            try:
                return prior.fill(grids, mask, float(temperature), g)
            finally:
                prior.train(was)

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0, **_) -> torch.Tensor:
        return self.decode_indices(self.sample_indices(n, seed, temperature))

    # ---- checkpoint / evaluation --------------------------------------------------------------
    def prepare_checkpoint(self, x) -> None:
        counts = self.code_usage(x)
        with self.lock:
            self.nets["stats"].usage.copy_(counts.to(self.nets["stats"].usage))

    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False):
        x = as_images(x, self.device)[:max_images]
        out = super().evaluate(x, max_images)
        if not len(x):
            return out
        idx = self.encode_indices(x)
        counts = torch.bincount(idx.flatten().cpu(), minlength=self.codebook_size)
        out["perplexity"] = float(perplexity(counts))
        out["codes_used_frac"] = float((counts > 0).float().mean())
        if self.prior_trained:
            nll = self.prior_nll(idx)
            out["prior_nats_per_token"] = float(nll.mean()) / (self.grid[0] * self.grid[1])
        return out


class _Usage(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.register_buffer("usage", torch.zeros(k))

