"""The Analogies tab: a − b + c from three data images, decoded, with its nearest data images.

Click a slot (a, b or c), then a thumbnail to fill it; the next slot is chosen for you. The
example button fills all three in one click — a smiling woman, the neutral woman closest to her
in latent space (so a − b is the smile, not a different face) and a neutral man — and "Another"
draws a new example. The result is computed in a worker whenever the three are set.
"""
from __future__ import annotations

import html
from collections import Counter

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QToolButton, QVBoxLayout, QWidget)

from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.image_strip import ImageStrip
from explorer.workers import LatestRequestRunner
from explorer.panels.arithmetic.base import DataBrowser
from explorer.panels.arithmetic.jobs import AnalogyRequest, example_picks, render_analogy

EXAMPLE = ("smiling woman", "neutral woman", "neutral man")  # the slides' a − b + c
SLOTS = ("a", "b", "c")
K = 5


class _FittingButton(QPushButton):
    """A button with a long text, shown whole when it fits and a short text otherwise (never a
    cut one)."""

    def __init__(self, text: str, short: str):
        super().__init__(text)
        self._long, self._short = text, short

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        pad = self.sizeHint().width() - self.fontMetrics().horizontalAdvance(self.text())
        fits = self.fontMetrics().horizontalAdvance(self._long) + pad <= self.width()
        self.setText(self._long if fits else self._short)


