"""The Manifold panel."""
from explorer.panels.manifold.panel import ManifoldPanel

__all__ = ["ManifoldPanel"]
