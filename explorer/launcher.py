"""The `latent-explorer` command and `python main.py`: no arguments (or files to open) start the
desktop app; `--version` prints the version; `screenshot` and `install-desktop` are the explorer's
own commands; everything else is the headless command line (`engines.cli`)."""
from __future__ import annotations

import os
import sys

OPENABLE = (".safetensors", ".lxsession", ".json")
USAGE_ERROR = 2
# Commands of the app (they need Qt): dispatched here, listed in the command line's help.
APP_COMMANDS = {"screenshot": "render a panel of the app offscreen to a PNG (`screenshot --help`)",
                "install-desktop": "add the app to the desktop's launcher: icon, name, file types (`--uninstall`)"}


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("latent-explorer")
    except metadata.PackageNotFoundError:  # a checkout run without installing: read pyproject.toml
        import re

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        try:
            with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
                m = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
            return m.group(1) if m else "unknown"
        except OSError:
            return "unknown"


def _files_to_open(args: list[str]) -> bool:
    return bool(args) and all(a.lower().endswith(OPENABLE) and os.path.isfile(a) for a in args)


def gui(files: list[str] | None = None) -> int:
    from explorer.preflight import PreflightError, check

    try:
        check()
    except PreflightError as e:
        print(f"latent-explorer: {e}", file=sys.stderr)
        return 2
    from explorer.app import main as app_main

    return app_main(files=files or [])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["--version"], ["-V"]):
        print(f"latent-explorer {version()}")
        return 0
    if not args or _files_to_open(args):
        return gui(args)
    if args[0] == "install-desktop":  # files only: works without Qt
        from explorer.desktop import main as desktop_main

        return desktop_main(args[1:])
    if args[0] == "screenshot":
        from explorer.preflight import PreflightError, check_pyside

        try:
            check_pyside()
        except PreflightError as e:
            print(f"latent-explorer: {e}", file=sys.stderr)
            return USAGE_ERROR
        from explorer.screenshot import main as screenshot_main

        return screenshot_main(args[1:])
    from engines.cli.main import main as cli_main

    return cli_main(args, app_commands=APP_COMMANDS)


def gui_main() -> int:
    """The console-less launcher (`[project.gui-scripts]`, for Windows): always the app."""
    return gui(sys.argv[1:])
