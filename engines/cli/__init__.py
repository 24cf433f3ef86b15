"""The command line (`python main.py train|sample|encode|…`), headless: never imports Qt or explorer."""
from engines.cli.main import main

__all__ = ["main"]
