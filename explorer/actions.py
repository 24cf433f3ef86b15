"""Every menu item and keyboard shortcut, declared in one table.

The window builds its menus from ACTIONS and calls `getattr(window, action.callback)` when one is
triggered. A later panel adds its rows here. Users may override a shortcut in the settings file
(`shortcuts: {"train.start": "F9"}`).
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence

MENUS = ("&File", "&View", "&Train", "&Map", "&Help")


@dataclass(frozen=True)
class Action:
    id: str
    title: str
    menu: str
    callback: str  # a MainWindow method, "panel:NAME" (show it) or "panel:NAME.method" (call it)
    shortcut: str = ""  # a QKeySequence string, or a QKeySequence.StandardKey name
    tip: str = ""
    checkable: bool = False
    separator_before: bool = False


ACTIONS: tuple[Action, ...] = (
    Action("file.open", "&Open Checkpoint…", "&File", "open_checkpoint", "Open",
           "Open a .safetensors checkpoint and add it to the library"),
    Action("file.open_session", "Open &Session…", "&File", "open_session_dialog", "Ctrl+Shift+O",
           "Restore keys, vectors, bookmarks and the panels' settings from a session file", separator_before=True),
    Action("file.save_session", "Sa&ve Session…", "&File", "save_session_dialog", "Ctrl+Shift+S",
           "Save everything needed to restore this view and regenerate its exports"),
    Action("file.save_panel_png", "Save Panel as &PNG…", "&File", "save_panel_png", "",
           "A picture of the panel on show"),
    Action("file.runs_folder", "Set &Runs Folder…", "&File", "choose_runs_folder", "",
           "Choose where trained models are saved and listed from", separator_before=True),
    Action("file.show_runs", "Show Runs Folder", "&File", "show_runs_folder", "",
           "Open the runs folder in the file manager"),
    Action("file.quit", "&Quit", "&File", "close", "Ctrl+Q", separator_before=True),
    Action("view.panel.train", "&Train Panel", "&View", "show_train_panel", "Ctrl+1"),
    Action("view.panel.manifold", "&Manifold Panel", "&View", "panel:manifold", "Ctrl+2"),
    Action("view.panel.arithmetic", "&Arithmetic Panel", "&View", "panel:arithmetic", "Ctrl+3"),
    Action("view.panel.codebook", "&Codebook Panel", "&View", "panel:codebook", "Ctrl+4"),
    Action("view.panel.diffusion", "&Diffusion Panel", "&View", "panel:diffusion", "Ctrl+5"),
    Action("view.panel.export", "&Export Panel", "&View", "panel:export", "Ctrl+6"),
    Action("view.compare", "C&ompare Models…", "&View", "open_compare", "Ctrl+K",
           "Two to four models of the same data set side by side: samples, metrics, maps", separator_before=True),
    Action("view.library", "Model &Library", "&View", "toggle_library", "Ctrl+L",
           "Show or hide the model library", checkable=True, separator_before=True),
    Action("view.refresh", "&Refresh Library", "&View", "refresh_library", "F5"),
    Action("train.start", "&Start Training", "&Train", "train_start", "Ctrl+Return"),
    Action("train.pause", "&Pause / Resume", "&Train", "train_pause", "Ctrl+P"),
    Action("train.cancel", "&Cancel Training", "&Train", "train_cancel", "Ctrl+."),
    Action("train.resume_current", "Continue Training the &Current Model", "&Train", "train_resume_current", "",
           separator_before=True),
    Action("map.back", "&Back to the Previous Latent", "&Map", "panel:manifold.shortcut_undo", "Ctrl+Z"),
    Action("map.forward", "&Forward", "&Map", "panel:manifold.shortcut_redo", "Ctrl+Shift+Z"),
    Action("map.bookmark", "&Bookmark the Current Latent", "&Map", "panel:manifold.shortcut_bookmark", "Ctrl+D"),
    Action("help.shortcuts", "&Keyboard Shortcuts", "&Help", "show_shortcuts", "F1"),
    Action("help.about", "&About Latent Explorer", "&Help", "show_about", ""),
)


def key_sequence(text: str) -> QKeySequence:
    std = getattr(QKeySequence.StandardKey, text, None)
    return QKeySequence(std) if std is not None else QKeySequence(text)


def resolve_callback(window, name: str):
    """A MainWindow method, or a panel's: "panel:NAME" shows it, "panel:NAME.method" calls it."""
    if not name.startswith("panel:"):
        return getattr(window, name)
    panel, _, method = name[len("panel:"):].partition(".")
    if not method:
        return lambda _on=False: window.show_panel(panel)
    return lambda _on=False: getattr(window.panels[panel], method)()


def build(window, overrides: dict | None = None) -> dict[str, QAction]:
    """Create the menus on `window.menuBar()` and return the QActions by id."""
    overrides = overrides or {}
    menus = {title: window.menuBar().addMenu(title) for title in MENUS}
    out: dict[str, QAction] = {}
    for a in ACTIONS:
        qa = QAction(a.title, window)
        qa.setObjectName(a.id)
        shortcut = overrides.get(a.id, a.shortcut)
        if shortcut:
            qa.setShortcut(key_sequence(shortcut))
        if a.tip:
            qa.setStatusTip(a.tip)
            qa.setToolTip(a.tip)
        qa.setCheckable(a.checkable)
        callback = resolve_callback(window, a.callback)
        if a.checkable:
            qa.toggled.connect(callback)
        else:
            qa.triggered.connect(lambda _checked=False, cb=callback: cb())
        menu = menus[a.menu]
        if a.separator_before and menu.actions():
            menu.addSeparator()
        menu.addAction(qa)
        window.addAction(qa)  # shortcuts work even while the menu bar is hidden
        out[a.id] = qa
    return out


def shortcut_table(overrides: dict | None = None) -> list[tuple[str, str]]:
    overrides = overrides or {}
    rows = []
    for a in ACTIONS:
        s = overrides.get(a.id, a.shortcut)
        if s:
            rows.append((a.title.replace("&", "").rstrip("…"), key_sequence(s).toString(QKeySequence.SequenceFormat.NativeText)))
    return rows