class AnalogyView(QWidget):
    rendered = Signal(object)  # engines.latent.attributes.AnalogyResult

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.engine = None
        self.md = None
        self.picks: list[int | None] = [None, None, None]
        self.last = None
        self._seed = 0
        self._runner = LatestRequestRunner(render_analogy, self)
        self._runner.result.connect(self._on_result)
        self._runner.failed.connect(self._on_failed)
        self._build()

    def _build(self) -> None:
        self.browser = DataBrowser()
        self.browser.picked.connect(self.fill_active)
        pick_box = QGroupBox("Pick images")
        pick_box.setToolTip("Click a slot (a, b or c), then an image")
        pl = QVBoxLayout(pick_box)
        pl.addWidget(self.browser)
        pick_box.setMinimumWidth(150)

        self.slot_group = QButtonGroup(self)
        self.slot_group.setExclusive(True)
        self.slot_views, self.slot_captions, self.slot_buttons = [], [], []
        slots = QGridLayout()
        signs = ("", "−", "+")
        for i, name in enumerate(SLOTS):
            btn = QPushButton(name)
            btn.setCheckable(True)
            btn.setToolTip(f"The next image you click fills {name}")
            btn.setFixedWidth(40)
            self.slot_group.addButton(btn, i)
            view = ImageGrid(placeholder=name)
            view.setFixedSize(72, 72)
            cap = QLabel("")
            cap.setWordWrap(True)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            cap.setMinimumWidth(64)
            col = 2 * i
            if signs[i]:
                sign = QLabel(f"<span style='font-size:20pt'>{signs[i]}</span>")
                slots.addWidget(sign, 1, col - 1, Qt.AlignmentFlag.AlignCenter)
            slots.addWidget(btn, 0, col, Qt.AlignmentFlag.AlignHCenter)
            slots.addWidget(view, 1, col, Qt.AlignmentFlag.AlignHCenter)
            slots.addWidget(cap, 2, col)
            self.slot_views.append(view)
            self.slot_captions.append(cap)
            self.slot_buttons.append(btn)
        slots.addWidget(QLabel("<span style='font-size:20pt'>=</span>"), 1, 6, Qt.AlignmentFlag.AlignCenter)
        self.slot_buttons[0].setChecked(True)

        self.example_btn = _FittingButton(f"{EXAMPLE[0].capitalize()} − {EXAMPLE[1]} + {EXAMPLE[2]}",
                                          "Example: a − b + c")
        self.example_btn.setToolTip("Fill a, b, c with the slides' example: a smiling woman, the neutral woman "
                                    "nearest to her in latent space, and a neutral man")
        self.another_btn = QToolButton()
        self.another_btn.setText("↻")
        self.another_btn.setToolTip("Another example of the same kind (new random faces)")
        self.example_btn.clicked.connect(lambda: self.example())
        self.another_btn.clicked.connect(lambda: self.example(self._seed + 1))
        # The long button shows its short text in a narrow window rather than widen the whole panel.
        self.example_btn.setMinimumWidth(140)
        self.example_btn.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        ex = QHBoxLayout()
        ex.addWidget(self.example_btn, 1)
        ex.addWidget(self.another_btn)

        self.result = ImageGrid(placeholder="Fill a, b and c: the result a − b + c appears here.")
        self.result.setMinimumSize(160, 160)
        self.result_caption = QLabel("")
        self.result_caption.setWordWrap(True)
        self.neighbours = ImageStrip(placeholder="Its nearest data images appear here.", max_cell=112, expected=K)
        self.neighbours.setMinimumHeight(72)
        nb = QGroupBox(f"{K} nearest data images (latent distance)")
        nbl = QVBoxLayout(nb)
        nbl.setContentsMargins(6, 4, 6, 4)
        nbl.addWidget(self.neighbours)

        result_box = QGroupBox("a − b + c")
        rl = QVBoxLayout(result_box)
        rl.addLayout(slots)
        rl.addLayout(ex)
        rl.addWidget(self.result, 1)
        rl.addWidget(self.result_caption)

        right = QVBoxLayout()
        right.addWidget(result_box, 1)
        right.addWidget(nb)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(pick_box, 5)
        lay.addLayout(right, 6)
        self.result.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # ---- model and data ----------------------------------------------------------------------------
    def set_model(self, engine, md) -> None:
        self.engine, self.md = engine, md
        self._runner.cancel()
        self.browser.set_data(md)
        self.picks = [None, None, None]
        self.last = None
        for v, c in zip(self.slot_views, self.slot_captions):
            v.set_image(None)
            c.setText("")
        self.result.set_image(None)
        self.result_caption.setText("" if md is not None else "Analogies need the model's data (encoded).")
        self.neighbours.clear()
        names = list(md.ls.label_names) if md is not None and md.ls.labels is not None else []
        has_example = all(n in names for n in EXAMPLE)
        self.example_btn.setVisible(has_example)
        self.another_btn.setVisible(has_example)
        self.slot_buttons[0].setChecked(True)
        self.setEnabled(md is not None)

    # ---- picking -------------------------------------------------------------------------------------
    def active_slot(self) -> int:
        return max(0, self.slot_group.checkedId())

    def fill_active(self, index: int) -> None:
        slot = self.active_slot()
        self.set_pick(slot, index)
        if slot < 2:
            self.slot_buttons[slot + 1].setChecked(True)

    def set_pick(self, slot: int, index: int) -> None:
        self.picks[slot] = int(index)
        self._show_slot(slot, index)
        self.compute()

    def _show_slot(self, slot: int, index: int) -> None:
        self.slot_views[slot].set_image(self.md.ds.images[index])
        self.slot_views[slot].setToolTip(self.md.caption(index))
        self.slot_captions[slot].setText(self.md.caption(index, short=True))

    def example(self, seed: int | None = None) -> bool:
        """Fill a, b, c with the slides' example; False when the data has no such labels."""
        if self.md is None:
            return False
        names = list(self.md.ls.label_names)
        if not all(n in names for n in EXAMPLE):
            return False
        self._seed = self._seed if seed is None else int(seed)
        try:
            picks = example_picks(self.md, *(names.index(n) for n in EXAMPLE), seed=self._seed)
        except ValueError as e:
            self.ctx.session.report(e, "No example")
            return False
        for slot, i in enumerate(picks):
            self.picks[slot] = int(i)
            self._show_slot(slot, i)
        self.slot_buttons[0].setChecked(True)
        self.compute()
        return True

    # ---- computing -----------------------------------------------------------------------------------
    def compute(self) -> None:
        if self.engine is None or self.md is None or any(p is None for p in self.picks):
            return
        self.result_caption.setText("computing…")
        self._runner.submit(AnalogyRequest(self.engine, self.md, tuple(self.picks), K))

    def _on_result(self, generation, request, res) -> None:
        if request.engine is not self.engine or request.md is not self.md:
            return
        self.last = res
        self.result.set_image(res.image)
        md = self.md
        caps, labels = [], []
        for i, d in zip(res.neighbours, res.distances):
            i = int(i)
            tag = next((f" (= {SLOTS[s]})" for s in range(3) if request.picks[s] == i), "")
            lab = md.label_name(int(md.ls.labels[i])) if md.ls.labels is not None else f"#{i}"
            labels.append(lab)
            caps.append(f"{lab}{tag}\nd = {d:.2f}")
        self.neighbours.set_images(md.ds.images[res.neighbours], caps)
        if md.ls.labels is not None:
            counts = ", ".join(f"{html.escape(n)} × {c}" for n, c in Counter(labels).most_common())
            self.result_caption.setText(f"Decoded a − b + c. Its nearest data images are labelled: {counts}.")
        else:
            self.result_caption.setText("Decoded a − b + c, and its nearest data images below.")
        self.rendered.emit(res)

    def _on_failed(self, generation, request, exc) -> None:
        self.result_caption.setText(f"Could not compute the analogy: {exc}")
        self.ctx.session.report(exc, "Analogy failed")

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def shutdown(self) -> None:
        self._runner.cancel()
