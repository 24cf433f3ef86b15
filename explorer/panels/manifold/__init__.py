"""The Manifold panel: `ManifoldPanel` (panel.py), its views, and `jobs` — the Qt-free work it runs in
workers. It observes the Workspace (`ctx.workspace`) and never imports another panel."""
from explorer.panels.manifold import jobs
from explorer.panels.manifold.view import MapArea
from explorer.panels.manifold.inspect import Inspector
from explorer.panels.manifold.controls import MapControls
from explorer.panels.manifold.paths import PathEditor
from explorer.panels.manifold.places import PlaceList
from explorer.panels.manifold.atlas import AtlasView
from explorer.panels.manifold.panel import ManifoldPanel

__all__ = ["ManifoldPanel", "jobs", "MapArea", "Inspector", "MapControls", "PathEditor", "PlaceList", "AtlasView"]
