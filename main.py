"""Latent Explorer. `python main.py` opens the app; `python main.py train|sample|encode|info …` is the
command line (`python main.py --help`); see explorer/launcher.py."""
import sys

from explorer.launcher import main

if __name__ == "__main__":
    sys.exit(main())
