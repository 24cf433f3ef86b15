"""The Diffusion panel (issue #7): watch a diffusion model sample, step by step.

Reverse tab: choose sampler, steps, η, guidance, class and seed (and how many images: one, or a
grid of seeds), run; every step's x_t and predicted x̂₀ are recorded and cached, and a timeline
scrubs through them side by side, or plays them at a chosen speed. Forward tab: noise an image
of the model's data with q(x_t | x₀) at any t (schedule plotted), then run the reverse process
from that x_t (SDEdit); its trajectory opens in the timeline. All model calls run in workers;
sampling runs through a `LatestRequestRunner` that steps the sampler: a newer run replaces the
one running, and Cancel stops it, between two steps.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QTabWidget,
                               QVBoxLayout)

from engines.data.dataset import tile
from explorer.workers import LatestRequestRunner, run_in_thread
from explorer.panels import Panel
from explorer.widgets.class_box import fill_class_box
from explorer.panels.diffusion import jobs
from explorer.panels.diffusion.forward import ForwardView
from explorer.panels.diffusion.reverse import ReverseView

SAMPLERS = (("dpm", "DPM-Solver++ (2M)"), ("ddim", "DDIM"), ("ddpm", "DDPM (small variance)"),
            ("ddpm-large", "DDPM (large variance)"))
GRID_SIZES = (1, 4, 9, 16, 25)


def _sample(request):
    """The sampling runner's job: (engine, RunRequest, x_start) → the generator `jobs.run`."""
    engine, req, x_start = request
    return jobs.run(engine, req, x_start)


