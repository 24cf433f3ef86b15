"""Latent Explorer. `python main.py` opens the app; `python main.py train|sample|encode|info …` is the CLI."""
import sys


def run() -> int:
    args = sys.argv[1:]
    if not args:
        try:
            from explorer.app import main as gui_main
        except ImportError:
            gui_main = None
        if gui_main is not None:
            return gui_main()
    from engines.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(run())
