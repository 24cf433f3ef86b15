"""The Arithmetic panel as a whole view: what a session file keeps of it (active vectors, their
strengths, the base latent) and the demo content `screenshot --panel arithmetic` sets up.
A mixin of ArithmeticPanel."""
from __future__ import annotations

import numpy as np

from explorer.panels.arithmetic.jobs import Base, Recipe


class SessionMixin:
    # ---- screenshots ---------------------------------------------------------------------------------
    def prepare_screenshot(self, tab: str = "edit", attribute: str | None = None, s: float = 1.5) -> None:
        """Real content for `screenshot --panel arithmetic`: vectors for `attribute` (default
        sunglasses, else the first binary attribute) and smiling, a test image without the
        attribute as the base with its slider at `s`, the analogy example; `tab` edit|analogies."""
        self._demo = {"attribute": attribute, "s": float(s)}
        self.tabs.setCurrentIndex(1 if tab.startswith("analog") else 0)
        if self.md is not None:
            self._run_demo()

    def _run_demo(self) -> None:
        demo, self._demo = self._demo, None
        md = self.md
        attrs = md.binary_attributes
        first = demo["attribute"] or ("sunglasses" if "sunglasses" in attrs else (attrs[0] if attrs else None))
        if first is None:
            if md.ls.labels is not None:
                self.add_vector(Recipe("label", label=0))
            return
        for a in [first] + [a for a in ("smiling",) if a in attrs and a != first]:
            self.add_vector(Recipe("attribute", attribute=a))
        ls = md.ls
        if first in ls.attributes:
            without = ls.test_idx[ls.attributes[first][ls.test_idx] == 0]
            if len(without):
                self.use_data_image(int(without[0]))
        self._demo_strength = (first, demo["s"])
        self.analogy.example()

    def ready_for_screenshot(self) -> bool:
        """Nothing loading, computing or drawing (and the demo content, if asked for, in place)."""
        if self.engine is None:
            return True
        if self.loading or self._pending_vectors:
            return False
        if self.md is None:
            return True  # the data could not be had: nothing more will come
        if self._demo is not None:
            return False
        pending = self._demo_strength
        if pending is not None:
            attribute, s = pending
            v = next((v for v in self.vectors.active() if v.meta.get("attribute") == attribute), None)
            if v is None:
                return False
            self._demo_strength = None
            self.vectors.select_vector(v)
            self.edit.set_strength(v, s)
            return False
        return not (self.edit.busy or self.analogy.busy or self._base_runner.busy)

    # ---- session files (the Export panel's File → Save/Open Session) ------------------------------------------
    def session_state(self) -> dict:
        """Which vectors are on, their strengths, and the base latent (the vectors themselves are
        stored by the session once, for every panel)."""
        e = self.edit
        return {"active": [v.name for v in self.vectors.active()],
                "strengths": {v.name: float(s) for v, s in e.strengths.items()},
                "current": getattr(self.vectors.current(), "name", None),
                "base": None if e.base is None else {"latent": [float(x) for x in np.ravel(e.base.z)],
                                                     "caption": e.base.caption}}

    def restore_session_state(self, d: dict) -> None:
        by_name = {v.name: v for v in self.vectors.vectors()}
        for name, v in by_name.items():
            self.vectors.set_active(v, name in d.get("active", ()))
            if name in d.get("strengths", {}):
                self.edit.set_strength(v, float(d["strengths"][name]))
        if d.get("current") in by_name:
            self.vectors.select_vector(by_name[d["current"]])
        b = d.get("base")
        if b and self.engine is not None and len(b["latent"]) == self.engine.latent_dim:
            self.edit.set_base(Base(np.asarray(b["latent"], np.float32), None, "sample", str(b.get("caption", "session"))))
