"""Latent Explorer. `python main.py` opens the app; `python main.py train|sample|encode|info …` is the
headless command line (engines/cli/); `python main.py screenshot …` renders a panel (explorer/screenshot.py)."""
import sys

USAGE_ERROR = 2
# Commands of the app (they need Qt): dispatched here, listed in the command line's help.
APP_COMMANDS = {"screenshot": "render a panel of the app offscreen to a PNG (`screenshot --help`)"}


def _gui_missing() -> str | None:
    """Why the app cannot start (its GUI toolkit does not import), or None."""
    from importlib import import_module

    try:
        import_module("PySide6.QtWidgets")
        import_module("pyqtgraph")
    except ImportError as e:
        return str(e) or type(e).__name__
    return None


def run(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in APP_COMMANDS:
        why = _gui_missing()
        if why is not None:
            sys.stderr.write(f"error: the app needs PySide6 and pyqtgraph ({why}); "
                             "the command line works without them: python main.py --help\n")
            return USAGE_ERROR
        if not args:
            from explorer.app import main as gui_main

            return gui_main()
        from explorer.screenshot import main as screenshot_main

        return screenshot_main(args[1:])
    from engines.cli.main import main as cli_main

    return cli_main(args, app_commands=APP_COMMANDS)


if __name__ == "__main__":
    sys.exit(run())
