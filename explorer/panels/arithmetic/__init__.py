"""The Arithmetic panel: `ArithmeticPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.arithmetic import jobs
from explorer.panels.arithmetic.edit import EditView
from explorer.panels.arithmetic.analogy import AnalogyView
from explorer.panels.arithmetic.vectors import VectorList
from explorer.panels.arithmetic.base import DataBrowser
from explorer.panels.arithmetic.panel import ArithmeticPanel

__all__ = ["ArithmeticPanel", "jobs", "EditView", "AnalogyView", "VectorList", "DataBrowser"]
