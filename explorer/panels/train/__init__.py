"""The Train panel: `TrainPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.train import jobs
from explorer.panels.train.data_box import DataBox
from explorer.panels.train.forms import ConfigForm
from explorer.panels.train.run_controls import RunControls
from explorer.panels.train.panel import TrainPanel

__all__ = ["TrainPanel", "jobs", "DataBox", "ConfigForm", "RunControls"]
