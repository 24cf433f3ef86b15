"""Desktop integration on Linux/BSD desktops (freedesktop.org): `latent-explorer install-desktop`
writes a `.desktop` entry, the hicolor icons and the MIME types for checkpoints and sessions into
the user's data directory (`$XDG_DATA_HOME`, default ~/.local/share), so the app appears in the
launcher with its own icon and name, and double-clicking a `.safetensors` checkpoint or a session
file opens it. `--uninstall` removes exactly what was installed. Qt-free: plain files."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

APP_ID = "latent-explorer"
ICONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "icons")
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
MIME_CHECKPOINT = "application/x-safetensors"
MIME_SESSION = "application/x-latent-explorer-session"
SESSION_SUFFIX = ".lxsession"

MIME_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{MIME_CHECKPOINT}">
    <comment>Safetensors model checkpoint</comment>
    <glob pattern="*.safetensors"/>
    <generic-icon name="{APP_ID}"/>
  </mime-type>
  <mime-type type="{MIME_SESSION}">
    <comment>Latent Explorer session</comment>
    <sub-class-of type="application/json"/>
    <glob pattern="*{SESSION_SUFFIX}"/>
    <magic priority="60">
      <match type="string" value="latent-explorer-session" offset="0:256"/>
    </magic>
    <generic-icon name="{APP_ID}"/>
  </mime-type>
</mime-info>
"""


def data_home() -> str:
    return os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")


def icon_path(size: int | None = None) -> str:
    """The app icon in assets/icons: the SVG, or the PNG of `size` pixels."""
    return os.path.join(ICONS, f"{APP_ID}.svg" if size is None else f"{APP_ID}-{size}.png")


def launcher_command() -> list[str]:
    """How the desktop entry starts the app: the installed `latent-explorer` next to this Python
    (or on PATH), else this Python running the checkout's main.py."""
    here = os.path.join(os.path.dirname(sys.executable), APP_ID)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return [here]
    found = shutil.which(APP_ID)
    if found:
        return [os.path.abspath(found)]
    main_py = os.path.join(os.path.dirname(ICONS), os.pardir, "main.py")
    return [sys.executable, os.path.abspath(main_py)]


def desktop_entry(command: list[str] | None = None) -> str:
    cmd = " ".join(_exec_quote(c) for c in (command or launcher_command()))
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.4",
        "Name=Latent Explorer",
        "GenericName=Latent Space Explorer",
        "Comment=Train small generative models and explore their latent spaces",
        f"Exec={cmd} %f",
        f"TryExec={(command or launcher_command())[0]}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Science;ArtificialIntelligence;DataVisualization;",
        "Keywords=VAE;GAN;diffusion;latent;autoencoder;machine learning;",
        f"MimeType={MIME_CHECKPOINT};{MIME_SESSION};",
        f"StartupWMClass={APP_ID}",
        "StartupNotify=true",
        "",
    ])


def _exec_quote(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry spec wants (double quotes, with `"`, `` ` ``,
    `$` and `\\` escaped; `%` doubled)."""
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "/._-+:," for c in arg):
        return arg
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'


def planned_files(root: str | None = None) -> dict[str, str]:
    """destination → source ('' for generated text) of everything install writes."""
    root = root or data_home()
    files = {os.path.join(root, "applications", f"{APP_ID}.desktop"): "",
             os.path.join(root, "mime", "packages", f"{APP_ID}.xml"): "",
             os.path.join(root, "icons", "hicolor", "scalable", "apps", f"{APP_ID}.svg"): icon_path()}
    for n in PNG_SIZES:
        files[os.path.join(root, "icons", "hicolor", f"{n}x{n}", "apps", f"{APP_ID}.png")] = icon_path(n)
    return files


def install(root: str | None = None, command: list[str] | None = None) -> list[str]:
    """Write the entry, icons and MIME types (atomically each); refresh the desktop's caches where
    their tools exist. Returns the paths written."""
    from engines import atomic

    root = root or data_home()
    written = []
    for dest, src in planned_files(root).items():
        if dest.endswith(".desktop"):
            blob = desktop_entry(command).encode()
        elif dest.endswith(".xml"):
            blob = MIME_XML.encode()
        else:
            with open(src, "rb") as f:
                blob = f.read()
        atomic.write_bytes(dest, blob)
        written.append(dest)
    _refresh(root)
    return written


def uninstall(root: str | None = None) -> list[str]:
    root = root or data_home()
    removed = []
    for dest in planned_files(root):
        if os.path.exists(dest):
            os.unlink(dest)
            removed.append(dest)
    _refresh(root)
    return removed


def _refresh(root: str) -> None:
    for tool, arg in (("update-desktop-database", os.path.join(root, "applications")),
                      ("update-mime-database", os.path.join(root, "mime")),
                      ("gtk-update-icon-cache", os.path.join(root, "icons", "hicolor"))):
        exe = shutil.which(tool)
        if exe and os.path.isdir(arg):
            subprocess.run([exe, "-q", arg] if tool != "gtk-update-icon-cache" else [exe, "-q", "-t", arg],
                           capture_output=True, timeout=60)


def main(argv: list[str]) -> int:
    """`latent-explorer install-desktop [--uninstall] [--prefix DIR]`."""
    import argparse

    p = argparse.ArgumentParser(prog=f"{APP_ID} install-desktop",
                                description="Add Latent Explorer to the desktop's launcher (icon, name, file types).")
    p.add_argument("--uninstall", action="store_true", help="remove what install-desktop wrote")
    p.add_argument("--prefix", help=f"data directory to write into (default: $XDG_DATA_HOME or ~/.local/share; now {data_home()})")
    a = p.parse_args(argv)
    try:
        paths = uninstall(a.prefix) if a.uninstall else install(a.prefix)
    except OSError as e:
        print(f"error: could not {'remove' if a.uninstall else 'write'} the desktop entry: {e}", file=sys.stderr)
        return 2
    verb = "removed" if a.uninstall else "wrote"
    print(f"{verb} {len(paths)} files under {a.prefix or data_home()}"
          + ("" if a.uninstall else f"; Exec: {shlex.join(launcher_command())}"))
    return 0
