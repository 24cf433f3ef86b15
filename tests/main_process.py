"""`python main.py …` as a real process in tests, with its exit status, its output and its OWN peak
RSS. The command runs under a tiny launcher whose getrusage(RUSAGE_CHILDREN) is the command's
peak: a child started straight from pytest would report pytest's few hundred MB instead (on Linux
ru_maxrss survives fork and exec)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "main.py")
_LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(f'{rc} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); "
             "sys.exit(rc)")


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


class Running:
    def __init__(self, argv: list[str], cwd: str, env: dict):
        self._report = tempfile.NamedTemporaryFile(prefix="rusage-", delete=False).name
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, self._report, *argv], cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def finish(self, timeout: float = 180.0) -> Result:
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, 9)
            self.p.communicate()
            raise AssertionError(f"{self.p.args[4:]}: still running after {timeout:.0f} s") from None
        seconds = time.monotonic() - self.t0
        try:
            with open(self._report) as f:
                rc, kb = (int(x) for x in f.read().split())
        finally:
            os.unlink(self._report)
        return Result(rc, out, err, kb / 1024, seconds)


def start(args: list[str], cwd: str = ROOT, env: dict | None = None, prefix: list[str] | None = None) -> Running:
    """Start `python main.py ARGS` (or `prefix + ARGS` when given, e.g. a wrapper script)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    return Running((prefix if prefix is not None else [sys.executable, MAIN]) + list(args), str(cwd), env)


def run(args: list[str], cwd: str = ROOT, env: dict | None = None, timeout: float = 180.0) -> Result:
    return start(args, cwd, env).finish(timeout)


def run_all(commands: list[list[str]], cwd: str = ROOT, env: dict | None = None, timeout: float = 300.0) -> list[Result]:
    """Start every command at once, then collect them in order."""
    running = [start(c, cwd, env) for c in commands]
    return [r.finish(timeout) for r in running]
