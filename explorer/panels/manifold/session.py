"""The Manifold panel as a whole view: what a session file keeps of it (projection, colouring,
scatter/atlas/seeds, the current latent) and how `screenshot` sets it up for a picture.

A mixin of ManifoldPanel: it reads and sets the panel's controls, map, seeds and paths.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer


class SessionMixin:
    def ready_for_screenshot(self) -> bool:
        """Data mapped, the current latent decoded and inspected, nothing left to draw."""
        if self.controls.seed_mode:
            return self.seeds.complete and self.inspector.image.has_image() and not self.busy
        return (self.projection is not None and self.inspector.image.has_image() and not self.busy
                and (not self.controls.atlas_mode or self.atlas.complete))

    def prepare_screenshot(self, view: str | None = None, projection: str | None = None, colour: str | None = None,
                           path: int = 0, resolution: int | None = None) -> None:
        """Set the panel up for a picture: `view` scatter|atlas, a projection, a colouring, and a
        path through `path` data points of different labels."""
        c = self.controls
        if path and self.md is not None:
            ls = self.md.ls
            labels = ls.labels[ls.train_idx] if ls.labels is not None else np.zeros(len(ls.train_idx), np.int64)
            picks = [int(ls.train_idx[np.flatnonzero(labels == lab)[0]]) for lab in np.unique(labels)[:path]]
            for i in picks:
                self.add_path_point(0.0, 0.0, i)
        if resolution:
            c.atlas_res.setValue(int(resolution))
        self.apply_view(projection, colour, view)
        if view == "seeds":
            self.seeds.move_to(1.5, 1.5, "end")

    def apply_view(self, projection: str | None = None, colour: str | None = None, view: str | None = None) -> None:
        """Choose a projection, a colouring and what the map shows (scatter|map|atlas|seeds)."""
        c = self.controls
        if projection:
            c.set_projection(projection)
        if colour and c.colour.findData(colour) >= 0:
            c.colour.setCurrentIndex(c.colour.findData(colour))
        if view == "seeds":
            c.show_seeds.setChecked(True)
        elif view in ("scatter", "map", "atlas"):
            c.set_atlas_mode(view == "atlas")

    def session_state(self) -> dict:
        c = self.controls
        return {"projection": c.projection.currentData(), "colour": c.colour.currentData(),
                "view": "seeds" if c.seed_mode else "atlas" if c.atlas_mode else "map",
                "latent": None if self.z is None else [float(x) for x in np.ravel(self.z)]}

    def restore_session_state(self, d: dict) -> None:
        self.apply_view(d.get("projection"), d.get("colour"), d.get("view"))
        if d.get("latent") is not None:
            self._restore_latent(np.asarray(d["latent"], np.float32), tries=120)

    def _restore_latent(self, z, tries: int) -> None:
        """Go to z once the map is there (a session is often opened while the data still loads)."""
        if self.projection is not None and self.engine is not None and z.size == self.engine.latent_dim:
            self.go_to(z, label="session")
        elif tries > 0 and self.engine is not None:
            QTimer.singleShot(250, lambda: self._restore_latent(z, tries - 1))
