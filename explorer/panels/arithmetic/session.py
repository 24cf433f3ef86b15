"""The Arithmetic panel's own view state and its screenshot demo, as two objects the panel holds.

- `ViewState`: what a session file keeps of the panel's view — the tab, the strengths of the
  sliders (by vector name), the selected vector, the base latent, ψ. The vectors themselves and
  which of them are switched on are the Workspace's (`Workspace.session_state`), saved once for
  every panel. Strengths of vectors that are not there yet wait for them (`apply_pending`).
- `ScreenshotDemo`: the content `screenshot --panel arithmetic` sets up.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from explorer.panels.arithmetic.jobs import Base, Recipe


class ViewState:
    def __init__(self, edit, vectors, tabs):
        """`edit`: the EditView; `vectors`: the VectorList; `tabs`: Edit / Analogies."""
        self.edit, self.vectors, self.tabs = edit, vectors, tabs
        self._strengths: dict[str, float] = {}  # restored strengths waiting for their vector
        self._current: str | None = None  # the restored selection, waiting for its vector

    def clear(self) -> None:
        self._strengths, self._current = {}, None

    def state(self) -> dict:
        e = self.edit
        return {"tab": self.tabs.currentIndex(),
                "strengths": {v.name: float(s) for v, s in e.strengths.items()},
                "current": getattr(self.vectors.current(), "name", None),
                "psi": float(e.psi.value()),
                "base": None if e.base is None else {"latent": [float(x) for x in np.ravel(e.base.z)],
                                                     "caption": e.base.caption}}

    def restore(self, d: dict, engine, ws=None) -> None:
        if ws is not None and "active" in d:  # a session written when this panel kept the switches
            for v in ws.vectors:
                ws.set_vector_active(v.name, v.name in d["active"])
        tab = d.get("tab")
        if isinstance(tab, int) and 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)
        self._strengths = {str(k): float(s) for k, s in (d.get("strengths") or {}).items()}
        self._current = d.get("current")
        if d.get("psi") is not None and engine is not None and hasattr(engine, "truncate"):
            self.edit.psi.setValue(float(d["psi"]))
        b = d.get("base")
        if b and engine is not None and len(b["latent"]) == engine.latent_dim:
            self.edit.set_base(Base(np.asarray(b["latent"], np.float32), None, "sample",
                                    str(b.get("caption", "session"))))
        self.apply_pending()

    def apply_pending(self) -> None:
        """Give restored strengths and the selection to the vectors now in the list."""
        by_name = {v.name: v for v in self.vectors.vectors()}
        for name in [n for n in self._strengths if n in by_name]:
            self.edit.set_strength(by_name[name], self._strengths.pop(name))
        if self._current in by_name:
            self.vectors.select_vector(by_name[self._current])
            self._current = None


class ScreenshotDemo:
    def __init__(self, edit, vectors, analogy, tabs, make_vector: Callable[[Recipe], bool],
                 use_data_image: Callable[[int], None]):
        """The views it fills (EditView, VectorList, AnalogyView, the tabs), and the panel's
        `make_vector(recipe)` (computed in a worker) and `use_data_image(index)`."""
        self.edit, self.vectors, self.analogy, self.tabs = edit, vectors, analogy, tabs
        self.make_vector, self.use_data_image = make_vector, use_data_image
        self.pending: dict | None = None  # asked for before the data was ready
        self._strength: tuple | None = None  # (attribute, s) once its vector exists

    def prepare(self, tab: str = "edit", attribute: str | None = None, s: float = 1.5) -> None:
        self.pending = {"attribute": attribute, "s": float(s)}
        self.tabs.setCurrentIndex(1 if tab.startswith("analog") else 0)

    def run(self, ws) -> None:
        """Vectors for the attribute (default sunglasses, else the first binary attribute) and
        smiling (kept when the model has them already), a test image without the attribute as the
        base, its slider at s (once the vector is there, see `settle`), the analogy example."""
        demo, self.pending = self.pending, None
        md = ws.data
        attrs = md.binary_attributes
        first = demo["attribute"] or ("sunglasses" if "sunglasses" in attrs else (attrs[0] if attrs else None))
        if first is None:
            if md.ls.labels is not None:
                self.make_vector(Recipe("label", label=0))
            return
        have = {v.meta.get("attribute"): v for v in ws.vectors}
        for a in [first] + [a for a in ("smiling",) if a in attrs and a != first]:
            if a in have:
                ws.set_vector_active(have[a].name, True)
            else:
                self.make_vector(Recipe("attribute", attribute=a))
        ls = md.ls
        if first in ls.attributes:
            without = ls.test_idx[ls.attributes[first][ls.test_idx] == 0]
            if len(without):
                self.use_data_image(int(without[0]))
        self._strength = (first, demo["s"])
        self.analogy.example()

    def settle(self, active) -> bool:
        """True once the demo's slider is set (`active`: the switched-on vectors); until then
        sets it as soon as its vector is there."""
        if self._strength is None:
            return True
        attribute, s = self._strength
        v = next((v for v in active if v.meta.get("attribute") == attribute), None)
        if v is not None:
            self._strength = None
            self.vectors.select_vector(v)
            self.edit.set_strength(v, s)
        return False
