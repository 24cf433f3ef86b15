"""The model library's contents, without Qt: which checkpoints exist and what they say.

Three sources: bundled models (`assets/models/*.safetensors`, or `LATENT_EXPLORER_MODELS`),
the user's runs folder, and checkpoints opened by hand. `scan()` reads only headers and
thumbnails, so it stays cheap; it still runs in a worker.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass

import numpy as np

from engines.base import LIKELIHOOD_METRICS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = (("bundled", "Bundled models"), ("runs", "My runs"), ("opened", "Opened files"))
PREFERRED_FIRST_MODEL = "vae-faces-64.safetensors"


def bundled_dir() -> str:
    return os.environ.get("LATENT_EXPLORER_MODELS") or os.path.join(ROOT, "assets", "models")


@dataclass
class Entry:
    path: str
    source: str  # bundled | runs | opened
    info: object = None  # CheckpointInfo, or None when unreadable
    thumbnail: np.ndarray | None = None  # uint8 (H, W, C)
    error: str = ""

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def ok(self) -> bool:
        return self.info is not None

    def summary(self) -> str:
        """Two short lines for the list: engine · data · image size, then latent size · training time."""
        if not self.ok:
            return f"cannot open: {self.error}"
        i = self.info
        spec = i.spec
        colour = "RGB" if spec.channels == 3 else "grey"
        data = i.data.get("name") or "unknown data"
        line1 = f"{i.engine.upper()} · {data} · {spec.height}×{spec.width} {colour}"
        latent = "×".join(str(d) for d in i.latent_shape)
        line2 = f"{f'latent {latent}' if latent else 'no latent'} · {duration(i.train_state.get('elapsed_s'))}"
        state = i.train_state.get("state")
        if state and state != "finished":
            line2 += f" · {state}"
        text = f"{line1}\n{line2}"
        metrics = metrics_line(i.metrics, likelihood=has_likelihood(i.engine))
        return f"{text}\n{metrics}" if metrics else text

    def tooltip(self) -> str:
        if not self.ok:
            return f"{self.path}\n{self.error}"
        i = self.info
        lines = [self.path, f"engine: {i.engine}", f"data: {i.data.get('source') or i.data.get('name', '?')}",
                 f"steps: {_number(i.train_state.get('step', '?'))}"]
        params = i.extra.get("parameters")
        if params:
            lines.append(f"parameters: {params:,}")
        lines += metrics_tooltip(i.metrics, likelihood=has_likelihood(i.engine))
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(i.config.items()))
        lines.append(f"config: {cfg}")
        return "\n".join(lines)


# ---- metrics, for people -------------------------------------------------------------------------------------
# key -> (short label for the list or None, name for the tooltip, unit). Keys are those of
# engines.metrics.METRICS; `test_<key>` are the same measured on the test split when training ended.
METRIC_NAMES: dict[str, tuple[str | None, str, str]] = {
    "elbo_nats": ("−ELBO", "−ELBO (bound on −log p(x))", "nats"),
    "iwae_nats": (None, "−IWAE bound on −log p(x)", "nats"),
    "bpd": ("bpd", "bits per dimension", ""),
    "psnr": ("PSNR", "reconstruction PSNR", "dB"),
    "mse": (None, "reconstruction MSE", ""),
    "explained_variance": ("variance", "explained variance", "%"),
    "cfid": ("FD", "Fréchet distance of classifier features", ""),
    "precision": ("P", "precision (realism)", "share"),
    "recall": ("R", "recall (variety)", "share"),
    "coverage": (None, "mode coverage", "%"),
    "label_tv": (None, "label histogram distance (TV)", ""),
    "label_kl": (None, "label KL (test ‖ samples), nats", ""),
    "perplexity": ("perplexity", "codebook perplexity", ""),
    "codes_used_frac": ("codes used", "codebook entries used", "%"),
    "classifier_acc": (None, "evaluation classifier accuracy", "%"),
}
# What the training loop reports about its last steps (not held-out: shown apart).
TRAIN_NAMES = {"loss": ("loss", ""), "neg_elbo": ("−ELBO", "nats"), "recon": ("reconstruction", "nats"),
               "kl": ("KL", "nats"), "mse": ("MSE", ""), "explained_variance": ("explained variance", "%")}


def no_latent_message(engine_name: str) -> str:
    """What the latent-space panels say for a model with no latent at all (it neither encodes
    nor decodes: an autoregressive PixelCNN)."""
    return (f"A {engine_name} model has no latent space to explore: it draws each pixel from the pixels "
            "before it, with no code behind the image to map, walk or do arithmetic on. Watch it draw, and "
            "complete images, in the Pixels tab.")


def has_likelihood(engine_name: str) -> bool | None:
    """Whether models of this engine declare the 'likelihood' capability (None: unknown engine).
    The class's declaration decides, not what an older checkpoint stored."""
    try:
        from engines import engine_class

        return "likelihood" in engine_class(engine_name).capabilities
    except Exception:  # noqa: BLE001 - an unknown or broken engine: show what the metrics say
        return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _number(v) -> str:
    """A plain value: 3 significant digits, thousands separators, never 1.8e+09."""
    if not _is_number(v):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1e-4 or a == 0:
        return f"{v:.3g}"
    return f"{v:.2e}"


