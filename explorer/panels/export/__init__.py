"""The Export panel: `ExportPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.export import jobs
from explorer.panels.export.keys import KeyList
from explorer.panels.export.options import ExportOptions
from explorer.panels.export.panel import ExportPanel

__all__ = ["ExportPanel", "jobs", "KeyList", "ExportOptions"]
