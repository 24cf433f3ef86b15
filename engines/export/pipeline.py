"""Encoding in parallel with decoding: a writer fed through a bounded queue by its own thread.

`run_export` decodes batch after batch on the engine's device; the `BackgroundWriter` hands each
batch to a thread that encodes and writes it (ffmpeg's pipe, the GIF and PNG encoders) while the
next batch decodes. The queue holds at most `depth` batches, so memory stays bounded and a slow
writer slows the decoder down instead of piling frames up.

Errors in the thread come back to the caller at its next `append` or at `commit`, as the error
the writer raised. `abort` (a Cancel, an error, or the `with` block left without a commit) stops
the thread after the batch it is writing and lets the writer remove its temporary file, so the
export stays atomic and cancel-safe as before.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time

_END = object()


class BackgroundWriter:
    """Wraps a `writers.Writer`: `append` queues frames, `commit` waits for them and commits.
    `busy_s`: the time the thread spent writing; `wait_s`: the time `append` waited for room."""

    def __init__(self, writer, depth: int = 2):
        self.writer = writer
        self.busy_s = 0.0
        self.wait_s = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self._thread.start()

    # the wrapped writer's results
    @property
    def size(self):
        return self.writer.size

    @property
    def frames(self) -> int:
        return self.writer.frames

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._stop.is_set():
                return
            if self._error is not None:
                continue  # drain: the caller hears of the error at its next call
            t0 = time.perf_counter()
            try:
                self.writer.append(item)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e
            self.busy_s += time.perf_counter() - t0

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def append(self, frames) -> None:
        self._raise()
        # Checked here: the first batch opens the writer (its temporary file exists, ffmpeg starts)
        # and a bad target or frame fails at once, as without the thread. Every batch, the first
        # included, is then written by the thread while the next one decodes.
        t0 = time.perf_counter()
        frames = self.writer.check(frames)
        self.busy_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        while True:
            try:
                self._queue.put(frames, timeout=0.1)
                break
            except queue.Full:
                self._raise()
        self.wait_s += time.perf_counter() - t0

    def _join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def commit(self) -> str:
        self._join()
        self._raise()
        return self.writer.commit()

    def abort(self) -> None:
        self._stop.set()
        while True:  # drop what is queued: the thread stops after its current batch
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._join()
        self.writer.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not self.writer.done:
            self.abort()
        return False


@contextlib.contextmanager
def cores_for_encoder(device, encoder_threads: bool):
    """While ffmpeg encodes on its own threads (MP4), a CPU decode runs on one torch thread fewer,
    restored afterwards. With every core taken by torch's spinning intra-op threads and x264's
    threads besides, the two evict each other: on 2 cores the 192-frame bench walk (faces VAE,
    512×512) exported in 1.12–1.17 s with torch on 1 thread against 1.26–1.33 s on 2 (GIF and
    PNG encode in our own Python thread and gain nothing, so they keep every thread). A machine
    whose torch already uses one thread (the app's own policy) is unchanged."""
    import torch

    n = torch.get_num_threads()
    if not encoder_threads or torch.device(device).type != "cpu" or n < 2:
        yield n
        return
    torch.set_num_threads(n - 1)
    try:
        yield n - 1
    finally:
        torch.set_num_threads(n)
