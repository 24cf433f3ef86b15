"""The run's report: versions, the CPU, a contention probe, the header above the table, and the
comparison with an earlier run."""
from __future__ import annotations

import platform
import time

import common
from harness import fmt


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "scikit-learn", "umap-learn", "numba", "PySide6-Essentials", "pyqtgraph",
                "pythae", "diffusers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def contention_probe(threads: int, calls: int = 100) -> dict:
    """ms per call of a decoder-sized transposed convolution with `threads` and with 1 thread.
    On idle cores more threads are at least as fast; when other jobs hold the cores, OpenMP
    threads wait for each other's time slices and `threads` can be several times slower."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(1, 128, 8, 8), torch.randn(128, 64, 4, 4)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in sorted({threads, 1}, reverse=True):
            torch.set_num_threads(n)
            with torch.inference_mode():
                for _ in range(10):
                    F.conv_transpose2d(x, w, stride=2, padding=1)
                t0 = time.perf_counter()
                for _ in range(calls):
                    F.conv_transpose2d(x, w, stride=2, padding=1)
            out[f"ms_{n}_threads"] = 1e3 * (time.perf_counter() - t0) / calls
    finally:
        torch.set_num_threads(before)
    out["slowdown"] = out[f"ms_{threads}_threads"] / out["ms_1_threads"]
    return out


def _probe_text(p: dict, threads: int) -> str:
    if threads == 1:
        return f"{p['ms_1_threads']:.2f} ms/call"
    s = p["slowdown"]
    verdict = (f"{threads} threads {s:.1f}× SLOWER than 1: cores busy, times inflated" if s > 1.2
               else f"{threads} threads {1 / s:.1f}× faster than 1: cores free enough")
    return f"{p[f'ms_{threads}_threads']:.2f} vs {p['ms_1_threads']:.2f} ms/call ({verdict})"


def header(meta: dict) -> str:
    v = meta["versions"]
    vs = ", ".join(f"{k} {x}" for k, x in v.items() if x)
    missing = ", ".join(k for k, x in v.items() if not x)
    load = meta["load_average"]
    end = f"{load['end'][0]:.2f}" if "end" in load else "…"
    return "\n".join([
        f"Latent Explorer benchmarks — {meta['date']}{'  (--quick)' if meta['opts']['quick'] else ''}",
        f"machine: {meta['cpu']}, {meta['cores']} cores, {meta['platform']}, GPU: {meta['cuda'] or 'none (CPU run)'}",
        f"versions: {vs}" + (f" (not installed: {missing})" if missing else ""),
        f"threads: {meta['opts']['threads']} (torch intra-op, BLAS via threadpoolctl); "
        f"load average (1 min) at start {load['start'][0]:.2f}, at end {end}",
    ] + [f"contention probe at {when} (small conv, {t} vs 1 thread): {_probe_text(p, t)}"
         for when, p in meta.get("contention", {}).items() for t in [meta["opts"]["threads"]]])


def compare(previous: dict, rows: list[dict], meta: dict | None = None) -> str:
    """Change of `ours` against an earlier run's JSON, row by row (matched on benchmark and case)."""
    before = {(r["bench"], r["case"]): r for r in previous.get("rows", [])}
    out = []
    for r in rows:
        p = before.get((r["bench"], r["case"]))
        if p is None or r.get("ours") is None or p.get("ours") is None:
            continue
        new, old = r["ours"], p["ours"]
        if r["kind"] == "quality":
            d = new - old
            good = d < 0 if r["better"] == "lower" else d > 0
            change = "same" if abs(d) < 0.05 else f"{d:+.1f} {r['unit']} ({'better' if good else 'worse'})"
        elif old and new:
            f = new / old if r["better"] == "higher" else old / new  # > 1: faster now
            change = f"≈ same ({f:.2f}×)" if 0.95 < f < 1.05 else f"{f:.2g}× {'faster' if f > 1 else 'slower'}"
        else:
            change = ""
        out.append({"benchmark": r["bench"], "case": r["case"], "before": fmt(old), "now": fmt(new),
                    "unit": r["unit"], "change": change})
    pm = previous.get("meta", {})
    head = (f"compared with {pm.get('date', '?')} (threads {pm.get('opts', {}).get('threads', '?')}, "
            f"{'quick' if pm.get('opts', {}).get('quick') else 'full'} run, load at start "
            f"{(pm.get('load_average', {}).get('start') or ['?'])[0]})")
    if meta is not None:
        po, no = pm.get("opts", {}), meta.get("opts", {})
        diff = [k for k in ("quick", "threads") if k in po and po.get(k) != no.get(k)]
        if diff:
            head += f" — NOT like for like: {', '.join(diff)} differ (now {', '.join(f'{k}={no.get(k)}' for k in diff)})"
    if not out:
        return head + ": no rows in common"
    return head + "\n" + common.table(out, ["benchmark", "case", "before", "now", "unit", "change"])
