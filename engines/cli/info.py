"""`python main.py info`: versions, devices and engines."""
from __future__ import annotations

import json
import platform


def add_parser(sub) -> None:
    i = sub.add_parser("info", help="versions, devices and engines")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)


def cmd_info(a) -> int:
    from importlib import metadata

    import engines
    from engines import config as cfgmod
    from engines.device import describe

    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: ver(p) for p in ("torch", "numpy", "PySide6-Essentials", "pyqtgraph", "umap-learn",
                                           "h5py", "safetensors", "pillow", "imageio", "imageio-ffmpeg")},
        "devices": describe(),
        "engines": {},
    }
    for name in engines.names():
        cls = engines.engine_class(name)
        info["engines"][name] = {
            "capabilities": sorted(cls.capabilities),
            "config": cfgmod.describe(cls.Config),
        }
    if a.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"Latent Explorer — Python {info['python']} on {info['platform']}")
    for k, v in info["packages"].items():
        print(f"  {k:20s} {v}")
    d = info["devices"]
    print(f"devices: cpu{', cuda ' + str(d.get('cuda_devices')) if d['cuda'] else ''}{', mps' if d['mps'] else ''} (default {d['default']})")
    print("engines:")
    for name, e in info["engines"].items():
        print(f"  {name:10s} {', '.join(e['capabilities'])}")
        for row in e["config"]:
            print(f"      {row['name']:18s} = {row['default']!s:10s} {row['help']}")
    return 0