class DiffusionPanel(Panel):
    name = "diffusion"
    title = "Diffusion"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = None
        self.info = None
        self.traj: jobs.Trajectory | None = None
        self._branch_parent: jobs.Trajectory | None = None  # the run a branch is compared with
        self.cache = jobs.TrajectoryCache()
        self.data = None
        self.pca: jobs.DataPCA | None = None
        self.running = False
        self._runner = LatestRequestRunner(_sample, self, interrupt=True)
        self._runner.progress.connect(self._on_progress)
        self._runner.result.connect(self._on_run)
        self._runner.failed.connect(lambda _g, _r, e: self._error("Sampling failed", e))
        self._runner.busy_changed.connect(self._on_busy)
        self._noised = None  # (model-space x_t, t) of the forward tab
        self._data_pending = False
        self._sdedit_when_noised = False
        self._noise_runner = LatestRequestRunner(jobs.noise_job, self)
        self._noise_runner.result.connect(self._on_noised)
        self._noise_runner.failed.connect(lambda _g, _r, e: self._error("Could not noise the image", e))
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self._build()
        ctx.session.model_changed.connect(self._on_model)
        if ctx.session.engine is not None:
            self._on_model(ctx.session.engine, ctx.session.info)

    # ---- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.sampler = QComboBox()
        for key, label in SAMPLERS:
            self.sampler.addItem(label, key)
        self.sampler.currentIndexChanged.connect(self._sync_enabled)
        self.steps = QSpinBox()
        self.steps.setRange(1, jobs.MAX_STEPS)
        self.steps.setValue(20)
        self.steps.setPrefix("steps ")
        self.eta = QDoubleSpinBox()
        self.eta.setRange(0.0, 1.0)
        self.eta.setSingleStep(0.1)
        self.eta.setPrefix("η ")
        self.eta.setToolTip("DDIM stochasticity: 0 = deterministic (probability-flow ODE), 1 = like DDPM")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setPrefix("guidance ")
        self.guidance.setToolTip("Classifier-free guidance scale: 0 unconditional, 1 conditional, >1 stronger")
        self.label = QComboBox()
        self.label.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.label.setToolTip("Class-conditional models: the class to draw (each class in turn fills a grid)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.seed.setPrefix("seed ")
        self.seed.setMaximumWidth(120)
        self.count = QComboBox()
        for n in GRID_SIZES:
            self.count.addItem("1 image" if n == 1 else f"grid of {n}", n)
        self.count.setCurrentIndex(2)
        self.run_btn = QPushButton("Run")
        self.run_btn.setDefault(True)
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        top = QHBoxLayout()
        for w in (self.sampler, self.steps, self.eta, self.guidance, self.label):
            top.addWidget(w)
        top.addStretch(1)
        self.status = QLabel("Open a diffusion model in the library to watch it sample.")
        self.status.setWordWrap(True)
        status_row = QHBoxLayout()  # seed and count here: one row of all would be too wide for 1024 pixels
        status_row.addWidget(self.seed)
        status_row.addWidget(self.count)
        status_row.addWidget(self.run_btn)
        status_row.addWidget(self.cancel_btn)
        status_row.addWidget(self.status, 1)

        self.reverse = ReverseView(self.ctx)
        rv = self.reverse
        # The reverse tab's parts, by name (the panel drives them; tests and screenshots reach them here)
        self.xt_view, self.x0_view, self.xt_caption, self.x0_caption = rv.xt_view, rv.x0_view, rv.xt_caption, rv.x0_caption
        self.original_view, self.branch_view, self.branch_caption = rv.original_view, rv.branch_view, rv.branch_caption
        self.compare, self.timeline, self.play_btn, self.speed = rv.compare, rv.timeline, rv.play_btn, rv.speed
        self.step_label, self.branch_btn = rv.step_label, rv.branch_btn
        self.timeline.valueChanged.connect(self.show_step)
        self.play_btn.toggled.connect(self.set_playing)
        self.speed.currentIndexChanged.connect(lambda _i: self._timer.setInterval(self._interval()))
        self.branch_btn.clicked.connect(self.branch)

        self.forward = ForwardView()
        self.forward.changed.connect(self._request_noise)
        self.forward.random_requested.connect(self._random_image)
        self.forward.sdedit_requested.connect(self.run_sdedit)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.reverse, "Reverse process")
        self.tabs.addTab(self.forward, "Forward process && SDEdit")

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(status_row)
        lay.addWidget(self.tabs, 1)
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        ok = self.engine is not None
        cond = ok and self.engine.config.num_classes > 0
        for w in (self.sampler, self.steps, self.seed, self.count, self.forward):
            w.setEnabled(ok)
        self.run_btn.setEnabled(ok)  # a new run replaces the one in progress
        self.branch_btn.setEnabled(ok and not self.running and self.traj is not None
                                   and self.traj.request.start_t is None and self.timeline.value() < self.traj.steps)
        self.forward.sdedit_btn.setEnabled(ok and not self.running and self.data is not None)
        self.eta.setEnabled(ok and self.sampler.currentData() == "ddim")
        self.guidance.setEnabled(cond)
        self.label.setEnabled(cond)

    def _interval(self) -> int:
        return int(1000 / (self.speed.currentData() or 10))

    # ---- model ----------------------------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        self.cancel()
        self.set_playing(False)
        self.cache.clear()
        self.traj, self.data, self._noised, self.pca = None, None, None, None
        self.reverse.map.set_data(None)
        self._branch_parent = None
        self.compare.setVisible(False)
        self.engine = engine if engine is not None and "trajectory" in engine.capabilities else None
        self.info = info if self.engine is not None else None
        self.xt_view.set_image(None)
        self.x0_view.set_image(None)
        self.timeline.setRange(0, 0)
        self.step_label.setText("")
        self.forward.show_noised(None, None, 0, 1.0)
        self.forward.show_result(None, "reverse process from x_t")
        self.label.clear()
        if self.engine is None:
            self.status.setText("Open a diffusion model in the library to watch it sample."
                                if engine is None else f"The Diffusion panel needs a diffusion model (one that samples step by "
                                                      f"step); this is a {engine.name}.")
            self.forward.set_schedule(None)
            self._sync_enabled()
            return
        cfg = self.engine.config
        self.sampler.setCurrentIndex(max(0, self.sampler.findData(cfg.sampler)))
        self.steps.setValue(cfg.sample_steps)
        self.guidance.setValue(cfg.guidance if cfg.num_classes else 1.0)
        fill_class_box(self.label, cfg.num_classes, info)
        self.forward.set_schedule(self.engine.schedule.alphas_cumprod)
        self.status.setText(f"{self.engine.name} · {self.engine.spec} · T = {self.engine.schedule.T} · "
                            f"{cfg.schedule} schedule · predicts {cfg.target}"
                            + (f" · {cfg.num_classes} classes" if cfg.num_classes else ""))
        self._sync_enabled()
        self._data_pending = True
        run_in_thread(jobs.load_data, self.engine, info, on_result=self._on_data, on_error=self._on_data_error)
        if self.isVisible():
            self.run()

    def _on_data_error(self, exc) -> None:
        self._data_pending = False
        self.forward.show_result(None, f"no data image: {exc}")

    def _on_data(self, result) -> None:
        self._data_pending = False
        ds, pca = result
        if self.engine is None or ds.spec != self.engine.spec:
            return
        self.data, self.pca = ds, pca
        self.reverse.map.set_data(pca.coords)
        if self.traj is not None:
            self.reverse.map.set_paths(pca.paths(self.traj))
            self.reverse.map.set_step(self.timeline.value())
        self.forward.set_count(len(ds))
        self._sync_enabled()
        self._request_noise()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is not None and self.traj is None and not self.running:
            self.run()

    # ---- running ----------------------------------------------------------------------------------------
    def request(self, **over) -> jobs.RunRequest:
        fields = dict(sampler=self.sampler.currentData(), steps=self.steps.value(),
                      eta=self.eta.value() if self.sampler.currentData() == "ddim" else 0.0,
                      guidance=self.guidance.value() if self.guidance.isEnabled() else 1.0,
                      label=int(self.label.currentData() if self.label.currentData() is not None else -1),
                      seed=self.seed.value(), n=self.count.currentData() or 1)
        fields.update(over)
        return jobs.RunRequest(**fields)

    def run(self, req: jobs.RunRequest | None = None, x_start=None) -> None:
        """Sample `req` (default: the controls' settings); a run in progress gives way to it."""
        if self.engine is None:
            return
        req = req or self.request()
        cached = self.cache.get(req)
        if cached is not None:
            if self.running:
                self._runner.cancel()
            self._show_trajectory(cached, "from the cache")
            return
        self.running = True
        self.cancel_btn.setEnabled(True)
        self._sync_enabled()
        self.status.setText(f"sampling {req.n} image{'s' if req.n > 1 else ''} with {req.sampler}, {req.steps} steps…")
        self.ctx.session.set_busy("diffusion", "diffusion sampling")
        self._runner.submit((self.engine, req, x_start))

    def run_sdedit(self) -> None:
        if self.engine is None or self._noised is None:
            return
        x, t, key = self._noised
        label = int(self.label.currentData() if self.label.currentData() is not None else -1)
        if label < 0 and self.engine.config.num_classes and self.data is not None and self.data.labels is not None:
            # "each class in turn" means the image's own class here; a chosen class edits towards it
            own = int(self.data.labels[min(key[0], len(self.data.labels) - 1)])
            label = own if own < self.engine.config.num_classes else -1
        req = self.request(start_t=t, n=1, seed=key[1] + 1, image_key=key, label=label)
        self.run(req, x_start=x)

    def branch(self) -> None:
        """Re-run the trajectory on show with new noise from the step on show onwards."""
        traj = self.traj
        k = self.timeline.value()
        if traj is None or self.running or traj.request.start_t is not None or k >= traj.steps:
            return
        self._branch_parent = traj if traj.request.branch_step is None else (self._branch_parent or traj)
        seed = int(np.random.default_rng().integers(1, 2 ** 31 - 1))
        self.run(dataclasses.replace(traj.request, branch_step=k, branch_seed=seed))

    def cancel(self) -> None:
        """Stop the run in progress between two steps; the trajectory on show stays."""
        if self.running:
            self._runner.cancel()
            self.status.setText("sampling cancelled")

    def _on_progress(self, _gen, _request, value) -> None:
        k, n = value
        self.status.setText(f"sampling… step {k} of {n}")

    def _on_busy(self, busy: bool) -> None:
        if busy:
            return
        self.running = False
        self.cancel_btn.setEnabled(False)
        self.ctx.session.set_busy("diffusion", None)
        self._sync_enabled()

    def _on_run(self, _gen, request, traj: jobs.Trajectory) -> None:
        if request[0] is not self.engine:
            return
        self.cache.put(traj.request, traj)
        self._show_trajectory(traj, f"{traj.seconds:.1f} s")

    def _show_trajectory(self, traj: jobs.Trajectory, how: str) -> None:
        self.traj = traj
        r = traj.request
        what = f"SDEdit from t = {r.start_t}" if r.start_t is not None else f"{r.n} image{'s' if r.n > 1 else ''}"
        self.status.setText(f"{what} · {r.sampler} · {traj.steps} steps · seed {r.seed} ({how}); "
                            "drag the timeline or press Play")
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, traj.steps)
        self.timeline.setValue(traj.steps)
        self.timeline.blockSignals(False)
        self.reverse.map.set_paths(None if self.pca is None else self.pca.paths(traj))
        self.show_step(traj.steps)
        parent = self._branch_parent
        if r.branch_step is not None and parent is not None:
            cols = int(np.ceil(np.sqrt(r.n)))
            self.original_view.set_image(tile(parent.result, cols, border=False))
            self.branch_view.set_image(tile(traj.result, cols, border=False))
            self.branch_caption.setText(f"branch from step {r.branch_step + 1}")
            self.status.setText(self.status.text().split(" (")[0] + f" — branched at step {r.branch_step + 1} "
                                "with new noise; the original result is beside it")
        self.compare.setVisible(r.branch_step is not None and parent is not None)
        if r.start_t is not None:
            self.forward.show_result(traj.result[0], f"reverse process from t = {r.start_t} ({r.sampler}, {traj.steps} steps)")

    # ---- timeline -----------------------------------------------------------------------------------------
    def show_step(self, k: int) -> None:
        traj = self.traj
        if traj is None:
            return
        self._sync_enabled()
        k = max(0, min(k, traj.steps))
        self.reverse.map.set_step(k)
        cols = int(np.ceil(np.sqrt(traj.request.n)))
        self.xt_view.set_image(tile(traj.x_t[k], cols, border=False))
        self.x0_view.set_image(tile(traj.x0[k], cols, border=False))
        if k < traj.steps:
            t, a = traj.t[k], traj.abar[k]
            self.xt_caption.setText(f"x_t, the sampler's state at t = {t}")
            self.x0_caption.setText("x̂₀, the model's guess of the clean image from x_t")
            self.step_label.setText(f"step {k + 1} of {traj.steps} · t = {t} · ᾱ_t = {a:.4f} · SNR = {a / max(1 - a, 1e-12):.3g}")
        else:
            self.xt_caption.setText("result")
            self.x0_caption.setText("result")
            self.step_label.setText(f"done: {traj.steps} steps")

    def set_playing(self, on: bool) -> None:
        if on and self.traj is None:
            on = False
        if self.play_btn.isChecked() != on:
            self.play_btn.setChecked(on)
            return
        self.play_btn.setText("Pause" if on else "Play")
        if on:
            if self.timeline.value() >= self.timeline.maximum():
                self.timeline.setValue(0)
            self._timer.start(self._interval())
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.timeline.value() >= self.timeline.maximum():
            self.set_playing(False)
            return
        self.timeline.setValue(self.timeline.value() + 1)

    # ---- forward process ----------------------------------------------------------------------------------
    def _image(self) -> np.ndarray | None:
        if self.data is None or not len(self.data):
            return None
        return self.data.images[min(self.forward.index.value(), len(self.data) - 1)]

    def _request_noise(self) -> None:
        img = self._image()
        if self.engine is None or img is None:
            return
        self._noise_runner.submit((self.engine, img, self.forward.t, self.forward.noise_seed.value()))

    def _on_noised(self, _gen, request, value) -> None:
        engine, img, t, seed = request
        if engine is not self.engine:
            return
        x, shown, abar = value
        self._noised = (x, t, (self.forward.index.value(), seed, t))
        self.forward.show_noised(img, shown, t, abar)
        if self._sdedit_when_noised and self._noise_runner.is_current(_gen):
            self._sdedit_when_noised = False
            self.run_sdedit()

    def _random_image(self) -> None:
        if self.data is not None and len(self.data):
            self.forward.index.setValue(int(np.random.default_rng().integers(len(self.data))))

    # ---- misc ---------------------------------------------------------------------------------------------
    def _error(self, title: str, exc) -> None:
        self.status.setText(f"{title}: {exc}")
        self.ctx.session.report(exc, title)

    def ready_for_screenshot(self) -> bool:
        return (not self.running and not self._data_pending and not self._noise_runner.busy
                and not self._sdedit_when_noised and (self.engine is None or self.traj is not None))

    def prepare_screenshot(self, view: str = "reverse", step: int | None = None, t: int = 500, image: int = 0,
                           **_) -> None:
        """view 'reverse': the timeline at `step` (default half-way); 'forward': data image
        `image` noised to `t` and denoised from there."""
        if view == "forward":
            self.tabs.setCurrentIndex(1)
            if self.data is not None:
                self._sdedit_when_noised = True
                self.forward.index.setValue(image)
                self.forward.t_slider.setValue(t)
                self._request_noise()
            return
        if self.traj is not None:
            self.timeline.setValue(self.traj.steps // 2 if step is None else step)

    def shutdown(self) -> None:
        self._timer.stop()
        self.cancel()
