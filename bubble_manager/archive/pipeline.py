"""Overlapping the stages of a snapshot or a restore with threads, in bounded memory.

The command-line pipeline `tar | zstd | age` runs its three stages in three processes. Here the
stages are one Python stream, so the slow parts that release the GIL (file reads and writes,
sha256; zstd has worker threads of its own) are moved off the main thread: a `Worker` runs queued
calls in order on one thread (a restore's file writer), and a `PrefetchReader` reads and hashes a
file ahead of its consumer. Encryption stays on the main thread: ChaCha20-Poly1305 holds the GIL,
and a thread doing it would only make the others wait for it. Queues are bounded, so memory
stays a few MiB whatever the archive size. An error in a thread is raised again in the caller at
its next call or at `finish`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any, BinaryIO, Callable

QUEUE_DEPTH = 8
_STOP = object()


class Worker:
    """Runs submitted calls in order on one background thread."""

    def __init__(self, name: str, depth: int = QUEUE_DEPTH):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._aborted:
                continue  # drain without running: the caller will see the error or asked to stop
            function, args = item
            try:
                function(*args)
            except BaseException as error:  # re-raised in the caller's thread
                self._error = error

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        self.check()
        self._queue.put((function, args))

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Wait for every submitted call; raise the first error one of them raised."""
        self._queue.put(_STOP)
        self._thread.join()
        self.check()

    def abort(self) -> None:
        """Stop, skipping calls not yet run (used when the caller already failed)."""
        self._aborted = True
        self._queue.put(_STOP)
        self._thread.join()


class PrefetchReader:
    """Reads `raw` ahead on a thread, hashing (sha256) and counting every byte read."""

    def __init__(self, raw: BinaryIO, block: int = 1 << 20, depth: int = QUEUE_DEPTH):
        self._raw = raw
        self._block = block
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.hash = hashlib.sha256()
        self.size = 0
        self._pending = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="archive-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._raw.read(self._block)
                if not data:
                    break
                self.hash.update(data)
                self.size += len(data)
                self._queue.put(data)
            self._queue.put(b"")
        except BaseException as error:
            self._queue.put(error)

    def _next(self) -> bool:
        if self._eof:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        if not item:
            self._eof = True
            return False
        self._pending = memoryview(item)
        return True

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        if not self._pending and not self._next():
            return 0
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def read(self, size: int = -1) -> bytes:
        if not self._pending and not self._next():
            return b""
        if size is None or size < 0 or size >= len(self._pending):
            data, self._pending = bytes(self._pending), memoryview(b"")
            return data
        data, self._pending = bytes(self._pending[:size]), self._pending[size:]
        return data

    def close(self) -> None:
        """Stop the thread (unblocking it if the queue is full)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()
