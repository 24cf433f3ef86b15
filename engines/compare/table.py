"""The comparison table: one row per model, the columns the course notes' trade-off table asks
about — sample quality (FD, precision), mode coverage (recall, coverage), a likelihood where the
family has one (−ELBO for the VAE, bits/dim for diffusion), reconstruction, size, training time
and sampling speed — with CSV (written atomically) and aligned text forms.

A likelihood cell is filled only for families with the 'likelihood' capability: a GAN's row has
none. A column no model fills is left out (a table of VAEs and GANs has −ELBO, not bits/dim).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    key: str  # the row's key, and the CSV header
    title: str  # for people (a line break where a narrow header wraps)
    better: str = ""  # "lower" | "higher" | ""
    kind: str = "number"  # number | text | count | seconds | share
    always: bool = False  # shown even when no model fills it
    tip: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("model", "model", kind="text", always=True),
    Column("engine", "family", kind="text", always=True),
    Column("cfid", "FD", "lower", tip="Fréchet distance of classifier features, samples vs test images"),
    Column("precision", "precision", "higher", "share", tip="share of samples inside the test images' manifold (realism)"),
    Column("recall", "recall", "higher", "share", tip="share of test images inside the samples' manifold (variety)"),
    Column("coverage", "mode\ncoverage", "higher", "share", tip="share of classes the samples cover"),
    Column("elbo_nats", "−ELBO\n(nats/image)", "lower", tip="bound on −log p(x) on the test split"),
    Column("bpd", "bits/dim", "lower", tip="bound on −log p(x) on the test split, bits per dimension"),
    Column("psnr", "recon.\nPSNR (dB)", "higher", tip="reconstruction PSNR: test images encoded and decoded"),
    Column("parameters", "parameters", kind="count", always=True, tip="numbers in the model's weights"),
    Column("train_s", "training\ntime", kind="seconds", always=True),
    Column("ms_per_sample", "ms per\nsample", "lower", always=True, tip="one batch of samples, after a warm-up"),
    Column("n_samples", "samples\nscored", kind="count", tip="samples the FD, precision and recall are computed over"),
)
BY_KEY = {c.key: c for c in COLUMNS}
LIKELIHOOD_KEYS = ("elbo_nats", "bpd")
METRIC_KEYS = ("cfid", "precision", "recall", "coverage", "elbo_nats", "bpd", "psnr", "n_samples")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def row(name: str, engine: str, capabilities, metrics: dict, parameters: int, train_s, ms_per_sample) -> dict:
    """One model's row: the table's keys → a number, text or None (the family has none / not measured)."""
    caps = set(capabilities)
    out: dict = {"model": name, "engine": engine}
    for key in METRIC_KEYS:
        v = metrics.get(key)
        if key in LIKELIHOOD_KEYS and "likelihood" not in caps:
            v = None  # the family defines no density: whatever a file says, no likelihood
        out[key] = v if _finite(v) else None
    out["parameters"] = int(parameters)
    out["train_s"] = float(train_s) if _finite(train_s) else None
    out["ms_per_sample"] = float(ms_per_sample) if _finite(ms_per_sample) else None
    return out


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, rows: list[dict]) -> "Table":
        cols = [c for c in COLUMNS if c.always or any(r.get(c.key) is not None for r in rows)]
        return cls(cols, rows)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]

    def best(self, key: str) -> set[int]:
        """Rows holding the best value of a column with a direction (ties included)."""
        col = BY_KEY[key]
        vals = [(i, r.get(key)) for i, r in enumerate(self.rows) if r.get(key) is not None]
        if not col.better or len(vals) < 2:
            return set()
        pick = min if col.better == "lower" else max
        b = pick(v for _, v in vals)
        return {i for i, v in vals if v == b}

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.keys)
        for r in self.rows:
            w.writerow(["" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in self.keys])
        return buf.getvalue()

    def text(self) -> str:
        """Aligned, for a terminal."""
        head = [c.title.replace("\n", " ") for c in self.columns]
        body = [[cell(c, r.get(c.key)) for c in self.columns] for r in self.rows]
        w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w[i]) if i < 2 else h.rjust(w[i]) for i, h in enumerate(head))]
        for b in body:
            lines.append("  ".join(v.ljust(w[i]) if i < 2 else v.rjust(w[i]) for i, v in enumerate(b)))
        return "\n".join(line.rstrip() for line in lines)


def cell(col: Column, v) -> str:
    """A value as the table shows it ('—' where the family has none or it was not measured)."""
    if v is None:
        return "—"
    if col.kind == "text":
        return str(v)
    if col.kind == "count":
        return f"{int(v):,}"
    if col.kind == "share":
        return f"{v:.2f}"
    if col.kind == "seconds":
        s = int(round(v))
        return f"{s} s" if s < 60 else (f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min")
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3g}"


def write_csv(path: str, table: Table) -> str:
    """The table as CSV (machine keys as the header, full-precision numbers, empty where none),
    written atomically."""
    from engines import atomic

    return atomic.write_text(path, table.csv_text(), what="comparison table")