def _value(v, unit: str, short: bool = False) -> str:
    if unit == "%":
        return f"{100 * v:.0f}%" if short else f"{100 * v:.1f}%"
    if unit in ("nats", "dB"):
        text = f"{v:,.1f}"
        return f"{text} {unit}" if short or unit == "dB" else f"{text} {unit}/image"
    if unit == "share":
        return f"{v:.2f}"
    return _number(v)


def metric_sets(metrics: dict) -> tuple[dict, dict, dict]:
    """(evaluated, end-of-training test, last training steps), each keyed without prefixes.

    `main.py evaluate` (or the library's Evaluate) stores unprefixed keys and `evaluated_at`; the
    trainer stores `test_<key>` from the test split and its last training-step terms unprefixed,
    so an unprefixed `mse` is an evaluation only when `evaluated_at` is there."""
    m = metrics or {}
    evaluated = "evaluated_at" in m
    ev = {k: m[k] for k in METRIC_NAMES if evaluated and _is_number(m.get(k))}
    test = {k[5:]: v for k, v in m.items() if k.startswith("test_") and _is_number(v)}
    train = {k: m[k] for k in TRAIN_NAMES if _is_number(m.get(k)) and not (evaluated and k in METRIC_NAMES)}
    return ev, test, train


NBSP = "\u00a0"  # inside an item, so a narrow list wraps only between items


def _item(label: str, value: str) -> str:
    return f"{label} {value}".replace(" ", NBSP)


