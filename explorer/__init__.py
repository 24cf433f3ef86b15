"""Latent Explorer's desktop app (PySide6): thin views over `engines/`, compute in worker threads.

Layout: `app.py` (entry point), `window.py` (main window), `actions.py` (menus and shortcuts, one
table), `settings.py` (JSON settings), `workers.py` (thread workers, latest-request-wins runner),
`session.py` (the current model every panel follows), `library.py` (the model list),
`panels/` (one tab per panel), `widgets/` (reusable views), `screenshot.py` (offscreen PNGs).
"""

import os as _os

# Worker threads must not starve the GUI thread: OpenMP threads that spin while waiting keep the
# cores busy, so the event loop (and the other workers) stall for hundreds of milliseconds on a
# small laptop. Passive waiting only takes effect if set before torch is first imported.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
