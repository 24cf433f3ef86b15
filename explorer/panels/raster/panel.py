"""The Pixels panel: a PixelCNN draws its images one pixel at a time in raster order.

Sample (temperature, class, seed, grid size) or Complete (keep the top half of data images, draw
the bottom several times: "what the model believes comes next", each row ending with the
original); the run records evenly spaced pictures of what is drawn so far (pixels not yet drawn
tinted blue) and the timeline scrubs back and forth through them or plays them. Runs happen in a
worker (`jobs.run`) through a `LatestRequestRunner`: a newer run replaces the one running, and
Cancel stops it between two pixels.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox,
                               QVBoxLayout)

from engines.data.dataset import tile
from explorer.panels import Panel
from explorer.panels.raster import jobs
from explorer.widgets import png_export
from explorer.widgets.class_box import fill_class_box
from explorer.widgets.image_grid import ImageGrid
from explorer.workers import LatestRequestRunner, run_in_thread

COUNTS = (4, 9, 16)  # samples on a grid
IMAGES = (1, 2, 4)  # …or data images to complete, one per row (same index in the combo)
NO_MODEL = "Open a PixelCNN in the library to watch it draw pixel by pixel."


def _run(request):
    engine, req, images, labels = request
    return jobs.run(engine, req, images, labels)


class RasterPanel(Panel):
    name = "raster"
    title = "Pixels"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = self.info = self.data = self.result = None
        self.running = False
        self._frame_after_run = 1.0  # where the timeline stands when a run arrives (0 … 1)
        self._runner = LatestRequestRunner(_run, self, interrupt=True)
        self._runner.progress.connect(self._on_progress)
        self._runner.result.connect(self._on_run)
        self._runner.failed.connect(lambda _g, _r, e: self._stopped(f"the run failed: {e}"))
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._advance)
        self._build()
        ctx.session.model_changed.connect(self._on_model)
        if ctx.session.engine is not None:
            self._on_model(ctx.session.engine, ctx.session.info)

    def _build(self) -> None:
        self.mode = QComboBox()
        self.mode.addItem("Sample", "sample")
        self.mode.addItem("Complete the top half", "complete")
        self.mode.currentIndexChanged.connect(self._sync_enabled)
        self.count = QComboBox()
        for n in COUNTS:
            self.count.addItem(f"grid of {n}", n)
        self.count.setCurrentIndex(1)
        self.count.setToolTip("Sample: images drawn at once. Complete: data images, one per row")
        self.per_image = QSpinBox()
        self.per_image.setRange(1, 8)
        self.per_image.setValue(4)
        self.per_image.setSuffix(" completions")
        self.first = QSpinBox()
        self.first.setRange(0, 0)
        self.first.setPrefix("from image ")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setPrefix("T ")
        self.temperature.setToolTip("Sampling temperature: divides the logits (0 takes the most likely value)")
        self.label = QComboBox()
        self.label.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.seed = QSpinBox()
        self.seed.setRange(0, 999_999)  # a 2³¹ range made the box wider than every other control
        self.seed.setPrefix("seed ")
        self.run_btn = QPushButton("Run")
        self.run_btn.setDefault(True)
        self.run_btn.clicked.connect(lambda: self.run())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        top = QHBoxLayout()
        for w in (self.mode, self.count, self.per_image, self.first, self.temperature, self.label, self.seed,
                  self.run_btn, self.cancel_btn):
            top.addWidget(w)
        top.addStretch(1)
        self.status = QLabel(NO_MODEL)
        self.status.setWordWrap(True)
        self.view = ImageGrid(placeholder="the images as they are drawn")
        png_export.install(self.view, lambda: None if self.view.array is None else png_export.Content([self.view.array]),
                           "pixelcnn", self.ctx)
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.play_btn.toggled.connect(self.set_playing)
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.valueChanged.connect(self.show_frame)
        self.step_label = QLabel("")
        self.step_label.setMinimumWidth(220)
        tl = QHBoxLayout()
        tl.addWidget(self.play_btn)
        tl.addWidget(self.timeline, 1)
        tl.addWidget(self.step_label)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.view, 1)
        lay.addLayout(tl)
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        ok = self.engine is not None
        complete = self.mode.currentData() == "complete"
        for w in (self.mode, self.count, self.temperature, self.seed, self.run_btn):
            w.setEnabled(ok)
        self.per_image.setVisible(complete)
        self.first.setVisible(complete)
        self.per_image.setEnabled(ok)
        self.first.setEnabled(ok and self.data is not None)
        self.label.setEnabled(ok and self.engine.config.num_classes > 0)
        for i, (n, m) in enumerate(zip(COUNTS, IMAGES)):
            self.count.setItemText(i, (f"{m} image{'s' if m > 1 else ''}") if complete else f"grid of {n}")

    # ---- model ------------------------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        self.cancel()
        self.set_playing(False)
        self.result = self.data = None
        self.view.set_image(None)
        self.timeline.setRange(0, 0)
        self.step_label.setText("")
        self.label.clear()
        self.engine = engine if engine is not None and "raster" in engine.capabilities else None
        self.info = info if self.engine is not None else None
        if self.engine is None:
            self.status.setText(NO_MODEL if engine is None else
                                f"This panel shows models that draw pixel by pixel (PixelCNN); this is a {engine.name}.")
            self._sync_enabled()
            return
        cfg = self.engine.config
        fill_class_box(self.label, cfg.num_classes, info,
                       "Sample: one class after another. Complete: each image as its own class")
        self.temperature.setValue(cfg.temperature)
        self.status.setText(f"pixelcnn · {self.engine.spec} · {cfg.layers} gated layers × {cfg.hidden} channels"
                            + (f" · {cfg.num_classes} classes" if cfg.num_classes else "")
                            + " · Run draws the images one pixel at a time")
        self._sync_enabled()
        if info is not None:
            run_in_thread(jobs.load_data, self.engine, info, on_result=self._on_data,
                          on_error=lambda e: self.status.setText(f"no data images to complete: {e}"))
        if self.isVisible():
            self.run()

    def _on_data(self, ds) -> None:
        if self.engine is None or ds.spec != self.engine.spec:
            return
        self.data = ds
        self.first.setRange(0, max(0, len(ds) - 1))
        self._sync_enabled()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is not None and self.result is None and not self.running:
            self.run()

    # ---- screenshots (explorer.screenshot) ----------------------------------------------------------
    def ready_for_screenshot(self) -> bool:
        return self.engine is None or (not self.running and self.result is not None
                                       and (self.mode.currentData() == "sample" or self.data is not None))

    def prepare_screenshot(self, mode: str = "sample", count: int = 1, per_image: int = 4, first: int = 0,
                           seed: int = 0, frame: float = 1.0) -> None:
        """Run with these settings and show the picture at `frame` (0 … 1 of the run)."""
        self._frame_after_run = frame
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))
        self.count.setCurrentIndex(count)
        self.per_image.setValue(per_image)
        self.first.setValue(first)
        self.seed.setValue(seed)
        if mode == "complete" and self.data is None:
            return
        self.result = None
        self.run()

    # ---- running ----------------------------------------------------------------------------------
    def request(self) -> jobs.RunRequest:
        complete = self.mode.currentData() == "complete"
        i = max(0, self.count.currentIndex())
        return jobs.RunRequest(mode=self.mode.currentData(), n=IMAGES[i] if complete else COUNTS[i],
                               per_image=self.per_image.value(), temperature=self.temperature.value(),
                               label=int(self.label.currentData() if self.label.currentData() is not None else -1),
                               seed=self.seed.value(), first_image=self.first.value())

    def run(self, req: jobs.RunRequest | None = None) -> None:
        if self.engine is None:
            return
        req = req or self.request()
        images = labels = None
        if req.mode == "complete":
            if self.data is None:
                self.status.setText("The model's data is not loaded yet: no images to complete.")
                return
            images = self.data.images[req.first_image:req.first_image + req.n]
            if self.data.labels is not None:
                labels = self.data.labels[req.first_image:req.first_image + req.n]
        self.set_playing(False)
        self.running = True
        self.cancel_btn.setEnabled(True)
        self.status.setText("drawing…")
        self.ctx.session.set_busy("raster", "PixelCNN sampling")
        self._runner.submit((self.engine, req, images, labels))

    def cancel(self) -> None:
        if self.running:
            self._runner.cancel()
            self._stopped("cancelled")

    def _stopped(self, message: str) -> None:
        self.running = False
        self.cancel_btn.setEnabled(False)
        self.ctx.session.set_busy("raster", None)
        self.status.setText(message)

    def _on_progress(self, _gen, _req, value) -> None:
        done, total = value
        if done % 8 == 0 or done == total:
            self.status.setText(f"drawing pixel {done} of {total}…")

    def _on_run(self, _gen, _req, result: jobs.Run) -> None:
        self._stopped(f"{result.pixels} pixels drawn in {result.seconds:.1f} s"
                      + (" · each row: completions of the top half, then the original" if result.originals is not None else ""))
        self.result = result
        last = len(result.frames) - 1
        k = round(last * min(1.0, max(0.0, self._frame_after_run)))
        self._frame_after_run = 1.0
        self.timeline.setRange(0, last)
        self.timeline.setValue(k)
        self.show_frame(k)

    # ---- timeline ---------------------------------------------------------------------------------
    def show_frame(self, k: int) -> None:
        r = self.result
        if r is None or not r.frames:
            return
        k = max(0, min(int(k), len(r.frames) - 1))
        frame = r.frames[k]
        if r.originals is not None:
            self.view.set_image(tile(jobs.completion_rows(r, frame), r.cols + 1))
        else:
            self.view.set_image(tile(frame, r.cols))
        pixels = round(r.pixels * k / max(1, len(r.frames) - 1))
        self.step_label.setText(f"{pixels} / {r.pixels} pixels drawn")

    def set_playing(self, on: bool) -> None:
        if on and (self.result is None or not self.result.frames):
            on = False
        if self.play_btn.isChecked() != on:
            self.play_btn.setChecked(on)
            return
        if on:
            if self.timeline.value() >= self.timeline.maximum():
                self.timeline.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.timeline.value() >= self.timeline.maximum():
            self.set_playing(False)
            return
        self.timeline.setValue(self.timeline.value() + 1)

    def shutdown(self) -> None:
        self._timer.stop()
        self._runner.cancel()
