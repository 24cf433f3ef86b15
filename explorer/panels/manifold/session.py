"""The Manifold panel's own view state: what the map shows and how (projection, latent axes,
colouring, scatter/atlas/seeds, atlas resolution, path method and steps), as a session
file keeps it and as `screenshot` sets it up.

The current latent, its history, the bookmarks and the groups A/B are the Workspace's and are
saved with it, not here. `ViewState` only reads and sets the panel's form (`MapControls`).
"""
from __future__ import annotations


class ViewState:
    def __init__(self, controls):
        self.controls = controls

    def apply(self, projection: str | None = None, colour: str | None = None, view: str | None = None) -> None:
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

    def state(self) -> dict:
        c = self.controls
        return {"projection": c.projection.currentData(), "colour": c.colour.currentData(),
                "view": "seeds" if c.seed_mode else "atlas" if c.atlas_mode else "map",
                "axes": [c.axis_i.value(), c.axis_j.value()], "atlas_resolution": c.atlas_res.value(),
                "path": {"method": c.path_method.currentData(), "steps": c.path_steps.value()}}

    def restore(self, d: dict) -> None:
        c = self.controls
        axes = d.get("axes")
        if axes is not None and len(axes) == 2:
            c.axis_i.setValue(int(axes[0]))
            c.axis_j.setValue(int(axes[1]))
        if d.get("atlas_resolution"):
            c.atlas_res.setValue(int(d["atlas_resolution"]))
        path = d.get("path") or {}
        if c.path_method.findData(path.get("method")) >= 0:
            c.path_method.setCurrentIndex(c.path_method.findData(path["method"]))
        if path.get("steps"):
            c.path_steps.setValue(int(path["steps"]))
        self.apply(d.get("projection"), d.get("colour"), d.get("view"))
