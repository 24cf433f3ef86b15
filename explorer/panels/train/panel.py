"""The Train panel: data set, engine and settings on the left; run controls, live loss curves,
real images next to fixed-seed samples (or reconstructions) on the right.

Training runs in a worker (`train_jobs.training_job`), which builds the engine and takes every
step off the GUI thread; Progress arrives here about ten times a second. Every few seconds the
samples are redrawn by another worker through a LatestRequestRunner (the engine's lock makes
sampling during training safe). A finished or cancelled run's checkpoint is announced with
`checkpoint_saved`, and the library lists it.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QSplitter, QVBoxLayout, QWidget)

from explorer.widgets.scroll import vertical_scroll
from explorer.widgets import png_export
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.loss_plot import LossPlot
from explorer.workers import LatestRequestRunner, Worker, run_in_thread
from explorer.panels import Panel
from explorer.panels.train.data_box import DataBox
from explorer.panels.train.forms import ConfigForm
from explorer.panels.train.run_controls import RunControls
from explorer.panels.train.jobs import FIRST_RUN, Started, fixed_images, render_preview, run_name, training_job, unique_path
from explorer.panels.train.timeline import SampleTimeline

REFRESH_MS = 3000
TERMINAL = ("finished", "cancelled", "failed")


class TrainPanel(Panel):
    name = "train"
    title = "Train"
    state_changed = Signal(str)  # idle | starting | running | pausing | paused | stopping
    progress = Signal(object)  # every engines.train.Progress
    training_finished = Signal(object)  # the last Progress (finished, cancelled or failed)
    checkpoint_saved = Signal(str)

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.state = "idle"
        self._closing = False
        self._closed_form = False
        self.worker: Worker | None = None
        self.control = None
        self.engine = None  # the engine being trained (built on the worker thread)
        self.last = None  # last Progress
        self.resume = None  # engines.checkpoint.Loaded when continuing a checkpoint
        self._run_data = None
        self._fixed = None
        self._sampler = LatestRequestRunner(render_preview, self)
        self._sampler.result.connect(self._on_preview)
        self._sampler.failed.connect(lambda g, r, e: self.sample_caption.setText(f"Could not draw samples: {e}"))
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh_preview)
        self._build()
        self._restore()
        self._set_state("idle")

    # ---- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        import engines

        st = self.ctx.settings
        self.data_box = DataBox(user_paths=st.user_data)
        self.data_box.start_dir = st.last_data_dir
        self.data_box.dataset_changed.connect(self._on_dataset)
        self.data_box.user_data_added.connect(self._remember_data)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setStyleSheet("QLabel { background: #fff4d6; padding: 6px; }")
        self.new_model_btn = QPushButton("Start a new model instead")
        self.new_model_btn.clicked.connect(self.leave_resume)

        model = QGroupBox("Model")
        self.engine_combo = QComboBox()
        for n in engines.names():
            self.engine_combo.addItem(n.upper() if len(n) <= 3 else n, n)
        self.engine_combo.setToolTip("The model family to train")
        self.form = ConfigForm()
        ml = QVBoxLayout(model)
        top = QFormLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addRow("Engine", self.engine_combo)
        ml.addLayout(top)
        ml.addWidget(self.form)
        self.engine_combo.currentIndexChanged.connect(self._on_engine)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 6, 0)
        ll.addWidget(self.banner)
        ll.addWidget(self.new_model_btn)
        ll.addWidget(self.data_box)
        ll.addWidget(model)
        ll.addStretch(1)
        scroll = vertical_scroll(left, min_width=290, max_width=400)

        self.controls = RunControls()
        c = self.controls
        # Short names for the controls the panel and its tests use.
        self.epochs, self.epochs_label, self.seed, self.save_as = c.epochs, c.epochs_label, c.seed, c.save_as
        self.device_combo, self.bar, self.status = c.device, c.bar, c.status
        self.start_btn, self.pause_btn, self.cancel_btn = c.start_btn, c.pause_btn, c.cancel_btn
        c.device.currentIndexChanged.connect(lambda _i: self.ctx.session.set_device(c.device.currentData()))
        self.ctx.session.device_changed.connect(c.show_device)
        c.start_btn.clicked.connect(self.start)
        c.pause_btn.clicked.connect(self.toggle_pause)
        c.cancel_btn.clicked.connect(self.cancel)

        self.loss_plot = LossPlot()
        # Engines that name `health_terms` (GAN: D accuracies, diversity) get them on a second,
        # linear plot: they live in [0, 1] and mean something else than a loss.
        self.health_plot = LossPlot()
        self.health_plot.log_box.setChecked(False)
        self.health_plot.plot.getPlotItem().setLabel("left", "share / ratio")
        self.health_plot.hide()
        self.timeline = SampleTimeline()
        self.samples = ImageGrid(placeholder="Samples from fixed seeds appear here every few seconds while a model trains.")
        png_export.install(self.samples, lambda: None if self.samples.array is None else
                           png_export.Content([self.samples.array]), "samples", self.ctx)
        self.preview_mode = QComboBox()
        self.preview_mode.addItem("Samples", "samples")
        self.preview_mode.addItem("Reconstructions", "reconstructions")
        self.preview_mode.addItem("Samples over time", "timeline")
        self.preview_mode.setToolTip("Show samples from fixed seeds, or test images next to their reconstructions")
        self.preview_mode.currentIndexChanged.connect(self.refresh_preview)
        self.sample_caption = QLabel("")
        self.sample_caption.setWordWrap(True)
        real = QGroupBox("Training data")
        rl = QVBoxLayout(real)
        rl.addWidget(self.data_box.preview, 1)
        rl.addWidget(self.data_box.summary)
        model_box = QGroupBox("What the model makes")
        mbl = QVBoxLayout(model_box)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.preview_mode)
        mode_row.addStretch(1)
        mbl.addLayout(mode_row)
        mbl.addWidget(self.samples, 1)
        mbl.addWidget(self.sample_caption)
        images = QWidget()
        il = QHBoxLayout(images)
        il.setContentsMargins(0, 0, 0, 0)
        il.addWidget(real, 1)
        il.addWidget(model_box, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.loss_plot)
        split.addWidget(self.health_plot)
        split.addWidget(images)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 5)
        split.setChildrenCollapsible(False)

        right = QVBoxLayout()
        right.addWidget(self.controls)
        right.addWidget(split, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addLayout(right, 1)
        self.data_box.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def _restore(self) -> None:
        t = dict(self.ctx.settings.train)
        i = self.engine_combo.findData(t.get("engine", "vae"))
        self.engine_combo.setCurrentIndex(max(0, i))
        self._on_engine()
        self.epochs.setValue(float(t.get("epochs", FIRST_RUN["epochs"])))
        self.seed.setValue(int(t.get("seed", 0)))
        self.preview_mode.setCurrentIndex(max(0, self.preview_mode.findData(t.get("preview", "samples"))))
        self.loss_plot.log_box.setChecked(bool(t.get("log_scale", True)))
        self.controls.show_device(str(self.ctx.session.device))
        self.leave_resume(reload=False)
        if "data" in t:
            self.data_box.select(t["data"], t.get("size"), t.get("channels"))
        else:
            self.data_box.select(FIRST_RUN["data"], FIRST_RUN["size"], None)

    def save_state(self) -> None:
        source, size, channels = self.data_box.current_request()
        t = dict(self.ctx.settings.train)
        configs = dict(t.get("config", {}))
        if self.resume is None:
            configs[self.engine_combo.currentData()] = self.form.changed_values()
        t.update(engine=self.engine_combo.currentData(), config=configs, epochs=self.epochs.value(),
                 seed=self.seed.value(), preview=self.preview_mode.currentData(),
                 log_scale=self.loss_plot.log_box.isChecked())
        if source is not None and self.resume is None:
            t.update(data=source, size=size, channels=channels)
        self.ctx.settings.train = t

    # ---- choices ------------------------------------------------------------------------------
    def _on_engine(self, *_):
        import engines

        name = self.engine_combo.currentData()
        self.form.set_config_class(engines.engine_class(name).Config)
        self.form.set_values(self.ctx.settings.train.get("config", {}).get(name, {}))
        closed = self._closed_form = engines.engine_class(name).closed_form
        self._update_buttons()
        self.epochs.setToolTip("Closed-form models are fitted in one go" if closed else "Passes over the training split")

    def _on_dataset(self, ds) -> None:
        self._update_buttons()

    def _remember_data(self, path: str) -> None:
        self.ctx.settings.remember("user_data", path)
        self.ctx.settings.last_data_dir = os.path.dirname(path.rstrip("/\\"))

    # ---- resume -------------------------------------------------------------------------------
    def resume_from(self, path: str) -> None:
        """Continue training a checkpoint: loads it (with optimizer state) in a worker."""
        from engines import checkpoint as ckpt

        if self.state != "idle":
            self.ctx.message("Training is running; cancel it before resuming another model.")
            return
        self.status.setText(f"Loading {os.path.basename(path)} to continue training…")
        run_in_thread(ckpt.load, path, str(self.ctx.session.device), True,
                      on_result=self._enter_resume, on_error=lambda e: self.ctx.session.report(e, "Cannot resume"))

    def _enter_resume(self, loaded) -> None:
        from engines.data import BUILTIN

        self.resume = loaded
        info = loaded.info
        self.engine_combo.setCurrentIndex(max(0, self.engine_combo.findData(info.engine)))
        self.form.set_values(info.config)
        name = os.path.splitext(os.path.basename(info.path))[0]
        epoch = info.train_state.get("step", 0)
        self.banner.setText(f"Continuing <b>{name}</b> from step {epoch:,}. "
                            f"Start trains it for more epochs and updates its checkpoint; "
                            f"its settings stay as they were.")
        self.banner.show()
        self.new_model_btn.show()
        self.save_as.setText(name)
        # The run's own seed: batch order and noise then continue exactly as if it had not stopped.
        self.seed.setValue(int(info.train_state.get("seed", loaded.engine.seed)))
        self._update_buttons()
        data = info.data.get("name", "")
        source = data if data in BUILTIN else info.data.get("source", data)
        self.data_box.select(source, info.spec.height, info.spec.channels)
        self.status.setText(f"Ready to continue {name}.")

    def leave_resume(self, reload: bool = True) -> None:
        self.resume = None
        self.banner.hide()
        self.new_model_btn.hide()
        self.save_as.clear()
        self._update_buttons()
        if reload:
            self._on_engine()

    # ---- run control -----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a run with the current choices; False (with a message) when it cannot."""
        from engines.train import TrainControl, TrainOptions

        if self.state != "idle":
            return False
        ds = self.data_box.dataset
        if ds is None:
            self._refuse(self.data_box.last_error or "The data set is still loading.")
            return False
        more = None
        if self.resume is not None:
            engine = self.resume.engine
            if engine.spec != ds.spec:
                self._refuse(f"The model works on {engine.spec} images but the data set is {ds.spec}.")
                return False
            src = self.resume.info.path
            out = src if not self._is_bundled(src) else unique_path(self.ctx.settings.runs_folder, os.path.basename(src))
            make = lambda: engine  # noqa: E731
            more = self.epochs.value()
        else:
            import engines
            from engines import config as cfgmod

            name = self.engine_combo.currentData()
            cls = engines.engine_class(name)
            from engines import bounds

            try:
                cfg = self.form.config()
                bounds.check_training(cfg, ds.spec, len(ds.train_idx), self.ctx.session.device)
            except cfgmod.ConfigError as e:
                self._refuse(str(e))
                return False
            device, seed = self.ctx.session.device, self.seed.value()
            make = lambda: cls(ds.spec, cfg, device=device, seed=seed)  # noqa: E731
            folder = self.ctx.settings.runs_folder
            out = unique_path(folder, self.save_as.text().strip() or run_name(name, ds.name, ds.spec.height))
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
        except OSError as e:
            self._refuse(f"Cannot create the runs folder: {e}")
            return False
        options = TrainOptions(epochs=self.epochs.value(), seed=self.seed.value(), out=out,
                               checkpoint_every_s=60.0, report_every_s=0.1)
        self.control = TrainControl()
        self._run_data = ds
        self._fixed = fixed_images(ds)
        self.last = None
        self.loss_plot.clear()
        self.health_plot.clear()
        self.timeline.clear()
        self.loss_plot.set_caption(f"Training → {os.path.basename(out)}")
        self.bar.setValue(0)
        self.worker = Worker(training_job, make, ds, options, self.control, more)
        self.worker.yielded.connect(self._on_yield)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_worker_done)
        self._set_state("starting")
        self.status.setText("Building the model…")
        self.worker.start("long")
        return True

    def toggle_pause(self) -> None:
        if self.control is None:
            return
        if self.state == "running":
            self.control.pause()
            self._set_state("pausing")
        elif self.state in ("paused", "pausing"):
            self.control.resume()
            self._set_state("running")

    def cancel(self) -> None:
        if self.control is not None and self.state not in ("idle", "stopping"):
            self.control.cancel()
            self._set_state("stopping")
            self.status.setText("Stopping; saving a checkpoint…")

    def shutdown(self) -> None:
        self._closing = True
        self._timer.stop()
        if self.control is not None:
            self.control.cancel()

    @property
    def running(self) -> bool:
        return self.state != "idle"

    def _refuse(self, why: str) -> None:
        self.status.setText(why)
        self.ctx.message(why)

    @staticmethod
    def _is_bundled(path: str) -> bool:
        from explorer.catalog import bundled_dir

        return os.path.realpath(os.path.dirname(path)) == os.path.realpath(bundled_dir())

    # ---- progress from the worker ---------------------------------------------------------------
    def _on_yield(self, item) -> None:
        if isinstance(item, Started):
            self.engine = item.engine
            self.health_plot.setVisible(bool(getattr(self.engine, "health_terms", ())))
            self.health_plot.set_caption(getattr(self.engine, "health_caption", ""))
            if self.state == "starting":
                self._set_state("running")
            self.refresh_preview()
            self._timer.start()
            return
        p = item
        self.last = p
        self.progress.emit(p)
        self.controls.show_progress(p)
        if p.state == "running":
            if p.metrics:
                self._plot(p.step, p.metrics)
            if self.state == "paused":
                self._set_state("running")
            pct = f" {100 * p.fraction:.0f}%" if p.fraction is not None else ""
            self.ctx.session.set_busy("train", f"training{pct}")
        elif p.state == "paused":
            self._set_state("paused")
            self.ctx.session.set_busy("train", "training paused")
        elif p.state in TERMINAL:
            self._timer.stop()
            # A run shorter than one report interval yields no "running" point: plot the final one.
            if p.metrics and self.loss_plot.last_step() != p.step:
                self._plot(p.step, p.metrics)
            self.refresh_preview()
            if p.state == "failed":
                self.ctx.session.error.emit("Training stopped", p.message)
            if p.checkpoint:
                self.checkpoint_saved.emit(p.checkpoint)
                self.ctx.message(f"{p.state.capitalize()}: saved {os.path.basename(p.checkpoint)}", 8000)
            self.training_finished.emit(p)

    def _on_error(self, exc) -> None:
        self.status.setText(f"Training failed: {exc}")
        self.ctx.session.report(exc, "Training failed")

    def _on_worker_done(self) -> None:
        self._timer.stop()
        self.worker = None
        self.control = None
        self.ctx.session.set_busy("train", None)
        if self.resume is not None and self.last is not None:
            self.banner.setText(f"Continuing <b>{os.path.basename(self.resume.info.path)}</b>, now at step "
                                f"{self.last.step:,}. Start trains it further.")
        self._set_state("idle")

    def _plot(self, step, metrics) -> None:
        health = set(getattr(self.engine, "health_terms", ()))
        self.loss_plot.add(step, {k: v for k, v in metrics.items() if k not in health})
        if health:
            self.health_plot.add(step, {k: v for k, v in metrics.items() if k in health})

    # ---- preview -----------------------------------------------------------------------------
    def refresh_preview(self, *_) -> None:
        """Redraw the samples/reconstructions of the engine being trained (in a worker)."""
        if self.engine is not None and not self._closing:
            mode = self.preview_mode.currentData()
            # The timeline is made of sample grids: every refresh adds a row to it.
            self._sampler.submit((self.engine, "samples" if mode == "timeline" else mode, self._fixed))

    def _on_preview(self, generation, request, value) -> None:
        grid, caption = value
        engine, mode, _ = request
        if grid is not None and mode == "samples":
            self.timeline.add(engine.step, grid, engine.spec.height)
        if self.preview_mode.currentData() == "timeline" and mode == "samples":
            grid, caption = self.timeline.image(), self.timeline.caption()
        if grid is not None:
            self.samples.set_image(grid)
        self.sample_caption.setText(caption)

    # ---- state -----------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_buttons()
        self.state_changed.emit(state)

    def _update_buttons(self) -> None:
        idle = self.state == "idle"
        resuming = self.resume is not None
        self.controls.set_state(self.state, self.data_box.dataset is not None, self._closed_form, resuming)
        self.data_box.setEnabled(idle)
        self.engine_combo.setEnabled(idle and not resuming)
        self.form.setEnabled(idle and not resuming)
        self.new_model_btn.setEnabled(idle)
