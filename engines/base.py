"""The one interface every model family implements.

The explorer calls engines from worker threads many times a second while a training thread may
be stepping the same engine, so every public entry point takes `self.lock`, and inference runs
under `torch.inference_mode()` in eval mode on the engine's device.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from engines import config as cfgmod
from engines.device import adam, autocast, fused_adam_supported, pick_device
from engines.spec import ImageSpec

# Chunk size for batched inference: bounds memory when a caller hands over a whole data set.
INFER_CHUNK = 512


class Batch(NamedTuple):
    x: torch.Tensor  # (N, C, H, W) float in [0, 1], on the engine's device
    labels: torch.Tensor | None = None


def as_images(x, device: torch.device) -> torch.Tensor:
    """Accept float tensors in [0,1] (N,C,H,W) or uint8 numpy/tensors (N,H,W[,C]) and return the former."""
    if isinstance(x, np.ndarray):
        # A read-only array (a memory-mapped data cache) is copied: torch must not alias it.
        x = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else np.array(x))
    if x.dtype == torch.uint8:
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.to(device=device, dtype=torch.float32)


def class_labels(n: int, label: int | None, num_classes: int, device, what: str) -> torch.Tensor | None:
    """The labels a class-conditional sampler draws with: None for an unconditional model (which
    refuses a label), one class after another when `label` is None or negative, else `label` n times.
    `what` names the model in the refusal ("this diffusion model")."""
    from engines.config import ConfigError

    if num_classes == 0:
        if label is not None and label >= 0:
            raise ConfigError(f"{what} is unconditional: it takes no label")
        return None
    if label is None or label < 0:
        return torch.arange(n, device=device) % num_classes
    if label >= num_classes:
        raise ConfigError(f"label must be within 0…{num_classes - 1}, got {label}")
    return torch.full((n,), int(label), device=device, dtype=torch.long)


# ---- capabilities ---------------------------------------------------------------------------------
# What an engine can do, declared once on its class (`capabilities`) and checked everywhere else:
# the explorer's panels enable themselves from it, the command line and the export refuse what a
# model cannot do, metrics decide what to measure. Name → (what it means, the methods it needs).
CAPABILITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "encode": ("images → latents (`encode`); declared with exactly one of encode_exact / encode_approx", ()),
    "encode_exact": ("`encode` is a direct function of the image (projection, encoder network, posterior mean)", ()),
    "encode_approx": ("`encode` only approximates the latent (GAN: inversion by optimisation; diffusion: "
                      "DDIM inversion) and costs many network passes per image", ()),
    "decode": ("latents → images (`decode`)", ()),
    "sample": ("draws images from the model (`sample`; latents from `prior_sample`)", ()),
    "likelihood": ("scores test images by log p(x) or a bound on it: `likelihood` (−ELBO/IWAE nats, bits per "
                   "dim), which `evaluate` reports", ("likelihood",)),
    "log_prior": ("`log_prior(z)`: the log density of latents under the model's prior", ("log_prior",)),
    "truncate": ("`truncate(z, psi)`: the truncation trick towards the prior's mean", ("truncate",)),
    "invert": ("`invert(x, …)`: latents found by optimisation, with per-image errors", ("invert",)),
    "denoise": ("`corrupt(x)` and `denoise(x)`: a denoising autoencoder", ("corrupt", "denoise")),
    "codebook": ("discrete latents on a grid of codebook entries",
                 ("codebook_size", "code_vectors", "encode_indices", "decode_indices", "code_usage", "cell_size",
                  "cell_box")),
    "code_prior": ("a learned prior over code grids (train, score, sample, inpaint)",
                   ("prior_trained", "prior_step", "prior_nll", "sample_indices", "inpaint")),
    "latent_layer": ("the decoder/generator reads the flat latent through one linear layer (`latent_layer`): "
                     "SeFa's closed-form directions and GANSpace on a generator's first-layer activations",
                     ("latent_layer",)),
    "raster": ("pixel-by-pixel sampling in raster order, every pixel observable: `raster_loop(n, seed, …)` "
               "(iterate for one step per pixel) and `completion_loop(x, rows, …)` (keep the top rows of images, "
               "draw the rest); `images_of(values)` turns a step's values into images",
               ("raster_loop", "completion_loop", "complete", "images_of")),
    "trajectory": ("step-wise sampling from noise, every step observable (`sample_loop`, `sampling_loop`, "
                   "`schedule`, `forward_process`)", ("sample_loop", "sampling_loop", "forward_process", "denoiser")),
}


class LatentLayer(NamedTuple):
    """What an engine with 'latent_layer' hands out (`engine.latent_layer()`): the weight A (out × D)
    of the first linear layer its decoder/generator applies to the latent, that layer's activations
    as a function of latents (after its normalisation and non-linearity: `features(z)` → (N, F)),
    and how many leading latent entries are free (the rest, e.g. a conditional GAN's class
    weights, are left alone by edit directions)."""
    weight: torch.Tensor
    features: object  # callable: latents (N, D) → activations (N, F); call under engine.inference()
    free_dims: int


# The metrics `likelihood` may report (engines.metrics.METRICS says what each means).
LIKELIHOOD_METRICS = ("elbo_nats", "iwae_nats", "iwae_k", "bpd")


def check_capabilities(cls) -> None:
    """Raise TypeError unless `cls.capabilities` names only known capabilities, with the methods
    each needs, and an encoder says whether it is exact (runs when an Engine subclass is defined)."""
    caps = cls.capabilities
    if not isinstance(caps, frozenset):
        raise TypeError(f"{cls.__name__}.capabilities must be a frozenset, got {type(caps).__name__}")
    unknown = sorted(caps - CAPABILITIES.keys())
    if unknown:
        raise TypeError(f"{cls.__name__} declares unknown capabilities {unknown} (known: {', '.join(CAPABILITIES)})")
    if "encode" in caps and len(caps & {"encode_exact", "encode_approx"}) != 1:
        raise TypeError(f"{cls.__name__} declares 'encode': add exactly one of 'encode_exact', 'encode_approx'")
    if caps & {"encode_exact", "encode_approx"} and "encode" not in caps:
        raise TypeError(f"{cls.__name__} declares how it encodes but not 'encode'")
    for cap in sorted(caps):
        missing = [m for m in CAPABILITIES[cap][1]
                   if not callable(getattr(cls, m, None)) and not isinstance(getattr(cls, m, None), property)]
        if cap == "likelihood" and getattr(cls, "likelihood", None) is Engine.likelihood:
            missing.append("likelihood")
        if missing:
            raise TypeError(f"{cls.__name__} declares '{cap}' but has no {', '.join(missing)}")


# Module types whose forward never reads `training` (exact types: a subclass may read it). A
# decode switches only the other modules (BatchNorm, dropout, a VQ codebook, any module of ours that
# does not declare `mode_free = True` in its own class body): the output is the same, and a drag's
# decode no longer touches every module of the nets (~20 µs of a 1.4 ms decode, cold caches).
MODE_FREE = frozenset({nn.Sequential, nn.ModuleDict, nn.ModuleList, nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d,
                       nn.GroupNorm, nn.LayerNorm, nn.SiLU, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid,
                       nn.Softplus, nn.Identity, nn.Flatten, nn.Unflatten, nn.Embedding, nn.Upsample, nn.AvgPool2d,
                       nn.MaxPool2d, nn.PixelShuffle, nn.PixelUnshuffle})


def mode_free(m: nn.Module) -> bool:
    """Whether `m`'s forward is the same in training and eval mode (see MODE_FREE)."""
    t = type(m)
    return t in MODE_FREE or (t.__dict__.get("mode_free") is True and t.train is nn.Module.train)


