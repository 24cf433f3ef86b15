"""Training on several processes: `torchrun --nproc_per_node=N main.py train …`.

torchrun starts one process per GPU (or per CPU worker) and tells each its rank through the
environment; `setup()` joins them into a process group (NCCL on CUDA, gloo on CPU) and gives
each its device. The shared training loop then stays the same on every rank, with a few hooks:

* `attach(engine)` wraps all of the engine's nets in one `DistributedDataParallel`, so every
  loss an engine computes through `Engine.forward_loss` has its gradients averaged across ranks
  in `backward()`. Engines with several nets and optimisers (GAN, VQ prior) route each phase's
  forward pass through `forward_loss`; unused nets in a phase are fine. The engine's own
  modules are never replaced, so checkpoints have the same keys (no `module.` prefix).
* `sampler(n, seed)` shards the training split like `DistributedSampler` (it is one), with
  the same per-epoch permutation the single-process trainer uses: rank r takes every W-th
  image of it. With one process this is exactly the single-process order.
* `agree(...)` is one small all-reduce per step: the step's metrics averaged over ranks, and
  the decisions every rank must take together (cancel from any rank; deadline, progress
  report and periodic checkpoint by rank 0's clock). A NaN on one rank makes the averaged
  metrics NaN everywhere, so all ranks stop at the same step.
* `sync_buffers(engine)` before saving and at the end: rank 0's buffers everywhere (a forward
  pass may update them per rank), so every rank holds the model rank 0 writes.

Batch semantics: `batch_size` is per process. W processes with batch B average their gradients,
so they take the same steps as one process with batch W·B and the same learning rate (exactly,
for an engine without training noise; noisy engines draw independent noise per rank). The
learning rate is never rescaled behind the user's back.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class DistributedError(ValueError):
    """A setting that cannot work on several processes; the message says what to change."""


class Agreement(NamedTuple):
    metrics: dict | None  # the step's metrics averaged over ranks (None before the first step)
    cancel: bool
    deadline: bool
    report: bool
    checkpoint: bool


@dataclass(frozen=True)
class Processes:
    """This process's place among the ranks; `Processes()` is a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (NCCL: the GPU)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- data ---------------------------------------------------------------------------------
    def sampler(self, n: int, seed: int):
        """A DistributedSampler over n images; `set_epoch(e)` then gives this rank's share of
        the permutation seeded by seed + e (drop_last: every rank gets the same count)."""
        from torch.utils.data import DistributedSampler

        return DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank,
                                  shuffle=True, seed=seed, drop_last=True)

    def noise_seed(self, seed: int) -> int:
        """Per-rank training-noise seed: rank 0 keeps the single-process stream."""
        return seed + self.rank * 1_000_000_000_039

    # ---- agreement ----------------------------------------------------------------------------
    def agree(self, metrics: dict | None, *, cancel: bool, deadline: bool, report: bool,
              checkpoint: bool) -> Agreement:
        if not self.active:
            return Agreement(metrics, cancel, deadline, report, checkpoint)
        import torch.distributed as dist

        keys = sorted(metrics) if metrics is not None else []
        main = 1.0 if self.is_main else 0.0
        vec = [float(metrics[k]) for k in keys] + [float(cancel), float(deadline) * main,
                                                     float(report) * main, float(checkpoint) * main]
        t = torch.tensor(vec, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        out = t.tolist()
        m = None if metrics is None else {k: out[i] / self.world_size for i, k in enumerate(keys)}
        flags = [v > 0 for v in out[len(keys):]]
        return Agreement(m, *flags)

    # ---- engines --------------------------------------------------------------------------------
    def attach(self, engine) -> None:
        """Wrap the engine's trainable nets in DistributedDataParallel (no-op on one process)."""
        if not self.active or engine.closed_form:
            return
        if not any(p.requires_grad for p in engine.nets.parameters()):
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        # DDP broadcasts rank 0's weights and buffers here, so all ranks start identical, and
        # rank 0's buffers again before each forward pass (EMA codebooks, running statistics).
        # An engine with several optimisers trains in phases that leave whole nets out (a GAN's
        # generator while its discriminator learns): DDP must then look for unused parameters
        # (a graph traversal per forward pass, and a warning where there are none).
        # A one-channel first convolution gets its weight gradient with an arbitrary stride on
        # the size-1 dimension; DDP then warns about bucket layouts although nothing is wrong.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp = DDP(_Forward(engine.nets), device_ids=None,
                  find_unused_parameters=len(engine.optimizers) > 1)
        engine.ddp = _Synced(ddp, engine.name)
        _set_synced(engine, True)

    def detach(self, engine) -> None:
        engine.ddp = None
        _set_synced(engine, False)

    def check_synced(self, engine) -> None:
        """After a train step: refuse engines whose steps bypassed `forward_loss` (their
        gradients would silently differ across ranks)."""
        synced = getattr(engine, "ddp", None)
        if synced is not None and synced.take() == 0:
            raise RuntimeError(f"engine '{engine.name}' trained a step without Engine.forward_loss: its gradients "
                               "were not averaged across processes. Route each forward pass of train_step through "
                               "self.forward_loss(fn, ...) and backpropagate with self.backward(loss).")

    def sync_buffers(self, engine) -> None:
        """Give every rank rank 0's buffers. DDP copies them before each forward pass, but a
        forward pass itself may update them per rank (a VQ codebook's EMA, batch-norm
        statistics), so ranks differ after the last step until this."""
        if not self.active:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for b in engine.nets.buffers():
                if b.dtype == torch.bool:  # not every backend broadcasts bools
                    u = b.to(torch.uint8)
                    dist.broadcast(u, src=0)
                    b.copy_(u.bool())
                else:
                    dist.broadcast(b, src=0)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    # ---- lifetime -------------------------------------------------------------------------------
    def close(self, ok: bool = True) -> None:
        """Leave the process group; on success after a barrier, so no rank quits while rank 0
        is still writing the checkpoint under a launcher that treats the first exit as the end."""
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                if ok:
                    dist.barrier()
            finally:
                dist.destroy_process_group()


