"""Thread workers: all compute runs here, never on the GUI thread.

`Worker(fn, *args)` runs `fn` in a pool thread. If `fn` returns a generator, each value it yields
is emitted as `yielded` (the generator's `yield` is also where `quit()` lands); then `returned`
(the return value), or `errored` (the exception, with its traceback text on `.traceback_text`),
and always `finished`. Signals are delivered on the GUI thread.

`LatestRequestRunner(fn)` is for requests that supersede each other — a slider dragged across
100 positions: at most one call of `fn(request)` runs at a time, newer requests replace the one
waiting, and a generation counter guarantees that a result never paints over a newer one. When
`fn` returns a generator (a sampler stepping), its yields arrive as `progress`, and with
`interrupt=True` a newer request or `cancel()` stops it at its next yield.
"""
from __future__ import annotations

import inspect
import threading
import traceback

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

_POOLS: dict[str, QThreadPool] = {}
_LIVE: set = set()  # workers in flight, kept alive until `finished`
_LIVE_LOCK = threading.Lock()


def pool(kind: str = "compute") -> QThreadPool:
    """'compute': short jobs (rendering, loading, data) — two threads, so a render never waits
    for a model load. 'long': jobs that run for minutes (training) so they never block renders."""
    if kind not in _POOLS:
        p = QThreadPool()
        p.setMaxThreadCount(2 if kind == "compute" else 4)
        p.setExpiryTimeout(30_000)
        _POOLS[kind] = p
    return _POOLS[kind]


def wait_all(timeout_ms: int = 30_000) -> bool:
    """Block until every worker has ended (the app calls this on quit, after cancelling)."""
    return all(p.waitForDone(timeout_ms) for p in _POOLS.values())


def live_count() -> int:
    with _LIVE_LOCK:
        return len(_LIVE)


class _Signals(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


class Worker(QRunnable):
    def __init__(self, fn, *args, **kwargs):
        super().__init__()
        self.setAutoDelete(False)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = _Signals()
        self._quit = threading.Event()
        self.thread_name: str | None = None  # the thread it ran on (for tests and diagnostics)

    # Signal shortcuts, napari/superqt style: worker.yielded.connect(...)
    @property
    def started(self):
        return self.signals.started

    @property
    def yielded(self):
        return self.signals.yielded

    @property
    def returned(self):
        return self.signals.returned

    @property
    def errored(self):
        return self.signals.errored

    @property
    def finished(self):
        return self.signals.finished

    def quit(self) -> None:
        """Stop a generator at its next `yield` (the generator's `finally` blocks still run)."""
        self._quit.set()

    @property
    def quitting(self) -> bool:
        return self._quit.is_set()

    def start(self, kind: str = "compute") -> "Worker":
        with _LIVE_LOCK:
            _LIVE.add(self)
        pool(kind).start(self)
        return self

    def run(self) -> None:  # in the pool thread
        self.thread_name = threading.current_thread().name
        emit = self._emit
        try:
            emit("started")
            result = self.fn(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                gen, result = result, None
                while True:
                    if self._quit.is_set():
                        gen.close()
                        break
                    try:
                        value = next(gen)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    emit("yielded", value)
            emit("returned", result)
        except Exception as e:  # noqa: BLE001 - every error must reach the user, not kill the thread
            e.traceback_text = traceback.format_exc()
            emit("errored", e)
        finally:
            emit("finished")
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def _emit(self, name: str, *args) -> None:
        try:
            getattr(self.signals, name).emit(*args)
        except RuntimeError:  # the app is being torn down and the signal object is gone
            pass


def run_in_thread(fn, *args, on_result=None, on_error=None, on_yield=None, kind="compute", **kwargs) -> Worker:
    """Start `fn(*args, **kwargs)` in a worker with the given callbacks (called on the GUI thread)."""
    w = Worker(fn, *args, **kwargs)
    if on_result is not None:
        w.returned.connect(on_result)
    if on_error is not None:
        w.errored.connect(on_error)
    if on_yield is not None:
        w.yielded.connect(on_yield)
    return w.start(kind)


class LatestRequestRunner(QObject):
    """Coalesce superseding requests; only the newest waiting one is computed.

    `submit(request)` bumps the generation. One `fn(request)` runs at a time in a worker; when it
    ends, the newest request submitted meanwhile (if any) runs next and all older waiting ones are
    dropped. `result(generation, request, value)` is emitted only for a generation newer than the
    last one emitted, so a stale result never paints over a newer one — and while a slider is
    dragged, intermediate results still arrive (the old image stays until a newer one is ready).
    `is_current(generation)` tells whether no newer request has been submitted since.

    A generator `fn` reports each value it yields as `progress` while its request is current;
    with `interrupt=True`, `submit` and `cancel` also stop the running generator at its next
    yield (latest request wins at once instead of after the running one ends), and a stopped
    run emits no result.
    """

    result = Signal(int, object, object)  # generation, request, value
    failed = Signal(int, object, object)  # generation, request, exception
    progress = Signal(int, object, object)  # generation, request, value yielded by a generator fn
    busy_changed = Signal(bool)

    def __init__(self, fn, parent: QObject | None = None, kind: str = "compute", interrupt: bool = False):
        super().__init__(parent)
        self._fn = fn
        self._kind = kind
        self._interrupt = interrupt
        self._generation = 0
        self._shown = 0
        self._pending: tuple[int, object] | None = None
        self._running: Worker | None = None
        self._running_meta: tuple[int, object] = (0, None)
        self.computed = 0  # how many requests were actually computed (coalescing shows here)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def busy(self) -> bool:
        return self._running is not None or self._pending is not None

    def is_current(self, generation: int) -> bool:
        return generation == self._generation

    def submit(self, request) -> int:
        self._generation += 1
        self._pending = (self._generation, request)
        if self._interrupt and self._running is not None:
            self._running.quit()
        self._start_next()
        return self._generation

    def cancel(self) -> None:
        """Forget the waiting request and ignore the result of the one running."""
        self._generation += 1
        self._shown = self._generation
        self._pending = None
        if self._running is None:
            self.busy_changed.emit(False)
        elif self._interrupt:
            self._running.quit()

    def _start_next(self) -> None:
        if self._running is not None or self._pending is None:
            return
        gen, request = self._pending
        self._pending = None
        w = Worker(self._fn, request)
        # Bound methods (not lambdas): Qt drops the delivery if this runner is deleted first.
        w.returned.connect(self._on_result)
        w.yielded.connect(self._on_yield)
        w.errored.connect(self._on_error)
        w.finished.connect(self._on_finished)
        self._running = w
        self._running_meta = (gen, request)
        self.computed += 1
        self.busy_changed.emit(True)
        w.start(self._kind)

    @Slot(object)
    def _on_yield(self, value) -> None:
        gen, request = self._running_meta
        if self.is_current(gen):
            self.progress.emit(gen, request, value)

    @Slot(object)
    def _on_result(self, value) -> None:
        gen, request = self._running_meta
        if self._running is not None and self._running.quitting:
            return  # stopped part-way: there is no result
        if gen > self._shown:
            self._shown = gen
            self.result.emit(gen, request, value)

    @Slot(object)
    def _on_error(self, error) -> None:
        gen, request = self._running_meta
        if gen > self._shown:
            self.failed.emit(gen, request, error)

    @Slot()
    def _on_finished(self) -> None:
        self._running = None
        self._start_next()
        if self._running is None:
            self.busy_changed.emit(False)
