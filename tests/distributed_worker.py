"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2` (gloo on CPU): several
training scenarios in one process group, then `main.py train` itself, each rank writing what it
saw to OUT/rank{r}.json (one launch: process start-up is most of the cost).

Also importable: `PairEngine` is a toy engine with two nets and two optimisers (the shape of a
GAN or a VQ prior), deterministic, so a 2-rank run can be compared with one process."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from engines.base import Batch, Engine  # noqa: E402
from engines.config import EngineConfig, option  # noqa: E402


@dataclass
class PairConfig(EngineConfig):
    latent_dim: int = option(4, "code size", minimum=1)
    poison_step: int = option(-1, "test only: the loss becomes NaN at this step on poisoned ranks")


class PairEngine(Engine):
    """Two phases per step like a GAN: the decoder learns on detached codes, then the encoder
    learns through the frozen decoder; one optimiser each."""

    name = "pair"
    Config = PairConfig
    capabilities = frozenset({"encode", "encode_exact", "decode"})
    poisoned = False

    def build(self):
        d = self.spec.numel
        return {"enc": nn.Linear(d, self.config.latent_dim), "dec": nn.Linear(self.config.latent_dim, d)}

    @property
    def latent_shape(self):
        return (self.config.latent_dim,)

    def _encode(self, x):
        return self.nets["enc"](x.flatten(1))

    def _decode(self, z):
        return torch.sigmoid(self.nets["dec"](z)).view(len(z), *self.spec.shape)

    def make_optimizers(self):
        return {k: torch.optim.Adam(self.nets[k].parameters(), lr=self.config.lr) for k in ("enc", "dec")}

    def _dec_loss(self, x):
        with torch.no_grad():
            z = self.nets["enc"](x)
        loss = ((torch.sigmoid(self.nets["dec"](z)) - x) ** 2).sum(1).mean()
        if self.poisoned and self.step == self.config.poison_step:
            loss = loss * float("nan")
        return loss

    def _enc_loss(self, x):
        return ((torch.sigmoid(self.nets["dec"](self.nets["enc"](x))) - x) ** 2).sum(1).mean()

    def _phase(self, name, fn, x):
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss = self.forward_loss(fn, x)
        if self.backward(loss):
            opt.step()
        return float(loss.detach())

    def train_step(self, batch: Batch):
        with self.lock:
            self.nets.train()
            x = batch.x.flatten(1)
            dec = self._phase("dec", self._dec_loss, x)
            self.nets["dec"].requires_grad_(False)
            try:
                enc = self._phase("enc", self._enc_loss, x)
            finally:
                self.nets["dec"].requires_grad_(True)
            self.step += 1
            return {"loss": enc, "dec_loss": dec}


class BypassEngine(PairEngine):
    """Steps its optimisers without Engine.forward_loss: must be refused on several processes."""

    def train_step(self, batch: Batch):
        with self.lock:
            x = batch.x.flatten(1)
            for name, fn in (("dec", self._dec_loss), ("enc", self._enc_loss)):
                opt = self.optimizers[name]
                opt.zero_grad(set_to_none=True)
                loss = fn(x)
                loss.backward()
                opt.step()
            self.step += 1
            return {"loss": float(loss.detach())}


def weights(engine) -> dict:
    return {k: v.flatten().tolist() for k, v in engine.state_tensors().items()}