class _Forward(torch.nn.Module):
    """Holds the engine's nets (so DDP sees every parameter) and runs any loss function."""

    def __init__(self, nets: torch.nn.ModuleDict):
        super().__init__()
        self.nets = nets

    def forward(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)


class _Synced:
    """What `Engine.forward_loss` calls under DDP; counts forward passes for `check_synced`."""

    def __init__(self, ddp, name: str):
        self.ddp = ddp
        self.name = name
        self.forwards = 0

    def __call__(self, fn, *args, **kwargs):
        self.forwards += 1
        return self.ddp(fn, *args, **kwargs)

    def take(self) -> int:
        n, self.forwards = self.forwards, 0
        return n


SINGLE = Processes()


def launched() -> bool:
    """True inside a process started by torchrun (or anything setting the same variables)."""
    return all(k in os.environ for k in ENV) and int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str | None = "auto") -> tuple[Processes, torch.device]:
    """Join torchrun's process group if launched by it; return this rank's place and device."""
    from engines.device import pick_device

    if not launched():
        return SINGLE, pick_device(device_name)
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; train on one process")
    rank, world, local = (int(os.environ[k]) for k in ENV)
    wanted = (device_name or "auto").strip()
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    kind = wanted.split(":")[0]
    if kind == "cuda":
        if ":" in wanted:
            raise DistributedError(f"--device {wanted}: under torchrun each process uses the GPU of its local rank; "
                                   "pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")
        if not torch.cuda.is_available():
            raise DistributedError("--device cuda asked for, but CUDA is not available here")
        if local >= torch.cuda.device_count():
            raise DistributedError(f"local rank {local} has no GPU (only {torch.cuda.device_count()} visible); "
                                   f"use --nproc_per_node={torch.cuda.device_count()} or fewer")
        device, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(device)
    elif kind == "cpu":
        device, backend = torch.device("cpu"), "gloo"
    else:
        raise DistributedError(f"--device {wanted}: training on several processes works on CUDA (NCCL) or CPU (gloo)")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Processes(rank=rank, world_size=world, local_rank=local, device=device), device


def resume_batch(prev_state: dict, config, overrides: dict, world_size: int) -> None:
    """Resuming keeps the run's effective batch (processes × batch_size): its position, its
    learning-rate schedule and an exact continuation are all counted in steps of that batch.
    `--set batch_size=N` is accepted on resume when it restores that effective batch (to
    continue a 4-GPU run on a laptop, say); anything else is refused with the way to fix it."""
    from engines.config import coerce

    if not hasattr(config, "batch_size"):
        return
    prev_world = int(prev_state.get("world_size", 1))
    prev_eff = int(prev_state.get("effective_batch", prev_world * config.batch_size))
    batch = coerce(type(config), "batch_size", overrides["batch_size"]) if "batch_size" in overrides else config.batch_size
    if batch * world_size != prev_eff:
        ways = []
        if prev_eff % batch == 0:
            ways.append(f"{prev_eff // batch} process(es) with batch_size {batch}")
        if prev_eff % world_size == 0:
            ways.append(f"--set batch_size={prev_eff // world_size} on {world_size} process(es)")
        raise DistributedError(f"this run was trained with an effective batch of {prev_eff} ({prev_world} process(es) × "
                               f"{prev_eff // prev_world}); {world_size} × {batch} would change it; resume with "
                               + (" or ".join(ways) or f"an effective batch of {prev_eff}"))
    config.batch_size = batch


def _set_synced(engine, on: bool) -> None:
    """Modules that keep statistics of their own (a VQ codebook's usage and EMA sums) sum them over
    the ranks while `synced`, instead of following rank 0's batches through DDP's buffer broadcast."""
    for m in engine.nets.modules():
        if hasattr(m, "synced"):
            m.synced = on
