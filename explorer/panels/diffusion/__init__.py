"""The Diffusion panel: `DiffusionPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.diffusion import jobs
from explorer.panels.diffusion.forward import ForwardView
from explorer.panels.diffusion.reverse import ReverseView
from explorer.panels.diffusion.schedule import SchedulePlot
from explorer.panels.diffusion.map import TrajectoryMap
from explorer.panels.diffusion.panel import DiffusionPanel

__all__ = ["DiffusionPanel", "jobs", "ForwardView", "ReverseView", "SchedulePlot", "TrajectoryMap"]
