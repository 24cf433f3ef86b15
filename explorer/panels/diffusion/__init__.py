"""The Diffusion panel."""
from explorer.panels.diffusion.panel import DiffusionPanel

__all__ = ["DiffusionPanel"]
