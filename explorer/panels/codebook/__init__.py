"""The Codebook panel."""
from explorer.panels.codebook.panel import CodebookPanel

__all__ = ["CodebookPanel"]
