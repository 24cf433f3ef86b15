"""Training a VQ model's prior from the Codebook panel: the same `train_prior` loop as
`python main.py train-prior`, in a long-job worker, with progress, cancel, and a save into the
model's checkpoint (or a file the user picks when that one is not writable)."""
from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from explorer.workers import Worker


def _train(engine, source, epochs, out, info, control):
    from engines.data import load_dataset
    from engines.vq.prior_train import train_prior

    data = load_dataset(source, spec=engine.spec)
    return (yield from train_prior(engine, data, epochs=epochs, out=out, info=info, control=control))


class PriorTrainer(QWidget):
    trained = Signal(str)  # the checkpoint written ('' when not saved)
    failed = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.engine = self.info = self.path = self.source = None
        self._worker: Worker | None = None
        self._control = None
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setValue(5)
        self.epochs.setSuffix(" epochs")
        self.button = QPushButton("Train prior")
        self.button.setToolTip("Train the autoregressive prior over this model's code grids (what samples and "
                               "inpainting draw from) and save it into the checkpoint")
        self.button.clicked.connect(self.toggle)
        self.progress = QLabel()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.epochs, self.button, self.progress):
            lay.addWidget(w)

    def set_model(self, engine, info, path, source) -> None:
        self.cancel()
        self.engine, self.info, self.path, self.source = engine, info, path, source
        ok = engine is not None and source is not None and "code_prior" in engine.capabilities
        self.setEnabled(ok)
        self.progress.setText("")
        if ok:
            self.button.setText("Train prior more" if engine.prior_trained else "Train prior")

    @property
    def running(self) -> bool:
        return self._worker is not None

    def toggle(self) -> None:
        if self.running:
            self.cancel()
            return
        out = self.path if self.path and os.access(self.path, os.W_OK) else None
        if out is None:
            out, _ = QFileDialog.getSaveFileName(self, "Save the model with its prior", "", "Checkpoints (*.safetensors)")
            if not out:
                return
            if not out.endswith(".safetensors"):
                out += ".safetensors"
        self.start(out)

    def start(self, out: str | None) -> None:
        from engines.train import TrainControl

        self._control = TrainControl()
        w = Worker(_train, self.engine, self.source, self.epochs.value(), out, self.info, self._control)
        w.yielded.connect(self._on_progress)
        w.errored.connect(lambda e: self.failed.emit("Prior training failed", str(e) or type(e).__name__))
        w.finished.connect(self._on_finished)
        self._worker, self._out = w, out
        self.button.setText("Cancel")
        self.epochs.setEnabled(False)
        w.start("long")

    def cancel(self) -> None:
        if self._control is not None:
            self._control.cancel()

    def _on_progress(self, p) -> None:
        nats = p.metrics.get("test_nats_per_token", p.metrics.get("nats_per_token"))
        frac = f"{100 * p.fraction:.0f}% " if p.fraction is not None else ""
        loss = f", {nats:.3f} nats/token" if nats is not None else ""
        self.progress.setText(f"prior: {frac}{p.message or p.state}{loss}")
        if p.state in ("finished", "cancelled"):
            self.trained.emit(p.checkpoint or "")

    def _on_finished(self) -> None:
        self._worker = self._control = None
        self.epochs.setEnabled(True)
        self.button.setText("Train prior more" if self.engine is not None and self.engine.prior_trained else "Train prior")
