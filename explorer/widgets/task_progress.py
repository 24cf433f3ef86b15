"""The status bar's progress for the loaded model's data: a determinate bar with its stage
("encoding 1,200/1,797 images") and a Cancel button, shown while the Workspace loads and encodes
the data that every panel shares; a stage that cannot tell how far it is (reading the files,
measuring the training latents) shows a moving bar instead of an empty one."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


class TaskProgress(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.ws = None
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(120)
        self.bar.setMaximumHeight(14)
        self.label = QLabel("")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop loading the data (panels that need it say so; showing one asks again)")
        self.cancel_btn.setMaximumHeight(20)
        self.cancel_btn.clicked.connect(self.cancel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_btn)
        self.hide()

    def set_workspace(self, ws) -> None:
        """Follow `ws`'s data load (None: nothing to follow). The old Workspace is closed and
        emits nothing more, so its connections need no undoing."""
        self.ws = ws
        self.hide()
        if ws is None:
            return
        ws.data_loading.connect(lambda _src, w=ws: self._started(w))
        ws.data_progress.connect(lambda p, w=ws: self._progress(w, p))
        ws.data_ready.connect(lambda _md, w=ws: self._finished(w))
        ws.data_failed.connect(lambda _e, w=ws: self._finished(w))

    def _started(self, ws) -> None:
        if ws is self.ws:
            self.bar.setRange(0, 0)  # moving until the first stage says how far it is
            self.label.setText("Loading the data…")
            self.show()

    def _progress(self, ws, p) -> None:
        if ws is not self.ws:
            return
        if p.fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * max(0.0, min(1.0, p.fraction))))
        text = p.message or p.stage
        self.label.setText(text[:1].upper() + text[1:])
        self.show()

    def _finished(self, ws) -> None:
        if ws is self.ws:
            self.hide()

    def cancel(self) -> None:
        if self.ws is not None:
            self.ws.cancel_data()
        self.hide()
