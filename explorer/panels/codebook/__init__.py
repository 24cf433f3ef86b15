"""The Codebook panel: `CodebookPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.codebook import jobs
from explorer.panels.codebook.views import CodeTiles
from explorer.panels.codebook.charts import UsageHistogram
from explorer.panels.codebook.editor import TokenEditor
from explorer.panels.codebook.prior import PriorTrainer
from explorer.panels.codebook.panel import CodebookPanel

__all__ = ["CodebookPanel", "jobs", "CodeTiles", "UsageHistogram", "TokenEditor", "PriorTrainer"]
