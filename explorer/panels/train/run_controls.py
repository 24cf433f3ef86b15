"""The Train panel's run controls: epochs, seed, device, checkpoint name, Start / Pause /
Cancel, and the progress bar with a status line (step, epoch, images/s, ETA)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

ACTIVE = ("running", "paused", "pausing")


def available_devices() -> list[str]:
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def duration(s) -> str:
    if s is None:
        return "–"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_text(p) -> str:
    eta = f" · ETA {duration(p.eta_s)}" if p.eta_s is not None and p.state == "running" else ""
    total = f" / {p.total_steps:,}" if p.total_steps else ""
    return (f"{p.state} · step {p.step:,}{total} · epoch {p.epoch:.2f} · {p.images_per_s:,.0f} img/s · "
            f"{duration(p.elapsed_s)} elapsed{eta}" + (f" · {p.message}" if p.message else ""))


class RunControls(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.epochs_label = QLabel("Epochs")
        self.epochs = QDoubleSpinBox()
        self.epochs.setRange(0.1, 100_000)
        self.epochs.setDecimals(1)
        self.epochs.setValue(10)
        self.epochs.setToolTip("Passes over the training split")
        self.seed = QSpinBox()
        self.seed.setRange(0, 99_999)
        self.seed.setToolTip("Seed for the weights, the batch order and the training noise")
        self.device = QComboBox()
        for d in available_devices():
            self.device.addItem(d, d)
        self.device.setToolTip("Where the app computes (training and drawing)")
        self.save_as = QLineEdit()
        self.save_as.setPlaceholderText("name (automatic)")
        self.save_as.setToolTip("File name of the checkpoint in your runs folder")
        self.start_btn = QPushButton("Start")
        self.pause_btn = QPushButton("Pause")
        self.cancel_btn = QPushButton("Cancel")
        self.start_btn.setToolTip("Start training (Ctrl+Return)")
        self.pause_btn.setToolTip("Pause or resume (Ctrl+P)")
        self.cancel_btn.setToolTip("Stop and keep a checkpoint of what was learnt (Ctrl+.)")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.status = QLabel("Pick a data set and an engine, then press Start.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        row1 = QHBoxLayout()
        for label, w in ((self.epochs_label, self.epochs), (QLabel("Seed"), self.seed),
                         (QLabel("Device"), self.device)):
            row1.addWidget(label)
            row1.addWidget(w)
        row1.addStretch(1)
        save_row = QHBoxLayout()  # a row of its own: in a 1024-pixel window the name would get a sliver
        save_row.addWidget(QLabel("Save as"))
        save_row.addWidget(self.save_as, 1)
        row2 = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.cancel_btn):
            row2.addWidget(b)
        row2.addWidget(self.bar, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row1)
        lay.addLayout(save_row)
        lay.addLayout(row2)
        lay.addWidget(self.status)

    def show_device(self, name: str) -> None:
        self.device.blockSignals(True)
        i = self.device.findData(name)
        if i < 0:
            self.device.addItem(name, name)
            i = self.device.count() - 1
        self.device.setCurrentIndex(i)
        self.device.blockSignals(False)

    def show_progress(self, p) -> None:
        if p.fraction is not None:
            self.bar.setValue(int(1000 * p.fraction))
        self.status.setText(progress_text(p))

    def set_state(self, state: str, can_start: bool, closed_form: bool, resuming: bool) -> None:
        idle = state == "idle"
        self.start_btn.setEnabled(idle and can_start)
        self.pause_btn.setEnabled(state in ACTIVE)
        self.pause_btn.setText("Resume" if state in ("paused", "pausing") else "Pause")
        self.cancel_btn.setEnabled(state in ("starting", *ACTIVE))
        self.device.setEnabled(idle)
        self.epochs.setEnabled(idle and not closed_form)
        self.seed.setEnabled(idle and not resuming)
        self.save_as.setEnabled(idle and not resuming)
        self.epochs_label.setText("More epochs" if resuming else "Epochs")
