"""The Export panel."""
from explorer.panels.export.panel import ExportPanel

__all__ = ["ExportPanel"]