def _set_eval(modules: tuple[nn.Module, ...]) -> list[nn.Module]:
    """Put every one of `modules` in eval mode; return those that were training. The flag is set
    directly (what `nn.Module.train` does, without its per-call recursion) unless a module type
    overrides `train`, which is then called."""
    switched = [m for m in modules if m.training]
    for m in switched:
        if type(m).train is nn.Module.train:
            object.__setattr__(m, "training", False)
        else:
            m.train(False)
    return switched


def _restore_training(modules: list[nn.Module]) -> None:
    for m in modules:
        if type(m).train is nn.Module.train:
            object.__setattr__(m, "training", True)
        else:
            m.train(True)


def move_optimizer_state(opt: torch.optim.Optimizer, device: torch.device, fused: bool) -> None:
    """After the parameters moved to `device`: their optimizer state follows, Adam's fused kernel
    on or off as `device` has it (`fused`); step counts on the parameters' device where the fused
    (or a capturable) kernel wants them there, on the CPU for plain Adam."""
    for group in opt.param_groups:
        if "fused" in group and not group.get("capturable"):
            group["fused"] = fused or None
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if torch.is_tensor(v):
                    st[k] = v.to(device if k != "step" or on_device else "cpu")


class Engine:
    """Base class. Subclasses set `name`, `Config`, `capabilities` (names from CAPABILITIES,
    checked when the class is defined) and implement `build`, `latent_shape`, `_encode`,
    `_decode`, `_loss` (or `fit` for closed-form engines), and what their capabilities need."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = cfgmod.EngineConfig
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Closed-form engines (PCA) are fitted once on the whole training set instead of stepped.
    closed_form: ClassVar[bool] = False
    # Keyword options `sample()` accepts, with their types (the CLI's `sample --set`).
    sampling_options: ClassVar[dict] = {"temperature": float}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        check_capabilities(cls)

    def can(self, capability: str) -> bool:
        """Whether this engine declares `capability` (a name from CAPABILITIES)."""
        if capability not in CAPABILITIES:
            raise KeyError(f"unknown capability '{capability}' (known: {', '.join(CAPABILITIES)})")
        return capability in self.capabilities

    def _require(self, capability: str, what: str) -> None:
        if capability not in self.capabilities:
            raise NotImplementedError(f"{self.name} models cannot {what}")

    def __init__(self, spec: ImageSpec, config=None, device: str | torch.device | None = "auto", seed: int = 0):
        self.spec = spec
        self.config = config if config is not None else self.Config()
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.seed = seed
        self.lock = threading.RLock()
        self.step = 0
        self.check_spec(spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.nets = nn.ModuleDict(self.build())
        self.nets.to(self.device)
        self.rest()
        self.optimizers: dict[str, torch.optim.Optimizer] = self.make_optimizers()
        # Training noise (reparameterisation, input corruption) comes from this generator so
        # that the trainer can reseed it per step: resumed runs then repeat exactly.
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(seed)
        # Set by engines.distributed while training on several processes (torchrun).
        self.ddp = None

    # ---- to implement -------------------------------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective to minimise and named terms to report (per image, in nats where it applies)."""
        raise NotImplementedError

    def prior_sample(self, n: int, generator: torch.Generator, **options) -> torch.Tensor:
        return torch.randn((n, *self.latent_shape), generator=generator, device=self.device)

    def check_spec(self, spec: ImageSpec) -> None:
        """Raise ValueError for image specs the engine cannot handle."""

    def likelihood(self, x: torch.Tensor, quick: bool = False) -> dict[str, float]:
        """Engines with the 'likelihood' capability: bounds on −log p(x) for images `x` (keys from
        LIKELIHOOD_METRICS); `evaluate` reports them."""
        raise NotImplementedError(f"{self.name} models define no likelihood")

    # ---- optional hooks (no-ops unless an engine needs them) ---------------------------------
    @classmethod
    def saved_config_problem(cls, config) -> str | None:
        """What is wrong with a config read from a checkpoint beyond its fields' types and ranges
        (checkpoint.read_info and load refuse the file with it), or None."""
        return None

    def after_load(self) -> None:
        """Called by checkpoint.load once the weights and training state are in; a ValueError
        (weights that are well-formed tensors but impossible values) refuses the file."""

    def prepare_checkpoint(self, x: torch.Tensor) -> None:
        """Called by the trainer before every save (on every rank), with some training images."""

    # The trainer sets this to the steps per epoch (engines with per-epoch statistics read it).
    epoch_steps: int | None = None

    # ---- shared machinery ------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(math.prod(self.latent_shape))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in self.nets.parameters() if p.requires_grad]
        if not params:
            return {}
        return {"main": adam(params, lr=self.config.lr)}

    def rest(self) -> None:
        """Put the nets in eval mode, where they rest: every `train_step` switches them to training
        mode itself, and the trainers call this when they stop (finished, cancelled or failed), so
        the decode of a drag (`_infer`) finds nothing to switch (flipping 30 modules' flags and back
        cost ~10-30 µs of a 1.6 ms decode)."""
        with self.lock:
            self.nets.eval()

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.nets.parameters())

    @contextlib.contextmanager
    def inference(self):
        """Under the lock, in inference and eval mode; each module's training mode comes back after.

        This wraps every decode of a drag, so its fixed cost matters (a 64×64 decode takes ~1 ms):
        only the modules in training mode are switched, from a cached list of the modules, by
        setting their flag directly instead of `nn.Module.train`'s recursive walk (twice per call,
        it cost more than the lock, the mode and the conversion together)."""
        with self.lock, torch.inference_mode():
            switched = _set_eval(self._all_modules())
            try:
                yield
            finally:
                _restore_training(switched)

    def _all_modules(self) -> tuple[nn.Module, ...]:
        """Every module of `self.nets`, listed once per set of top-level nets (engines add or
        replace whole nets, e.g. an EMA copy; walking the tree on every decode evicted enough of
        the cache to cost 60 µs of a 1.8 ms decode)."""
        return self._module_lists()[0]

    def _mode_modules(self) -> tuple[nn.Module, ...]:
        """The modules of `self.nets` whose forward depends on the training flag (`mode_free`)."""
        return self._module_lists()[1]

    def _module_lists(self) -> tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]:
        key = tuple(map(id, self.nets._modules.values()))
        cached = self.__dict__.get("_modules_cache")
        if cached is None or cached[0] != key:
            mods = tuple(self.nets.modules())
            cached = (key, (mods, tuple(m for m in mods if not mode_free(m))))
            self._modules_cache = cached
        return cached[1]

    def _infer(self, fn, x: torch.Tensor) -> torch.Tensor:
        # `inference()` spelled out: this is the hot path (one latent per frame of a drag). Only the
        # modules whose forward reads the training flag are switched (`inference()` switches all:
        # code run inside it may read any module's flag; `fn` here is the engine's own).
        # Nothing to switch (a VAE: no module reads the flag) calls neither helper: in a drag each
        # Python call costs several times its warm time, the caches flushed by the decode before.
        with self.lock, torch.inference_mode():
            modes = self._mode_modules()
            switched = _set_eval(modes) if modes else ()
            try:
                if len(x) <= INFER_CHUNK:  # no split, no cat
                    return fn(x)
                return torch.cat([fn(chunk) for chunk in x.split(INFER_CHUNK)])
            finally:
                if switched:
                    _restore_training(switched)

    def encode(self, x) -> torch.Tensor:
        """Images → latents (the posterior mean for probabilistic encoders)."""
        self._require("encode", "encode images")
        return self._infer(self._encode, as_images(x, self.device))

    def decode(self, z) -> torch.Tensor:
        """Latents → images (N, C, H, W) in [0, 1]."""
        if "decode" not in self.capabilities:
            self._require("decode", "decode latents")
        z = self._latent_tensor(z)
        if z.shape[1:] != self.latent_shape:
            z = z.reshape(len(z), *self.latent_shape)
        return self._infer(self._decode_clamped, z)

    def _latent_tensor(self, z) -> torch.Tensor:
        """`z` as a float32 tensor on the device. A drag hands one float32 NumPy latent per frame:
        `torch.from_numpy` shares its memory as `as_tensor` would, at ~25 instead of ~50 µs between
        decodes (measured interleaved with 1.1-1.7 ms decodes; the whole single-decode gap to the
        bare module was ~70 µs). Other arrays are copied to native float32 first."""
        if isinstance(z, np.ndarray):
            if not (z.dtype == np.float32 and z.dtype.isnative and z.flags.writeable):
                z = np.array(z, dtype=np.float32)  # a native, writable copy (torch warns on read-only memory)
            t = torch.from_numpy(z)
            return t if self.device.type == "cpu" else t.to(self.device)
        return torch.as_tensor(z, dtype=torch.float32, device=self.device)

    def _decode_clamped(self, z: torch.Tensor) -> torch.Tensor:
        out = self._decode(z)
        return out if self._decodes_in_unit_range() else out.clamp_(0, 1)

    def _decodes_in_unit_range(self) -> bool:
        """True where `_decode` ends in a sigmoid (its output already in [0, 1]): decode then skips
        the clamp, a no-op there (one op less per frame of a drag; the output is bit-identical)."""
        return False

    def sample(self, n: int, seed: int = 0, **options) -> torch.Tensor:
        """n images from the model; the same seed gives the same images."""
        self._require("sample", "sample")
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        with self.lock:
            z = self.prior_sample(n, g, **options)
        return self.decode(z)

    def train_step(self, batch: Batch | torch.Tensor) -> dict[str, float]:
        """One optimisation step; returns named loss terms as floats."""
        if not isinstance(batch, Batch):
            batch = Batch(as_images(batch, self.device))
        with self.lock:
            self.nets.train()
            opt = self.optimizers["main"]
            opt.zero_grad(set_to_none=True)
            with autocast(self.device):
                loss, terms = self.forward_loss(self._loss, batch)
            if self.backward(loss):
                opt.step()
            self.step += 1
            out = {k: float(v.detach()) for k, v in terms.items()}
            out.setdefault("loss", float(loss.detach()))
            return out

    def forward_loss(self, fn, *args, **kwargs):
        """Run `fn(*args)`, a forward pass whose loss will be backpropagated. Every `train_step`
        (also an override with several nets and optimisers: one call per phase) computes its
        losses through here, so that on several processes DistributedDataParallel averages
        the gradients across them (see engines/distributed.py)."""
        return fn(*args, **kwargs) if self.ddp is None else self.ddp(fn, *args, **kwargs)

    def backward(self, loss: torch.Tensor) -> bool:
        """Backpropagate `loss`; False when the optimizer must not step (NaN/Inf)."""
        if self.ddp is None:
            if not torch.isfinite(loss):
                return False
            loss.backward()
            return True
        # Every rank must join the gradient all-reduce, so backward always runs; the averaged
        # gradients are the same on every rank, and so is the decision to step.
        loss.backward()
        grads = [p.grad for p in self.nets.parameters() if p.grad is not None]
        return not grads or bool(torch.stack([g.isfinite().all() for g in grads]).all())

    def fit(self, x: torch.Tensor, progress=None) -> dict[str, float]:
        raise NotImplementedError(f"{self.name} is trained by steps, not fitted in closed form")

    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False) -> dict[str, float]:
        """Held-out metrics for this engine: reconstruction error for encoders, the likelihood
        bounds of engines with 'likelihood', plus engine-specific ones (subclasses extend).
        `quick` trades precision for time."""
        x = as_images(x, self.device)[:max_images]
        out: dict[str, float] = {}
        if "encode" in self.capabilities and len(x):
            rec = self.decode(self.encode(x))
            mse = float(((rec - x) ** 2).mean())
            out["mse"] = mse
            out["psnr"] = float(10 * math.log10(1.0 / max(mse, 1e-12)))
        if "likelihood" in self.capabilities and len(x):
            out.update(self.likelihood(x, quick=quick))
        return out

    # ---- checkpoint support -------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.nets.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        own = self.nets.state_dict()
        missing = [k for k in own if k not in tensors]
        unexpected = [k for k in tensors if k not in own]
        wrong = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                 if k in tensors and tensors[k].shape != v.shape]
        if missing or unexpected or wrong:
            raise KeyError(f"weights do not match the {self.name} architecture "
                           f"(missing: {missing[:3]}, unexpected: {unexpected[:3]}, wrong shape: {wrong[:2]})")
        self.nets.load_state_dict(tensors, strict=True)

    def to(self, device) -> "Engine":
        with self.lock:
            self.device = torch.device(device)
            self.nets.to(self.device)
            fused = fused_adam_supported(self.device.type)
            for opt in self.optimizers.values():
                move_optimizer_state(opt, self.device, fused)
            seed = self.rng.initial_seed()
            self.rng = torch.Generator(device=self.device)
            self.rng.manual_seed(seed)
        return self

    def describe(self) -> dict:
        return {
            "engine": self.name,
            "spec": self.spec.to_dict(),
            "latent_shape": list(self.latent_shape),
            "capabilities": sorted(self.capabilities),
            "parameters": self.n_parameters(),
            "device": str(self.device),
        }
