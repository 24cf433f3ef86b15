"""Small pieces of the Manifold panel that are neither widgets nor long jobs: laying out a
projection for the view (in a worker), the colour-by choices, the selection's summary, the
atlas's default square, the caption under the decoded image, and `Links` (the connections a view
made to the current Workspace, undone when the Workspace is replaced)."""
from __future__ import annotations

import numpy as np

from explorer.widgets import map_colours
from explorer.panels.manifold.jobs import project


def apply_projection(request):
    """In a worker: (ModelData, MapRequest | Projection) → (Projection, drawn coords, k-d tree)."""
    from scipy.spatial import cKDTree

    md, spec = request
    projection = spec if hasattr(spec, "coords") else project(md.ls.latents, spec)
    coords = np.asarray(projection.coords[md.shown], dtype=np.float64)
    return projection, coords, cKDTree(coords)


def colour_options(md) -> list[tuple[str, str]]:
    ls = md.ls
    out = []
    if ls.labels is not None:
        out.append(("Label", "label"))
    out += [(f"{name}", f"attr:{name}") for name in ls.attributes]
    out += [("Train / test split", "split"), ("Nothing", "none")]
    return out


def colouring_for(md, key: str):
    ls, shown = md.ls, md.shown
    if key == "label" and ls.labels is not None:
        return map_colours.by_categories(ls.labels[shown], ls.label_names, "label")
    if key.startswith("attr:") and key[5:] in ls.attributes:
        name = key[5:]
        return map_colours.by_values(ls.attributes[name][shown], name.replace("_", " "))
    if key == "split":
        return map_colours.by_split(ls.is_train()[shown])
    return map_colours.uniform(len(shown), "data points")


def selection_summary(md, idx) -> str:
    """'12 smiling woman, 3 neutral man': the two most common labels of the selected points."""
    if md is None or not len(idx) or md.ls.labels is None:
        return ""
    counts = np.bincount(md.ls.labels[idx])
    top = np.argsort(counts)[::-1][:2]
    return ", ".join(f"{counts[t]} {md.label_name(int(t))}" for t in top if counts[t])


def default_atlas(projection, coords) -> tuple[tuple[float, float], float]:
    """Centre and half-side of the atlas square: the central 96 % of the points."""
    if projection.kind == "pca":
        return (0.0, 0.0), 2.5  # map units are standard deviations
    lo = np.percentile(coords, 2, axis=0)
    hi = np.percentile(coords, 98, axis=0)
    centre = (lo + hi) / 2
    return (float(centre[0]), float(centre[1])), float(max(hi - lo) / 2 * 1.05) or 1.0


def frame_caption(frame, label: str, projection) -> str:
    """What the decoded image is: where on the map, what it came from, and the honest caveats."""
    x, y = frame.point
    if label.startswith("#"):
        label = "data " + label
    head = f"<b>{label}</b>" if label else f"<b>map point ({x:.2f}, {y:.2f})</b>"
    detail = f"|z| = {float(np.linalg.norm(frame.z)):.2f}"
    if frame.off_map > 1e-4 * max(1.0, float(np.linalg.norm(frame.z))):
        detail += f" · {frame.off_map:.2f} off the map's plane (hollow cursor: its projection)"
    lines = [head, f"<span style='color:#555'>{detail}</span>"]
    if frame.support is not None and frame.support > 3:
        lines.append("<span style='color:#b26a00'>Far from the data on this UMAP map: the latent is an "
                     "average of distant points.</span>")
    return "<br>".join(lines)


class Links:
    """The signal connections one view made to the current Workspace, undone together when the
    Workspace is replaced (a new model), so an old Workspace never reaches the view."""

    def __init__(self):
        self._pairs: list = []

    def connect(self, signal, slot) -> None:
        signal.connect(slot)
        self._pairs.append((signal, slot))

    def clear(self) -> None:
        import warnings

        for signal, slot in self._pairs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):  # the Workspace is already gone
                    pass
        self._pairs = []
