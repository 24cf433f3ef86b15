"""The command line's terminal side: a progress line that updates in place on a terminal (and
writes a line every few seconds to a log), and Ctrl-C/SIGTERM turned into a cancel that saves."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """One updating line on a terminal; a line every few seconds when piped to a log."""

    def __init__(self, stream=None, every_s: float = 5.0):
        stream = stream or sys.stderr  # the stream of now, not of when this module was imported
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s
        self._last = 0.0

    def update(self, p, keys=("loss",)) -> None:
        now = time.monotonic()
        final = p.state != "running"
        if not final and now - self._last < (0.2 if self.tty else self.every_s):
            return
        self._last = now
        frac = p.fraction
        bar = ""
        if frac is not None:
            filled = int(frac * 24)
            bar = "[" + "#" * filled + "-" * (24 - filled) + f"] {100 * frac:5.1f}% "
        shown = [k for k in keys if k in p.metrics] or list(p.metrics)[:3]
        mets = " ".join(f"{k}={_fmt(p.metrics[k])}" for k in shown)
        eta = f" ETA {_dur(p.eta_s)}" if p.eta_s is not None else ""
        line = f"{bar}step {p.step} ep {p.epoch:.2f} {mets} {p.images_per_s:.0f} img/s{eta}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _dur(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _drive(gen, control, show):
    """Run a training generator to its end, showing each progress; the last one, or None.
    Ctrl-C or SIGTERM cancels it between two steps, so it saves; a second signal quits at once."""
    last = None
    with _CancelOnSignals(control):
        for last in gen:
            show(last)
    return last


class _CancelOnSignals:
    """Ctrl-C (SIGINT) or SIGTERM (what torchrun forwards to every rank) cancels the run between
    two steps, so the loop saves a checkpoint instead of dying mid-step; a second one stops at once."""

    def __init__(self, control):
        self.control = control
        self.saved = {}

    def _handle(self, signum, frame):
        if self.control.cancelled:
            raise KeyboardInterrupt
        self.control.cancel()

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False
