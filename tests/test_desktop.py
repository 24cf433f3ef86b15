"""The desktop application around the window: entry points, --version, the .desktop entry and its
icons, and the one-line refusals before Qt starts (no display, missing system libraries)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, env_update=None, drop=(), path_prefix=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_update or {})
    if path_prefix:
        env["PATH"] = path_prefix + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_version_comes_from_the_package_metadata():
    from importlib import metadata

    r = _run(["--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"latent-explorer {metadata.version('latent-explorer')}"


def test_no_display_is_one_line_and_exit_2():
    r = _run([], drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "latent-explorer --help" in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_qt_libraries_name_the_packages_and_exit_2(tmp_path):
    # Simulated: an `ldd` that reports the two libraries a fresh Debian lacks.
    fake = tmp_path / "ldd"
    fake.write_text("#!/bin/sh\necho '\tlibxcb-cursor.so.0 => not found'\necho '\tlibxcb-icccm.so.4 => not found'\n"
                    "echo '\tlibc.so.6 => /lib/libc.so.6 (0x0)'\n")
    fake.chmod(0o755)
    r = _run([], env_update={"DISPLAY": ":77"}, drop=("QT_QPA_PLATFORM", "WAYLAND_DISPLAY"), path_prefix=str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "libxcb-cursor.so.0" in line and "libxcb-icccm.so.4" in line
    assert "apt-get install libxcb-cursor0 libxcb-icccm4" in line
    assert "dnf install xcb-util-cursor xcb-util-wm" in line


def test_preflight_platforms():
    from explorer.preflight import PreflightError, check_display, platform_name

    assert platform_name({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    check_display({"QT_QPA_PLATFORM": "offscreen"})
    check_display({"DISPLAY": ":0"})
    check_display({"WAYLAND_DISPLAY": "wayland-0"})
    with pytest.raises(PreflightError, match="no display"):
        check_display({})
    with pytest.raises(PreflightError, match="no display"):
        check_display({"QT_QPA_PLATFORM": "xcb"})


def _desktop_keys(text):
    keys = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("["):
            k, v = line.split("=", 1)
            keys[k] = v
    return keys


def test_install_desktop_writes_a_valid_entry_icons_and_mime_and_uninstalls(tmp_path):
    home = tmp_path / "share"
    r = _run(["install-desktop"], env_update={"XDG_DATA_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    entry = home / "applications" / "latent-explorer.desktop"
    text = entry.read_text()
    keys = _desktop_keys(text)
    assert text.startswith("[Desktop Entry]\n")
    assert keys["Type"] == "Application" and keys["Name"] == "Latent Explorer"
    assert keys["Icon"] == "latent-explorer" and keys["StartupWMClass"] == "latent-explorer"
    assert "application/x-safetensors" in keys["MimeType"].split(";")
    assert "application/x-latent-explorer-session" in keys["MimeType"].split(";")
    exe = keys["Exec"].split()[0].strip('"')
    assert os.path.isfile(exe) and os.access(exe, os.X_OK), keys["Exec"]
    assert keys["Exec"].endswith(" %f")
    for n in (16, 32, 48, 128, 256, 512):
        png = home / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "latent-explorer.png"
        assert png.stat().st_size > 100
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (home / "icons" / "hicolor" / "scalable" / "apps" / "latent-explorer.svg").exists()
    mime = (home / "mime" / "packages" / "latent-explorer.xml").read_text()
    assert 'glob pattern="*.safetensors"' in mime and "latent-explorer-session" in mime
    validator = shutil.which("desktop-file-validate")
    if validator:
        v = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert v.returncode == 0 and not v.stdout.strip(), v.stdout + v.stderr
        print("validated with desktop-file-validate")
    else:
        print("desktop-file-validate not installed: keys checked only")
    r = _run(["install-desktop", "--uninstall"], env_update={"XDG_DATA_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert not entry.exists()
    assert not (home / "icons" / "hicolor" / "48x48" / "apps" / "latent-explorer.png").exists()


def test_exec_quoting_follows_the_spec():
    from explorer.desktop import _exec_quote, desktop_entry

    assert _exec_quote("/usr/bin/latent-explorer") == "/usr/bin/latent-explorer"
    assert _exec_quote("/home/a b/$x") == '"/home/a b/\\$x"'
    assert _exec_quote("100%") == '"100%%"'
    assert "Exec=\"/opt/my env/bin/python\" /x/main.py %f" in desktop_entry(["/opt/my env/bin/python", "/x/main.py"])


def test_app_names_and_icon(qtbot):
    from PySide6.QtWidgets import QApplication

    from explorer.app import make_app

    app = make_app()
    assert isinstance(app, QApplication)
    assert app.applicationName() == "latent-explorer" and app.desktopFileName() == "latent-explorer"
    assert app.applicationDisplayName() == "Latent Explorer"
    assert os.environ.get("RESOURCE_NAME") == "latent-explorer"
    icon = app.windowIcon()
    assert not icon.isNull()
    sizes = {s.width() for s in icon.availableSizes()}
    assert {16, 32, 48, 256} <= sizes


def test_the_installed_entry_point_is_the_launcher():
    from importlib import metadata

    eps = {e.name: e.value for e in metadata.entry_points(group="console_scripts") if e.name.startswith("latent-explorer")}
    gui = {e.name: e.value for e in metadata.entry_points(group="gui_scripts") if e.name.startswith("latent-explorer")}
    if eps.get("latent-explorer") != "explorer.launcher:main":
        pytest.fail(f"reinstall the project (pip install -e .): entry points are {eps}")
    assert gui == {"latent-explorer-gui": "explorer.launcher:gui_main"}
