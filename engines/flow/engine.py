"""Glow-style normalizing flow as an Engine (`--engine flow`): exact likelihood, exact latents.

- **Latent.** `encode` maps an image x to the standardised latents ε of every split and of the top,
  flattened into one vector of D = C·H·W numbers; `decode` is its exact inverse (round trip error
  ~1e-6 in float32). x = k/255 enters the flow at its bin centre y = (255x + ½)/256, an affine map
  of any real x, so decode(encode(x)) = x also for images that are not 8-bit. The prior of ε is
  exactly N(0, I) (prior.py), so `log_prior` is log N(ε; 0, I) and `sample --set temperature=T`
  draws ε ~ N(0, T²I) — Glow's temperature. Latents far outside the data can overflow the inverse
  (an "exploding inverse"): those pixels decode to 0, never NaN.
- **Likelihood.** Training minimises, and `evaluate`/`likelihood` report, the dequantisation bound
  in bits per dimension: bpd = (−log p(y) + log q(u|k)) / (D ln 2) + 8 with y = (k + u)/256
  (dequant.py explains the bound; uniform q by default, `dequantization=variational` learns q).
  `likelihood` averages it over the test images and `eval_samples` draws of u (a fixed seed), so it
  is an unbiased estimate of the bound, not a stochastic lower/upper mix.
- **Numerics.** The flow runs in float32 — autocast is switched off here even on CUDA, since bf16
  log-scales would cost the exactness of both the inverse and the likelihood. Per-layer log-dets
  are float32 sums of per-channel terms; they, the Gaussian log-density and the bound are added up
  in float64 (log p of a 64×64×3 image is ~10⁴ nats). The inverse 1×1 weight is inverted in float64.
  Coupling scales are sigmoid(h + 2) ∈ (0, 1), computed as log σ = −softplus(−(h + 2)). Gradients
  are clipped to norm `grad_clip`, the learning rate warms up linearly over `warmup_steps` (actnorm's
  data-dependent initialisation sets the scales on the first batch), and a NaN/Inf loss skips the
  step while NaN/Inf weights stop the run cleanly (engines/train.py).
- **Classes.** With `num_classes` > 0 the coupling nets and the priors take the label; a share
  `label_dropout` of training images is seen with an extra "no label" class, which is what
  `encode`, `decode` and `likelihood` use (the unconditional density); `sample --set label=k`
  draws class k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engines.base import Batch, Engine, as_images
from engines.config import CLASSES_MAX, LR_MAX, LR_MIN, STEPS_MAX, WIDTH_MAX, ConfigError, EngineConfig, option
from engines.flow.dequant import VariationalDequantizer, bin_centres, bits_per_dim, dequantize, from_bin_centres
from engines.flow.model import Glow, max_levels, standard_normal_logpdf


@dataclass
class FlowConfig(EngineConfig):
    lr: float = option(1e-3, "Adam learning rate (after the warm-up)", minimum=LR_MIN, maximum=LR_MAX)
    levels: int = option(3, "multi-scale levels (squeeze … split); capped at what the image size allows (2 at 28×28)",
                         minimum=1, maximum=6)
    steps: int = option(8, "flow steps (actnorm, 1×1 conv, coupling) per level", minimum=1, maximum=64)
    width: int = option(64, "channels of the coupling networks", minimum=4, maximum=WIDTH_MAX * 8)
    dequantization: str = option("uniform", "how 8-bit intensities become continuous: uniform noise, or a learned "
                                 "(variational) noise distribution that tightens the bound",
                                 choices=("uniform", "variational"))
    num_classes: int = option(0, "condition on the data set's labels 0…N−1 (0 = unconditional)", minimum=0,
                              maximum=CLASSES_MAX)
    label_dropout: float = option(0.1, "conditional: share of training images seen without label (for the "
                                  "unconditional density encode/decode/likelihood use)", minimum=0.0, maximum=1.0)
    grad_clip: float = option(500.0, "clip the gradient norm (of the bits/dim loss) to this: a safety net against one "
                              "exploding step; typical norms are 1–100 (0 = no clipping)", minimum=0.0, maximum=1e6)
    warmup_steps: int = option(0, "linear learning-rate warm-up over this many steps (for large models or learning "
                               "rates)", minimum=0, maximum=STEPS_MAX)
    eval_samples: int = option(4, "dequantisation draws per test image in `evaluate`'s bits/dim", minimum=1,
                               maximum=1000)


class FlowEngine(Engine):
    name = "flow"
    Config = FlowConfig
    capabilities = frozenset({"encode", "encode_exact", "decode", "sample", "likelihood", "log_prior"})
    sampling_options = {"temperature": float, "label": int}

    def check_spec(self, spec):
        if max_levels(spec.height, spec.width) < 1:
            raise ConfigError(f"the flow squeezes 2×2 patches: image sides must be even, got {spec.height}×{spec.width}")

    @property
    def levels(self) -> int:
        return min(self.config.levels, max_levels(self.spec.height, self.spec.width))

    def build(self):
        c, s = self.config, self.spec
        n_labels = c.num_classes + 1 if c.num_classes else 0
        nets = {"flow": Glow(s.channels, s.height, s.width, self.levels, c.steps, c.width, n_labels)}
        if c.dequantization == "variational":
            nets["dequant"] = VariationalDequantizer(s.channels, min(c.width, 32))
        return nets

    @property
    def latent_shape(self):
        return (self.spec.numel,)

    # ---- labels ---------------------------------------------------------------------------------
    def _labels(self, n: int, label: int | None = None, given: torch.Tensor | None = None):
        """The label tensor the flow takes: None for unconditional flows; the "no label" class
        (num_classes) unless a label is given."""
        k = self.config.num_classes
        if k == 0:
            if label is not None and label >= 0:
                raise ConfigError("this flow is unconditional: it takes no label")
            return None
        if given is not None:
            y = given.long().to(self.device)
            if int(y.max()) >= k or int(y.min()) < 0:
                raise ConfigError(f"the data's labels go from {int(y.min())} to {int(y.max())} but num_classes is {k}")
            return y
        if label is not None and label >= 0:
            if label >= k:
                raise ConfigError(f"label must be within 0…{k - 1}, got {label}")
            return torch.full((n,), int(label), device=self.device, dtype=torch.long)
        return torch.full((n,), k, device=self.device, dtype=torch.long)

    # ---- latents ----------------------------------------------------------------------------------
    def _encode(self, x, labels=None):
        flow = self.nets["flow"]
        eps, _ = flow(bin_centres(x.float()), labels if labels is not None else self._labels(len(x)))
        return flow.flatten(eps)

    def _decode(self, z, labels=None):
        flow = self.nets["flow"]
        y = flow.inverse(flow.unflatten(z.float()), labels if labels is not None else self._labels(len(z)))
        # Far from the data (e.g. z + 3·Δ of a strong attribute vector) the inverse can overflow —
        # flows' "exploding inverses" (Behrmann et al. 2021); such pixels come back black, not NaN.
        return torch.nan_to_num(from_bin_centres(y), nan=0.0, posinf=1.0, neginf=0.0)

    def log_prior(self, z):
        """log N(ε; 0, I) per latent vector: the prior of the standardised latents, exactly."""
        z = torch.as_tensor(z, dtype=torch.float32)
        return standard_normal_logpdf(z.reshape(len(z), -1)).float()

    def prior_sample(self, n, generator, temperature: float = 1.0, label: int | None = None, **_):
        t = float(temperature)
        if not math.isfinite(t) or t < 0:
            raise ConfigError(f"sampling option temperature must be a finite number ≥ 0, got {temperature}")
        return t * torch.randn((n, *self.latent_shape), generator=generator, device=self.device)

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0, label: int | None = None):
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        with self.lock:
            z = self.prior_sample(n, g, temperature)
            labels = self._labels(n, label)
        if labels is None:
            return self.decode(z)
        with self.inference():
            return torch.cat([self._decode(zc, lc).clamp_(0, 1) for zc, lc in zip(z.split(512), labels.split(512))])

    # ---- the likelihood ---------------------------------------------------------------------------
    def bits(self, x: torch.Tensor, generator: torch.Generator, labels=None) -> torch.Tensor:
        """The dequantisation bound per image in bits per dimension (float64) for one draw of u."""
        y, log_q = dequantize(x.float(), generator, self.nets["dequant"] if "dequant" in self.nets else None)
        return bits_per_dim(self.nets["flow"].log_prob(y, labels), log_q, self.spec.numel)

    def _loss(self, batch: Batch):
        with torch.autocast(self.device.type, enabled=False):
            x = batch.x.float()
            labels = None
            if self.config.num_classes:
                labels = self._labels(len(x), given=batch.labels) if batch.labels is not None else self._labels(len(x))
                drop = torch.rand(len(x), generator=self.rng, device=x.device) < self.config.label_dropout
                labels = torch.where(drop, torch.full_like(labels, self.config.num_classes), labels)
            bpd = self.bits(x, self.rng, labels).mean().float()
        return bpd, {"loss": bpd, "bpd": bpd}

    def backward(self, loss):
        """Backpropagate, then clip the gradient norm; a non-finite norm skips the step."""
        if not super().backward(loss):
            return False
        if self.config.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_([p for p in self.nets.parameters() if p.grad is not None],
                                                  self.config.grad_clip)
            self._grad_norm = float(norm)
            return math.isfinite(self._grad_norm)
        return True

    def train_step(self, batch):
        warm = self.config.warmup_steps
        with self.lock:
            for group in self.optimizers["main"].param_groups:
                group["lr"] = self.config.lr * (min(1.0, (self.step + 1) / warm) if warm else 1.0)
        out = super().train_step(batch)
        if getattr(self, "_grad_norm", None) is not None:
            out["grad_norm"] = self._grad_norm
        return out

    @torch.no_grad()
    def likelihood(self, x, quick: bool = False):
        """The bound on −log P(x) of the 8-bit images in bits per dimension (see dequant.py), mean
        over the images and `eval_samples` draws of the dequantisation noise (1 when quick)."""
        x = as_images(x, self.device)
        g = torch.Generator(device=self.device).manual_seed(0)
        draws = 1 if quick else self.config.eval_samples
        with self.inference():
            total = sum(float(self.bits(xb, g, self._labels(len(xb))).sum())
                        for _ in range(draws) for xb in x.split(256))
        return {"bpd": total / (draws * len(x))}
