"""Reusable views: image grids and loss curves."""