def main(npz: str, out: str) -> None:
    import engines
    from engines import checkpoint as ckpt
    from engines.data import load_dataset
    from engines.distributed import setup
    from engines.train import TrainControl, TrainOptions, train

    torch.set_num_threads(1)
    dist, device = setup("cpu")
    r = dist.rank
    data = load_dataset(npz)
    res: dict = {"world_size": dist.world_size}

    def ae(seed=0, name="ae"):
        return engines.create(name, data.spec, device=device, seed=seed, latent_dim=3, width=8, batch_size=8)

    def run(engine, control=None, stop_rank=None, stop_step=None, **kw):
        control = control or TrainControl()
        last = None
        for p in train(engine, data, TrainOptions(report_every_s=0, dist=dist, **kw), control):
            last = p
            if r == stop_rank and p.step >= stop_step:
                control.cancel()
        return {"state": last.state, "step": last.step, "checkpoint": last.checkpoint, "message": last.message,
                "metrics": last.metrics}

    # Two nets, two optimisers: ranks must end identical (compared with one process by the test).
    pair = PairEngine(data.spec, PairConfig(batch_size=8, lr=3e-3), device=device, seed=3)
    res["pair"] = {**run(pair, epochs=3, seed=5), "weights": weights(pair)}

    # The GAN: three nets and optimisers in phases, a gradient penalty (double backward), batch norm.
    gan = engines.create("gan", data.spec, device=device, seed=2, width=8, latent_dim=4, batch_size=8,
                         loss="wgan-gp", r1_gamma=1.0)
    res["gan"] = {**run(gan, epochs=0.4, seed=5), "weights": weights(gan)}

    # VQGAN (autoencoder and discriminator phases, EMA codebook), then its prior over code grids.
    from engines.vq.prior_train import train_prior

    vq = engines.create("vqvae", data.spec, device=device, seed=4, width=8, codebook_size=16, code_dim=4,
                        prior_dim=16, prior_layers=1, prior_heads=2, batch_size=8, gan_weight=0.1, gan_start=0,
                        disc_width=8)
    res["vq"] = {**run(vq, epochs=0.4, seed=5), "weights": weights(vq)}
    for p in train_prior(vq, data, epochs=1, seed=3, batch_size=8, out=os.path.join(out, "vq.safetensors"),
                         report_every_s=0, dist=dist):
        pass
    res["vq_prior"] = {"state": p.state, "step": p.step, "metrics": p.metrics, "weights": weights(vq)}

    # Resume under DDP continues exactly: 2 epochs + 2 epochs == 4 epochs (a VAE: per-rank noise too).
    straight = ae(name="vae")
    run(straight, epochs=4, seed=7)
    half = os.path.join(out, "half.safetensors")
    res["half"] = run(ae(name="vae"), epochs=2, seed=7, out=half)
    resumed = ckpt.load(half, device=device).engine
    run(resumed, epochs=4, seed=7)
    res["resume_equal"] = all(torch.equal(a, b) for a, b in zip(straight.state_tensors().values(),
                                                                resumed.state_tensors().values()))
    res["resume_steps"] = [straight.step, resumed.step]

    # Cancel arriving on rank 1 only stops every rank at the same step; rank 0 saves.
    res["cancel"] = run(ae(), minutes=5, seed=1, out=os.path.join(out, "cancel.safetensors"),
                        stop_rank=1, stop_step=3)

    # NaN on rank 1 only: every rank stops at the same step, nothing is written.
    nan = PairEngine(data.spec, PairConfig(batch_size=8, poison_step=2), device=device, seed=3)
    nan.poisoned = r == 1
    res["nan"] = run(nan, epochs=3, seed=1, out=os.path.join(out, "nan.safetensors"))
    res["nan_weights_finite"] = all(bool(v.isfinite().all()) for v in nan.state_tensors().values())

    # An engine whose steps bypass forward_loss is refused instead of silently desynchronising.
    try:
        run(BypassEngine(data.spec, PairConfig(batch_size=8), device=device, seed=3), epochs=1)
        res["bypass"] = "trained"
    except RuntimeError as e:
        res["bypass"] = str(e)

    # VQ codebook statistics are summed over the ranks' batches while training under DDP, as one
    # process holding both batches would count them (not rank 0's batch alone).
    from engines.vq.quantize import VectorQuantizer

    dist.attach(vq)
    res["vq_synced_while_attached"] = [m.synced for m in vq.nets.modules() if hasattr(m, "synced")]
    dist.detach(vq)
    res["vq_synced_after"] = [m.synced for m in vq.nets.modules() if hasattr(m, "synced")]
    torch.manual_seed(11)
    q = VectorQuantizer(8, 2, kmeans_init=False, dead_after=0)
    q.synced = True
    xs = torch.randn(2, 4, 2, 3, 3, generator=torch.Generator().manual_seed(12))
    q.train()
    q(xs[r])
    res["vq_stats"] = {"count": q.ema_count.tolist(), "sum": q.ema_sum.flatten().tolist()}

    # Last, the command line itself (it leaves the process group when done); only rank 0 prints.
    from engines.cli.main import main as cli

    res["cli_rc"] = cli(["train", "--engine", "ae", "--data", npz, "--epochs", "4", "--device", "cpu",
                         "--set", "batch_size=8", "--set", "latent_dim=3", "--set", "width=8",
                         "--out", os.path.join(out, "cli.safetensors")])
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
