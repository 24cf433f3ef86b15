"""The PixelCNN engine (`--engine pixelcnn`): a gated PixelCNN over 8-bit images.

Output: a 256-way softmax per sub-pixel, as in the gated PixelCNN paper, rather than PixelCNN++'s
discretised logistic mixture. Reasons: it assumes nothing about the shape of p(x_i | x_<i) (the
digits here are upscaled 8×8 images whose pixels pile up on a few grey levels, which a softmax
learns exactly and a smooth mixture only approximately), the likelihood is an exact sum of
per-sub-pixel cross-entropies with no bin-edge cases, and the very same head is a K-way softmax
over VQ codes when the net serves as a code prior (`engines.vq.prior_pixelcnn`). The cost is
256 logits per sub-pixel (more memory, a little slower to learn the ordinal structure).

The model has no latent: it cannot encode or decode, so Manifold and Arithmetic have nothing to
explore; it samples (pixel by pixel: `raster_loop`, capability "raster"), completes partly given
images (`complete`) and scores test images exactly (`likelihood` → bits per dimension). A
class-conditional model (num_classes > 0) is scored by the exact marginal
log p(x) = log Σ_y p(x | y) p(y) under a uniform p(y).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.base import Batch, Engine, as_images, class_labels
from engines.config import CLASSES_MAX, LR_MAX, LR_MIN, WIDTH_MAX, ConfigError, EngineConfig, option
from engines.pixelcnn.net import GatedPixelCNN
from engines.pixelcnn.raster import RasterLoop

LEVELS = 256  # 8-bit sub-pixels


@dataclass
class PixelCNNConfig(EngineConfig):
    lr: float = option(1e-3, "Adam learning rate", minimum=LR_MIN, maximum=LR_MAX)
    hidden: int = option(48, "channels of each stack (a multiple of the image channels)", minimum=3, maximum=WIDTH_MAX)
    layers: int = option(6, "gated layers", minimum=1, maximum=32)
    kernel: int = option(5, "width of the first layer's kernel (odd)", minimum=3, maximum=15)
    inner_kernel: int = option(3, "width of every later layer's kernel (odd)", minimum=3, maximum=15)
    num_classes: int = option(0, "condition on the data set's labels 0…N−1 (0 = unconditional)", minimum=0, maximum=CLASSES_MAX)
    grad_clip: float = option(1.0, "clip the gradient norm to this (0 = off)", minimum=0.0, maximum=1e6)
    temperature: float = option(1.0, "default sampling temperature (divides the logits; 0 = most likely value)", minimum=0.0, maximum=10.0)
    positions: bool = option(True, "learn a bias per row and column in every layer (where in the image a pixel is)")

    # Files written before `positions` / `inner_kernel` existed were trained without positions and
    # with 3-wide inner kernels.
    absent_means = {"positions": False, "inner_kernel": 3}


class PixelCNNEngine(Engine):
    name = "pixelcnn"
    Config = PixelCNNConfig
    capabilities = frozenset({"sample", "likelihood", "raster"})
    sampling_options = {"temperature": float, "label": int}

    def check_spec(self, spec):
        c = self.config
        if c.hidden % spec.channels:
            raise ConfigError(f"hidden ({c.hidden}) must be a multiple of the image channels ({spec.channels}), e.g. "
                              f"{c.hidden - c.hidden % spec.channels}")
        for name in ("kernel", "inner_kernel"):
            if getattr(c, name) % 2 == 0:
                raise ConfigError(f"{name} must be odd, got {getattr(c, name)}")

    def build(self):
        c = self.config
        ch = self.spec.channels
        pos = (self.spec.height, self.spec.width) if c.positions else None
        return {"net": GatedPixelCNN(ch, ch, LEVELS, c.hidden, c.layers, c.kernel, c.num_classes, pos,
                                     c.inner_kernel)}

    @property
    def latent_shape(self):
        return ()  # no latent

    # ---- data ↔ values ------------------------------------------------------------------------
    @staticmethod
    def values_of(x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → integer levels 0…255."""
        return (x * (LEVELS - 1)).round_().clamp_(0, LEVELS - 1).long()

    @staticmethod
    def images_of(values: torch.Tensor) -> torch.Tensor:
        return values.float() / (LEVELS - 1)

    def logits(self, values: torch.Tensor, labels: torch.Tensor | None = None, row0: int = 0) -> torch.Tensor:
        """(N, C, h, W) levels → (N, 256, C, h, W) logits of every sub-pixel given those before it
        (`row0`: the image row of the first row given)."""
        return self.nets["net"](values.float() * (2.0 / (LEVELS - 1)) - 1.0, labels, row0)

    def _nll_terms(self, v: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(N, C, H, W) levels → (N, H·W·C) −log p of every sub-pixel, nats."""
        lg = self.nets["net"].logits_last(v.float() * (2.0 / (LEVELS - 1)) - 1.0, labels)
        target = v.permute(0, 2, 3, 1).reshape(-1)
        return F.cross_entropy(lg.reshape(-1, LEVELS).float(), target, reduction="none").view(len(v), -1)

    def _labels(self, n: int, label: int | None) -> torch.Tensor | None:
        return class_labels(n, label, self.config.num_classes, self.device, "this PixelCNN")

    # ---- training -----------------------------------------------------------------------------
    def _loss(self, batch: Batch):
        labels = None
        if self.config.num_classes > 0:
            if batch.labels is None:
                raise ConfigError("a class-conditional PixelCNN needs a data set with labels")
            labels = batch.labels.long()
            if int(labels.max()) >= self.config.num_classes or int(labels.min()) < 0:
                raise ConfigError(f"the data's labels go up to {int(labels.max())} but num_classes is "
                                  f"{self.config.num_classes}")
        v = self.values_of(batch.x)
        nll = self._nll_terms(v, labels).mean()  # nats per sub-pixel
        return nll, {"loss": nll, "bpd": nll / math.log(2)}

    def backward(self, loss):
        ok = super().backward(loss)
        if ok and self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.nets.parameters(), self.config.grad_clip)
        return ok

    # ---- likelihood ---------------------------------------------------------------------------
    def nll(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """−log p(x) in nats per image (for a conditional model without labels: the marginal over
        a uniform class prior), exact."""
        x = as_images(x, self.device)
        k = self.config.num_classes

        def one(chunk, lab):
            v = self.values_of(chunk)
            if k == 0 or lab is not None:
                return self._nll_terms(v, lab).sum(1)
            per_class = torch.stack([self._nll_terms(v, torch.full((len(v),), y, device=v.device)).sum(1)
                                     for y in range(k)], 1)
            return -(torch.logsumexp(-per_class, 1) - math.log(k))

        with self.inference():
            chunks = range(0, len(x), 256)
            parts = [one(x[i:i + 256], None if labels is None else labels[i:i + 256].to(self.device)) for i in chunks]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    @torch.no_grad()
    def likelihood(self, x, quick: bool = False):
        """Exact bits per dimension: −log₂ p(x) / (C·H·W) of the 8-bit images, averaged."""
        x = as_images(x, self.device)[: (256 if quick else len(x))]
        return {"bpd": float(self.nll(x).mean()) / (self.spec.channels * self.spec.height * self.spec.width * math.log(2))}

    # ---- sampling -----------------------------------------------------------------------------
    def _loop(self, values, todo, temperature, label, seed, labels=None) -> RasterLoop:
        temperature = self.config.temperature if temperature is None else float(temperature)
        if not 0 <= temperature <= 10:
            raise ConfigError(f"temperature must be within [0, 10], got {temperature}")
        if labels is None or self.config.num_classes == 0 or (label is not None and label >= 0):
            labels = self._labels(len(values), label)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        return RasterLoop(lambda v, row0: self.logits(v, labels, row0), values, todo, temperature, g, guard=self.inference,
                          context_rows=self.nets["net"].context_rows())

    def raster_loop(self, n: int, seed: int = 0, temperature: float | None = None, label: int | None = None) -> RasterLoop:
        """Sampling step by step: one `RasterStep` per pixel (see engines.pixelcnn.raster);
        `images_of(step.values)` is the picture so far."""
        s = self.spec
        values = torch.zeros((n, s.channels, s.height, s.width), dtype=torch.long, device=self.device)
        return self._loop(values, torch.ones((n, s.height, s.width), dtype=torch.bool), temperature, label, seed)

    def completion_loop(self, x, rows: int | None = None, per_image: int = 4, seed: int = 0,
                        temperature: float | None = None, label: int | None = None,
                        labels=None) -> RasterLoop:
        """Keep the top `rows` rows (default half) of each image and draw the rest, `per_image`
        times each: the result is image-major (image 0's completions first). A class-conditional
        model completes each image as its own class when `labels` (one per image) are given and
        no `label` is asked for."""
        x = as_images(x, self.device)
        h = self.spec.height
        rows = h // 2 if rows is None else int(rows)
        if not 0 <= rows <= h:
            raise ConfigError(f"rows to keep must be within 0…{h}, got {rows}")
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise ConfigError(f"images are {tuple(x.shape[1:])}, the model draws {tuple(self.spec.shape)}")
        values = self.values_of(x).repeat_interleave(int(per_image), 0)
        todo = torch.zeros((len(values), h, self.spec.width), dtype=torch.bool)
        todo[:, rows:] = True
        if labels is not None:
            labels = torch.as_tensor(labels).long().to(self.device).repeat_interleave(int(per_image))
            k = self.config.num_classes
            if k and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise ConfigError(f"labels must be within 0…{k - 1}")
        return self._loop(values, todo, temperature, label, seed, labels)

    def complete(self, x, rows: int | None = None, per_image: int = 4, seed: int = 0,
                 temperature: float | None = None, label: int | None = None, labels=None,
                 callback=None) -> torch.Tensor:
        return self.images_of(self.completion_loop(x, rows, per_image, seed, temperature, label, labels).run(callback))

    def sample(self, n: int, seed: int = 0, temperature: float | None = None, label: int | None = None,
               callback=None, **_) -> torch.Tensor:
        return self.images_of(self.raster_loop(n, seed, temperature, label).run(callback))

    def prior_sample(self, n, generator, **_):
        raise NotImplementedError("a PixelCNN has no latent to draw")
