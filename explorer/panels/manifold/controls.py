"""The Manifold panel's side form: data, projection (latent axes | PCA | UMAP | plane through three
points), colouring, what the map shows (scatter | atlas), what the mouse does, and the path tools.

Widgets only: the panel connects their signals and reads their values."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from engines.latent.projection import METRICS

from explorer.panels.manifold.groups import GroupsBox

PROJECTIONS = (("Latent axes", "axes"), ("PCA", "pca"), ("UMAP", "umap"), ("Plane through 3 points", "points"))
MOUSE_MODES = (("Scrub", "scrub", "Drag to move the cursor; click a point to go to it"),
               ("Pick", "pick", "Click to add path points (data points or free positions)"),
               ("Box", "box", "Drag a rectangle to select points"),
               ("Lasso", "lasso", "Draw around points to select them"))


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #666;")
    return label


def _form() -> QFormLayout:
    f = QFormLayout()
    f.setContentsMargins(0, 0, 0, 0)
    f.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    f.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow side column: labels above their fields
    return f


class MapControls(QWidget):
    projection_changed = Signal(str)
    axes_changed = Signal()
    umap_run = Signal()
    umap_cancel = Signal()
    plane_from_points = Signal()
    colour_changed = Signal()
    view_changed = Signal()  # scatter/atlas and the atlas settings
    atlas_fit_view = Signal()
    mouse_mode_changed = Signal(str)
    selection_to_mean = Signal()
    selection_clear = Signal()
    path_add_cursor = Signal()
    path_clear = Signal()
    path_changed = Signal()  # method or steps
    path_play = Signal(bool)
    data_choice = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 6, 0)
        lay.addWidget(self._data_box())
        lay.addWidget(self._map_box())
        lay.addWidget(self._show_box())
        lay.addWidget(self._mouse_box())
        lay.addWidget(self._path_box())
        lay.addStretch(1)

    # ---- data ------------------------------------------------------------------------------------------
    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Data")
        self.data_combo = QComboBox()
        self.data_combo.addItem("The model's training data", "")
        from engines.data import BUILTIN

        for name in BUILTIN:
            self.data_combo.addItem(f"Built-in: {name}", name)
        from engines.data.public import PUBLIC, choice_label

        for name in PUBLIC:  # a set not downloaded yet is downloaded when chosen (status bar: Cancel)
            self.data_combo.addItem(f"Public: {choice_label(name)}", name)
        self.data_combo.addItem("Other file or folder…", "?")
        # Long entries ("Public: fashion-mnist (31 MB download)") must not widen the column: the
        # box keeps a fixed width and the list that drops down shows them whole.
        self.data_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.data_combo.setMinimumContentsLength(16)
        self.data_combo.view().setMinimumWidth(300)
        self.data_combo.setToolTip("Which images are encoded and drawn on the map")
        self.data_combo.activated.connect(lambda _i: self.data_choice.emit(self.data_combo.currentData()))
        self.data_status = _hint("")
        self.data_bar = QProgressBar()
        self.data_bar.setRange(0, 1000)
        self.data_bar.setTextVisible(False)
        self.data_bar.setMaximumHeight(8)
        self.data_bar.hide()
        v = QVBoxLayout(box)
        v.addWidget(self.data_combo)
        v.addWidget(self.data_bar)
        v.addWidget(self.data_status)
        return box

    # ---- projection + colour --------------------------------------------------------------------------
    def _map_box(self) -> QGroupBox:
        box = QGroupBox("Map")
        self.projection = QComboBox()
        for title, key in PROJECTIONS:
            self.projection.addItem(title, key)
        self.projection.setToolTip("How the latents are laid out in two dimensions")
        self.projection.currentIndexChanged.connect(self._on_projection)
        self.pages: list[QWidget] = []  # one per projection; only the chosen one is shown

        axes = QWidget()
        af = _form()
        self.axis_i, self.axis_j = QSpinBox(), QSpinBox()
        for s, tip in ((self.axis_i, "Latent coordinate along the map's x axis"),
                       (self.axis_j, "Latent coordinate along the map's y axis")):
            s.setPrefix("z")
            s.setToolTip(tip)
            s.valueChanged.connect(lambda _v: self.axes_changed.emit())
        self.axis_j.setValue(1)
        row = QHBoxLayout()
        row.addWidget(self.axis_i)
        row.addWidget(QLabel("vs"))
        row.addWidget(self.axis_j)
        af.addRow("x / y", row)
        self.axes_hint = _hint("Exact: the other coordinates stay at the data mean.")
        af.addRow(self.axes_hint)
        axes.setLayout(af)

        pca = QWidget()
        pf = _form()
        pf.addRow(_hint("The top two principal axes of the encoded data, in standard deviations. Exact."))
        pca.setLayout(pf)

        umap = QWidget()
        uf = _form()
        self.umap_neighbors = QSpinBox()
        self.umap_neighbors.setRange(2, 200)
        self.umap_neighbors.setValue(15)
        self.umap_neighbors.setToolTip("Small: local detail; large: global structure")
        self.umap_min_dist = QDoubleSpinBox()
        self.umap_min_dist.setRange(0.0, 1.0)
        self.umap_min_dist.setSingleStep(0.05)
        self.umap_min_dist.setValue(0.1)
        self.umap_min_dist.setToolTip("How tightly points may pack on the map")
        self.umap_metric = QComboBox()
        self.umap_metric.addItems(METRICS)
        self.umap_run_btn = QPushButton("Run")
        self.umap_run_btn.setToolTip("Compute the UMAP map in the background (cached per model, data and settings)")
        self.umap_cancel_btn = QPushButton("Cancel")
        self.umap_cancel_btn.setEnabled(False)
        self.umap_run_btn.clicked.connect(self.umap_run)
        self.umap_cancel_btn.clicked.connect(self.umap_cancel)
        self.umap_bar = QProgressBar()
        self.umap_bar.setRange(0, 1000)
        self.umap_bar.setTextVisible(False)
        self.umap_bar.setMaximumHeight(10)
        self.umap_status = _hint("Set the parameters, then Run. Scrubbing blends the nearest points' latents.")
        uf.addRow("Neighbours", self.umap_neighbors)
        uf.addRow("Min. distance", self.umap_min_dist)
        uf.addRow("Metric", self.umap_metric)
        buttons = QHBoxLayout()
        buttons.addWidget(self.umap_run_btn)
        buttons.addWidget(self.umap_cancel_btn)
        uf.addRow(buttons)
        uf.addRow(self.umap_bar)
        uf.addRow(self.umap_status)
        umap.setLayout(uf)

        points = QWidget()
        ptf = _form()
        self.plane_btn = QPushButton("Use path points 1–3")
        self.plane_btn.setToolTip("The plane through the first three picked points: exact")
        self.plane_btn.clicked.connect(self.plane_from_points)
        self.plane_hint = _hint("Pick three points (mouse: Pick), then use them. They sit at (0,0), (1,0), (0,1).")
        ptf.addRow(self.plane_btn)
        ptf.addRow(self.plane_hint)
        points.setLayout(ptf)
        for w in (axes, pca, umap, points):
            self.pages.append(w)

        self.colour = QComboBox()
        self.colour.setToolTip("Colour the points by their label or an attribute")
        self.colour.currentIndexChanged.connect(lambda _i: self.colour_changed.emit())
        f = _form()
        f.addRow("Projection", self.projection)
        v = QVBoxLayout(box)
        v.addLayout(f)
        for w in self.pages:
            v.addWidget(w)
        cf = _form()
        cf.addRow("Colour by", self.colour)
        v.addLayout(cf)
        self.projection.setCurrentIndex(1)
        self._on_projection()
        return box

    def _on_projection(self, *_):
        for i, w in enumerate(self.pages):
            w.setVisible(i == self.projection.currentIndex())
        self.projection_changed.emit(self.projection.currentData())

    def set_projection(self, key: str) -> None:
        self.projection.setCurrentIndex(max(0, self.projection.findData(key)))

    def set_latent_dim(self, d: int) -> None:
        for s in (self.axis_i, self.axis_j):
            s.blockSignals(True)
            s.setRange(0, max(0, d - 1))
            s.blockSignals(False)
        if self.axis_i.value() == self.axis_j.value():
            self.axis_j.blockSignals(True)
            self.axis_j.setValue(1 if self.axis_i.value() == 0 else 0)
            self.axis_j.blockSignals(False)
        self.axes_hint.setText("Exact: the map is the latent space itself." if d == 2 else
                               "Exact: the other coordinates stay at the data mean.")

    def set_colour_options(self, options: list[tuple[str, str]], current: str | None = None) -> None:
        self.colour.blockSignals(True)
        self.colour.clear()
        for title, key in options:
            self.colour.addItem(title, key)
        i = self.colour.findData(current) if current is not None else -1
        self.colour.setCurrentIndex(max(0, i))
        self.colour.blockSignals(False)

    def umap_params(self):
        from engines.latent.projection import UmapParams

        return UmapParams(n_neighbors=self.umap_neighbors.value(), min_dist=round(self.umap_min_dist.value(), 4),
                          metric=self.umap_metric.currentText())

    def set_umap_running(self, running: bool) -> None:
        self.umap_run_btn.setEnabled(not running)
        self.umap_cancel_btn.setEnabled(running)
        for w in (self.umap_neighbors, self.umap_min_dist, self.umap_metric):
            w.setEnabled(not running)

    # ---- what the map shows --------------------------------------------------------------------------
    def _show_box(self) -> QGroupBox:
        box = QGroupBox("Show")
        self.show_scatter = QToolButton()
        self.show_atlas = QToolButton()
        self.show_seeds = QToolButton()
        group = QButtonGroup(self)
        for b, text, tip in ((self.show_scatter, "Scatter", "The encoded data points"),
                             (self.show_atlas, "Atlas", "Decoded images tiled over the map (the 2-D manifold figure)"),
                             (self.show_seeds, "Seeds", "A plane of random seeds from the prior; drag between them to "
                                                        "blend neighbouring seeds (needs no data)")):
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            group.addButton(b)
        self.show_scatter.setChecked(True)
        group.buttonToggled.connect(lambda _b, on: on and self._on_view())
        self.atlas_res = QSpinBox()
        self.atlas_res.setRange(2, 40)
        self.atlas_res.setValue(16)
        self.atlas_res.setSuffix(" × cells")
        self.atlas_res.setToolTip("Images per side; decoded coarse first, then refined")
        self.atlas_extent = QDoubleSpinBox()
        self.atlas_extent.setRange(0.01, 1e4)
        self.atlas_extent.setDecimals(2)
        self.atlas_extent.setSingleStep(0.25)
        self.atlas_extent.setValue(3.0)
        self.atlas_extent.setToolTip("Half the side of the tiled square, in map units, around the atlas centre")
        self.atlas_fit = QPushButton("Fit to view")
        self.atlas_fit.setToolTip("Tile the part of the map now in view")
        self.atlas_fit.clicked.connect(self.atlas_fit_view)
        self.atlas_points = QCheckBox("Points on top")
        self.atlas_points.setChecked(False)
        for w in (self.atlas_res, self.atlas_extent):
            w.valueChanged.connect(lambda _v: self._on_view())
        self.atlas_points.toggled.connect(lambda _v: self._on_view())
        self.atlas_status = _hint("")
        toggle = QHBoxLayout()
        toggle.setSpacing(0)
        toggle.addWidget(self.show_scatter, 1)
        toggle.addWidget(self.show_atlas, 1)
        toggle.addWidget(self.show_seeds, 1)
        for b in (self.show_scatter, self.show_atlas, self.show_seeds):
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.atlas_opts = QWidget()
        f = _form()
        f.addRow("Resolution", self.atlas_res)
        f.addRow("Extent ±", self.atlas_extent)
        row = QHBoxLayout()
        row.addWidget(self.atlas_fit)
        row.addWidget(self.atlas_points)
        f.addRow(row)
        f.addRow(self.atlas_status)
        self.atlas_opts.setLayout(f)
        self.atlas_opts.hide()
        v = QVBoxLayout(box)
        v.addLayout(toggle)
        v.addWidget(self.atlas_opts)
        return box

    def _on_view(self) -> None:
        self.atlas_opts.setVisible(self.show_atlas.isChecked())
        self.view_changed.emit()

    @property
    def atlas_mode(self) -> bool:
        return self.show_atlas.isChecked()

    def set_atlas_mode(self, on: bool) -> None:
        (self.show_atlas if on else self.show_scatter).setChecked(True)

    @property
    def seed_mode(self) -> bool:
        return self.show_seeds.isChecked()

    def set_atlas_extent(self, extent: float) -> None:
        self.atlas_extent.blockSignals(True)
        self.atlas_extent.setValue(extent)
        self.atlas_extent.blockSignals(False)

    # ---- mouse ---------------------------------------------------------------------------------------------
    def _mouse_box(self) -> QGroupBox:
        box = QGroupBox("Mouse")
        self.mouse_group = QButtonGroup(self)
        self.mouse_buttons = {}
        row = QHBoxLayout()
        row.setSpacing(0)
        for text, key, tip in MOUSE_MODES:
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip + " · Shift+drag pans, the wheel zooms")
            b.setCheckable(True)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.mouse_group.addButton(b)
            self.mouse_buttons[key] = b
            row.addWidget(b, 1)
            b.toggled.connect(lambda on, k=key: on and self.mouse_mode_changed.emit(k))
        self.mouse_buttons["scrub"].setChecked(True)
        self.selection_label = _hint("")
        self.selection_label.hide()
        self.sel_mean = QPushButton("Go to mean")
        self.sel_mean.setToolTip("Decode the mean latent of the selected points")
        self.sel_clear = QPushButton("Clear")
        self.sel_mean.clicked.connect(self.selection_to_mean)
        self.sel_clear.clicked.connect(self.selection_clear)
        self.sel_row = QWidget()
        sr = QHBoxLayout(self.sel_row)
        sr.setContentsMargins(0, 0, 0, 0)
        sr.addWidget(self.sel_mean)
        sr.addWidget(self.sel_clear)
        self.sel_row.hide()
        v = QVBoxLayout(box)
        v.addLayout(row)
        v.addWidget(self.selection_label)
        v.addWidget(self.sel_row)
        self.groups = GroupsBox()
        v.addWidget(self.groups)
        return box

    def set_mouse_mode(self, key: str) -> None:
        self.mouse_buttons[key].setChecked(True)

    def show_selection(self, n: int, summary: str = "") -> None:
        self.selection_label.setText(f"{n:,} points selected{' · ' + summary if summary else ''}" if n else "")
        self.selection_label.setVisible(n > 0)
        self.sel_row.setVisible(n > 0)

    # ---- path -----------------------------------------------------------------------------------------------
    def _path_box(self) -> QGroupBox:
        box = QGroupBox("Path")
        self.path_add = QPushButton("Add cursor")
        self.path_add.setToolTip("Add the current latent as the next path point (or click points in Pick mode)")
        self.path_clear_btn = QPushButton("Clear")
        self.path_add.clicked.connect(self.path_add_cursor)
        self.path_clear_btn.clicked.connect(self.path_clear)
        self.path_method = QComboBox()
        self.path_method.addItem("Spherical (slerp)", "slerp")
        self.path_method.addItem("Linear (lerp)", "lerp")
        self.path_method.setToolTip("Spherical keeps the norm typical of a Gaussian prior; linear cuts through the middle")
        self.path_steps = QSpinBox()
        self.path_steps.setRange(1, 32)
        self.path_steps.setValue(8)
        self.path_steps.setToolTip("Decoded images per segment in the strip")
        self.path_method.currentIndexChanged.connect(lambda _i: self.path_changed.emit())
        self.path_steps.valueChanged.connect(lambda _v: self.path_changed.emit())
        self.play = QPushButton("▶ Play")
        self.play.setCheckable(True)
        self.play.setToolTip("Animate the cursor along the path")
        self.play.toggled.connect(self._on_play)
        self.loop = QCheckBox("Loop")
        self.loop.setChecked(True)
        self.path_status = _hint("Pick two or more points.")
        g = QGridLayout()
        g.setContentsMargins(0, 0, 0, 0)
        g.addWidget(self.path_add, 0, 0)
        g.addWidget(self.path_clear_btn, 0, 1)
        f = _form()
        f.addRow("Interpolation", self.path_method)
        f.addRow("Steps", self.path_steps)
        play = QHBoxLayout()
        play.addWidget(self.play, 1)
        play.addWidget(self.loop)
        v = QVBoxLayout(box)
        v.addLayout(g)
        v.addLayout(f)
        v.addLayout(play)
        v.addWidget(self.path_status)
        return box

    def _on_play(self, on: bool) -> None:
        self.play.setText("❚❚ Pause" if on else "▶ Play")
        self.path_play.emit(on)

    def set_playing(self, on: bool) -> None:
        self.play.blockSignals(True)
        self.play.setChecked(on)
        self.play.setText("❚❚ Pause" if on else "▶ Play")
        self.play.blockSignals(False)
