"""The panels, one tab each, declared here in display order.

Train, Manifold, Arithmetic, Codebook, Diffusion, Pixels and Export; a new panel is a sub-package
`explorer/panels/<name>/` plus one line in PANELS (and, if it wants a shortcut, one row in
actions.py). A panel is a QWidget constructed as `Panel(ctx)` with `ctx` an
`explorer.context.Context` (session, settings); it follows `ctx.session.model_changed` and runs compute only in workers.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from PySide6.QtWidgets import QWidget


@dataclass(frozen=True)
class PanelSpec:
    name: str  # used by `screenshot --panel NAME` and in settings
    title: str
    target: str  # "module:Class"

    def load(self) -> type:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("train", "Train", "explorer.panels.train.panel:TrainPanel"),
    PanelSpec("manifold", "Manifold", "explorer.panels.manifold.panel:ManifoldPanel"),
    PanelSpec("arithmetic", "Arithmetic", "explorer.panels.arithmetic.panel:ArithmeticPanel"),
    PanelSpec("codebook", "Codebook", "explorer.panels.codebook.panel:CodebookPanel"),
    PanelSpec("diffusion", "Diffusion", "explorer.panels.diffusion.panel:DiffusionPanel"),
    PanelSpec("raster", "Pixels", "explorer.panels.raster.panel:RasterPanel"),
    PanelSpec("export", "Export", "explorer.panels.export.panel:ExportPanel"),
)


def names() -> list[str]:
    return [p.name for p in PANELS]


def spec(name: str) -> PanelSpec:
    for p in PANELS:
        if p.name == name:
            return p
    raise KeyError(f"unknown panel '{name}' (available: {', '.join(names())})")


class Panel(QWidget):
    """Base class: a panel has a name and a title and can save/restore its choices."""

    name = ""
    title = ""

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx

    def save_state(self) -> None:
        """Write the panel's choices into ctx.settings (called before the app saves settings)."""

    def shutdown(self) -> None:
        """Stop the panel's long-running work (the window is closing)."""