def _short_nats(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"


def metrics_line(metrics: dict, likelihood: bool | None = None) -> str:
    """The library's compact metrics, sized for the narrow list: '−ELBO 282.6 · PSNR 25.4 dB'
    (−ELBO in nats/image) or 'PSNR 23.8 dB · var 90%', then, when evaluated, 'FD 12.3 · P 0.81 ·
    R 0.77'. Evaluated values win over end-of-training ones; only when neither exists, the
    last training steps' value (marked 'train'). A likelihood (−ELBO, bits per dim) shows only
    for models with the 'likelihood' capability (`likelihood` False: none)."""
    ev, test, train = metric_sets(metrics)
    best = {**test, **ev}
    items = []
    if likelihood is False:
        best = {k: v for k, v in best.items() if k not in LIKELIHOOD_METRICS}
        train = {k: v for k, v in train.items() if k != "neg_elbo"}
    if "elbo_nats" in best:
        items.append(_item("−ELBO", _short_nats(best["elbo_nats"])))
    elif "bpd" in best:
        items.append(_item("bpd", f"{best['bpd']:.2f}"))
    if "psnr" in best:
        items.append(_item("PSNR", f"{best['psnr']:.1f} dB"))
    if "explained_variance" in best and len(items) < 2:
        items.append(_item("var", _value(best["explained_variance"], "%", short=True)))
    for key in ("perplexity", "codes_used_frac"):
        if key in best and len(items) < 2:
            label, _, unit = METRIC_NAMES[key]
            items.append(_item(label, _value(best[key], unit, short=True)))
    sample = [_item(METRIC_NAMES[k][0], _value(ev[k], METRIC_NAMES[k][2], short=True))
              for k in ("cfid", "precision", "recall") if k in ev]
    lines = [" · ".join(items), " · ".join(sample)]
    if not any(lines):
        if "neg_elbo" in train:
            lines = [_item("train −ELBO", _short_nats(train["neg_elbo"]))]
        elif "mse" in train:
            lines = [_item("train MSE", _number(train["mse"]))]
    return "\n".join(line for line in lines if line)


def _directions() -> dict:
    try:
        from engines.metrics import METRICS
    except Exception:  # noqa: BLE001 - the tooltip must not fail for want of a hint
        return {}
    return {k: better for k, (_, better) in METRICS.items()}


def metrics_tooltip(metrics: dict, likelihood: bool | None = None) -> list[str]:
    """Tooltip lines: the evaluation (when, on what), the test split at the end of training,
    and the last training steps — human names, units, which direction is better; then whether
    the model has a likelihood (the 'likelihood' capability) and whether it was measured."""
    m = metrics or {}
    ev, test, train = metric_sets(m)
    if likelihood is False:
        ev, test = ({k: v for k, v in d.items() if k not in LIKELIHOOD_METRICS} for d in (ev, test))
        train = {k: v for k, v in train.items() if k != "neg_elbo"}
    better = _directions()
    lines: list[str] = []

    def block(values: dict) -> list[str]:
        out = []
        for key, (_, name, unit) in METRIC_NAMES.items():
            if key not in values:
                continue
            k = values.get("iwae_k", m.get("iwae_k") if values is ev else None)
            if key == "iwae_nats" and _is_number(k):
                name = f"{name} (k = {int(k)})"
            text = f"  {name}: {_value(values[key], unit)}"
            ref = m.get(f"{key}_ref") if values is ev else None
            if _is_number(ref):
                text += f" (perfect-model reference {_value(ref, unit)})"
            if better.get(key):
                text += f", {better[key]} is better"
            out.append(text)
        return out

    if ev:
        when = m.get("evaluated_at")
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if _is_number(when) else "?"
        on = [f"on {m['evaluated_on']}"] if m.get("evaluated_on") else []
        counts = [f"{_number(m[k])} {what}" for k, what in (("n_test", "test images"), ("n_samples", "samples"))
                  if _is_number(m.get(k))]
        lines.append(f"Evaluated {date} " + " ".join(on) + (f" ({', '.join(counts)})" if counts else "") + ":")
        lines += block(ev)
    if test:
        shown = block(test)
        if shown:
            lines.append("Test split when training ended:")
            lines += shown
    if train:
        parts = [f"{TRAIN_NAMES[k][0]} {_value(v, TRAIN_NAMES[k][1], short=True)}" for k, v in train.items()]
        lines.append("Last training steps: " + " · ".join(parts))
    if likelihood is False:
        lines.append("Likelihood: none (models of this kind define no density over images)")
    elif likelihood and not any(k in d for d in (ev, test) for k in LIKELIHOOD_METRICS):
        lines.append("Likelihood: not measured yet (Evaluate reports its bound on −log p(x))")
    return lines


def duration(seconds) -> str:
    if seconds is None:
        return "untrained"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_entry(path: str, source: str) -> Entry:
    from engines import checkpoint as ckpt

    try:
        info = ckpt.read_info(path)
    except ckpt.CheckpointError as e:
        return Entry(path, source, error=str(e).split(": ", 1)[-1])
    except Exception as e:  # noqa: BLE001 - one unreadable file is listed as such, never ends the listing
        return Entry(path, source, error=f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    entry = Entry(path, source, info, ckpt.read_thumbnail(path))
    try:  # what the list shows must be printable too
        entry.summary(), entry.tooltip()
    except Exception as e:  # noqa: BLE001
        return Entry(path, source, error=f"damaged metadata ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    return entry


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:  # a dangling link, or removed meanwhile: still listed (as unreadable)
        return 0.0


def list_paths(runs_dir: str, opened: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path, source):
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append((path, source))

    for p in sorted(glob.glob(os.path.join(bundled_dir(), "*.safetensors"))):
        add(p, "bundled")
    if runs_dir and os.path.isdir(runs_dir):
        runs = glob.glob(os.path.join(runs_dir, "*.safetensors"))
        for p in sorted(runs, key=lambda p: -_mtime(p)):  # newest first
            add(p, "runs")
    for p in opened:
        if os.path.isfile(p):
            add(p, "opened")
    return out


def scan(runs_dir: str, opened: list[str]) -> list[Entry]:
    return [read_entry(p, s) for p, s in list_paths(runs_dir, opened)]


def default_entry(entries: list[Entry], last_model: str = "") -> Entry | None:
    """The model to load at launch: the last one used, else the bundled faces VAE, else any
    bundled VAE on faces, else the first readable entry."""
    ok = [e for e in entries if e.ok]
    for e in ok:
        if last_model and os.path.realpath(e.path) == os.path.realpath(last_model):
            return e
    bundled = [e for e in ok if e.source == "bundled"]
    for e in bundled:
        if os.path.basename(e.path) == PREFERRED_FIRST_MODEL:
            return e
    for e in bundled:
        if e.info.engine == "vae" and e.info.data.get("name") == "faces":
            return e
    return ok[0] if ok else None
