"""`python main.py encode …`: encode a data set to latents (HDF5)."""
from __future__ import annotations

import os
import sys

from engines.cli.common import UsageError, _ensure_parent, _load_data


def add_parser(sub) -> None:
    e = sub.add_parser("encode", help="encode a data set to latents (HDF5)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", help="data set (default: the one the model was trained on)")
    e.add_argument("--out", required=True, help="latents.h5")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_encode)


def cmd_encode(a) -> int:
    import numpy as np

    from engines import checkpoint as ckpt
    from engines.latent import cache, h5layout

    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    if "encode" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot encode images")
    data = _load_data(a.data or loaded.info.data.get("name") or "", spec=engine.spec)
    z = engine.encode(data.images).cpu().float().reshape(len(data), -1).numpy()
    ls = cache.LatentSet(
        latents=np.ascontiguousarray(z, np.float32), latent_shape=tuple(int(s) for s in engine.latent_shape),
        model_id=cache.model_id(engine), data_id=cache.data_id(data),
        labels=None if data.labels is None else np.asarray(data.labels, np.int64),
        label_names=list(data.label_names),
        attributes={k: np.asarray(v, np.float32) for k, v in data.attributes.items()},
        train_idx=np.asarray(data.train_idx, np.int64), test_idx=np.asarray(data.test_idx, np.int64),
        engine=engine.name, data_name=data.name, data_description=data.describe())
    _ensure_parent(a.out)
    # The one latents layout (engines.latent.h5layout), built in memory: HDF5 itself on a full disk
    # crashes (atomic.write_hdf5).
    h5layout.write(a.out, ls, extra={"checkpoint": os.path.abspath(a.checkpoint)}, compress=True)
    inv = getattr(engine, "last_inversion", None)  # GAN: encode is inversion; say how well it fits
    fit = f" (inversion: mean MSE {float(inv.mse.mean()):.4f}, PSNR {float(inv.psnr.mean()):.1f} dB)" if inv is not None else ""
    print(f"wrote latents {z.shape} of {data.name} to {a.out}{fit}", file=sys.stderr)
    return 0
