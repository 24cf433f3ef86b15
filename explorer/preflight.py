"""Checks made before Qt starts, so that a machine that cannot show the app gets one line saying
what is missing (and exit 2) instead of Qt's abort. Qt-free: nothing here imports PySide6."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

# Shared libraries the xcb platform plugin of Qt ≥ 6.5 loads, with the packages that provide them.
# soname prefix → (Debian/Ubuntu package, Fedora package)
XCB_PACKAGES = {
    "libxcb-cursor.so": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-randr.so": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so": ("libxcb-shape0", "libxcb"),
    "libxcb-xfixes.so": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so": ("libxcb-xkb1", "libxcb"),
    "libxcb-sync.so": ("libxcb-sync1", "libxcb"),
    "libxcb-shm.so": ("libxcb-shm0", "libxcb"),
    "libxcb-xinput.so": ("libxcb-xinput0", "libxcb"),
    "libxcb-render.so": ("libxcb-render0", "libxcb"),
    "libxcb.so": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so": ("libx11-6", "libX11"),
    "libEGL.so": ("libegl1", "libglvnd-egl"),
    "libGL.so": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so": ("libfontconfig1", "fontconfig"),
    "libfreetype.so": ("libfreetype6", "freetype"),
    "libdbus-1.so": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so": ("libglib2.0-0", "glib2"),
}
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


class PreflightError(RuntimeError):
    """One line: why the app cannot start here, and what to do."""


def platform_name(env=None) -> str:
    """The Qt platform plugin that will be used: QT_QPA_PLATFORM, else what the session offers."""
    env = os.environ if env is None else env
    forced = (env.get("QT_QPA_PLATFORM") or "").split(":")[0].split(";")[0].strip()
    if forced:
        return forced
    if sys.platform == "darwin":
        return "cocoa"
    if sys.platform.startswith("win"):
        return "windows"
    if env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"):
        return "wayland"
    return "xcb"


def check_display(env=None) -> None:
    env = os.environ if env is None else env
    name = platform_name(env)
    if name in HEADLESS_PLATFORMS or name in ("cocoa", "windows"):
        return
    if name == "wayland" and env.get("WAYLAND_DISPLAY"):
        return
    if name == "xcb" and env.get("DISPLAY"):
        return
    raise PreflightError("no display: run on a desktop, or use the command line: latent-explorer --help")


def missing_libraries(paths: list[str]) -> list[str]:
    """The sonames `ldd` reports 'not found' for these shared objects ([] when ldd is absent)."""
    ldd = shutil.which("ldd")
    missing: list[str] = []
    if ldd is None:
        return missing
    for p in paths:
        if not os.path.exists(p):
            continue
        try:
            out = subprocess.run([ldd, p], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for m in re.finditer(r"^\s*(\S+)\s*=>\s*not found", out, re.M):
            if m.group(1) not in missing:
                missing.append(m.group(1))
    return missing


def _xcb_plugin_files() -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = os.path.join(list(spec.submodule_search_locations)[0], "Qt")
    return [os.path.join(root, "plugins", "platforms", "libqxcb.so"),
            os.path.join(root, "lib", "libQt6XcbQpa.so.6")]


def packages_for(sonames: list[str]) -> tuple[list[str], list[str]]:
    deb, rpm = [], []
    for so in sonames:
        for prefix, (d, f) in XCB_PACKAGES.items():
            if so.startswith(prefix):
                deb += [d] if d not in deb else []
                rpm += [f] if f not in rpm else []
                break
        else:
            deb += [so] if so not in deb else []
    return deb, rpm


def check_qt_libraries(env=None) -> None:
    if platform_name(env) != "xcb" or not sys.platform.startswith("linux"):
        return
    missing = missing_libraries(_xcb_plugin_files())
    if missing:
        deb, rpm = packages_for(missing)
        raise PreflightError(f"Qt cannot open a window: missing {', '.join(missing)}; install them with "
                             f"'sudo apt-get install {' '.join(deb)}' (Debian/Ubuntu) or "
                             f"'sudo dnf install {' '.join(rpm) or ' '.join(deb)}' (Fedora)")


def check_pyside() -> None:
    from importlib import import_module

    try:  # importing (not only finding) them: a broken install or a missing Qt library shows here
        import_module("PySide6.QtWidgets")
        import_module("pyqtgraph")
    except ImportError as e:
        raise PreflightError(f"the app needs PySide6 and pyqtgraph ({str(e) or type(e).__name__}): python -m pip install "
                             "PySide6-Essentials pyqtgraph (the command line works without them: latent-explorer --help)") from None


def check(env=None) -> None:
    """Everything the window needs before Qt starts; raises PreflightError (one line)."""
    check_pyside()
    check_display(env)
    check_qt_libraries(env)
