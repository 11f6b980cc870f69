"""Starts threads on behalf of callers that must not wait for a thread to start.

``threading.Thread.start`` blocks until the new thread runs; on a busy machine that is
milliseconds. The sink starts one launcher when it is built (at ``instrument()`` time), so
registering a connection to a new host only queues its worker and flag-fetch threads.
"""

from __future__ import annotations

import logging
import queue
import threading

logger = logging.getLogger(__name__)


class ThreadLauncher:
    """A daemon thread that starts the threads handed to ``launch``."""

    def __init__(self, name: str = "dbsql-telemetry-launcher") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[threading.Thread | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the launcher itself (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def launch(self, thread: threading.Thread) -> None:
        """Have ``thread`` started soon; returns at once."""
        self.start()
        self._queue.put(thread)

    def stop(self) -> None:
        """Start the threads already handed over, then end."""
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            thread = self._queue.get()
            if thread is None:
                return
            try:
                thread.start()
            except RuntimeError:
                # Interpreter shutting down: no new threads.
                logger.debug("Could not start %s", thread.name)
