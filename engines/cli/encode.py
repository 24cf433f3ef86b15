"""`python main.py encode …`: encode a data set to latents (HDF5)."""
from __future__ import annotations

import json
import os
import sys

from engines.cli.common import UsageError, _atomic, _ensure_parent, _load_data


def add_parser(sub) -> None:
    e = sub.add_parser("encode", help="encode a data set to latents (HDF5)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", help="data set (default: the one the model was trained on)")
    e.add_argument("--out", required=True, help="latents.h5")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_encode)


def cmd_encode(a) -> int:
    import h5py
    import numpy as np

    from engines import checkpoint as ckpt

    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    if "encode" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot encode images")
    data = _load_data(a.data or loaded.info.data.get("name") or "", spec=engine.spec)
    z = engine.encode(data.images).cpu().numpy().astype(np.float32)
    split = np.zeros(len(data), dtype=np.uint8)
    split[data.test_idx] = 1

    def write(f):
        with h5py.File(f, "w") as h:
            h.create_dataset("latents", data=z, compression="gzip")
            h.create_dataset("split", data=split)
            if data.labels is not None:
                h.create_dataset("labels", data=data.labels)
                h.attrs["label_names"] = json.dumps(data.label_names)
            g = h.create_group("attributes")
            for k, v in data.attributes.items():
                g.create_dataset(k, data=v)
            h.attrs["engine"] = engine.name
            h.attrs["checkpoint"] = os.path.abspath(a.checkpoint)
            h.attrs["data"] = json.dumps(data.describe())

    _ensure_parent(a.out)
    _atomic(a.out, write, binary_path=True)
    inv = getattr(engine, "last_inversion", None)  # GAN: encode is inversion; say how well it fits
    fit = f" (inversion: mean MSE {float(inv.mse.mean()):.4f}, PSNR {float(inv.psnr.mean()):.1f} dB)" if inv is not None else ""
    print(f"wrote latents {z.shape} of {data.name} to {a.out}{fit}", file=sys.stderr)
    return 0
