"""The Train panel."""
from explorer.panels.train.panel import TrainPanel

__all__ = ["TrainPanel"]
