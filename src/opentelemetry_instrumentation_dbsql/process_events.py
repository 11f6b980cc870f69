"""The process's own events, in one place: a fork, and the interpreter's exit.

Fork: one ``os.register_at_fork`` handler, registered once, resets in the child every part that
registered with ``after_fork`` (held weakly), in order of registration: a forked child has none
of its parent's threads, and locks its parent's threads held at the fork stay held.

Exit: one ``atexit`` hook, registered once, with one deadline.

A program that exits with connections still open leaves records in three places: statements
still open in a processor's table, records queued in its batcher, and events queued in the
Databricks exporter's per-host clients. The hook empties them in that order, every step bounded
by one deadline, ``EXIT_BUDGET_S`` after the hook started:

1. every live ``StatementAggregationProcessor``: ``shutdown_with_timeout(time left)`` emits its
   open statements as incomplete records, hands every queued batch to its record sink, waits for
   those exports, then shuts the sink down with the time left (the Databricks exporter: each
   host client sends what it holds, its transport closes, its worker stops). Several processors
   shut down side by side, so one whose sink hangs does not use up the others' time.
2. every sink registered here that is still open (a Databricks exporter without a processor in
   front of it): ``shutdown(time left)``.

The SDK has an exit hook of its own (``TracerProvider.shutdown``), which calls the processor's
``shutdown``; ``atexit`` runs hooks in reverse order of registration, so it may run before or
after this one. Either way the first to run does the whole sequence within the same budget (the
processor's ``shutdown`` defaults to it) and the later one finds everything closed and returns
at once. Nothing here needs an SDK provider: without one, this hook is the only one.

Forked children: ``os.fork`` copies the hook, so a child that exits normally (``sys.exit``, or
the end of the program) runs it on its own state (reset in the child through ``after_fork``).
``multiprocessing`` children started with ``fork`` or ``forkserver`` end with ``os._exit``,
which skips ``atexit``; they run ``multiprocessing``'s exit finalizers instead, so whenever
``multiprocessing`` is loaded the sequence is registered there too
(``multiprocessing.util.Finalize``). A process that calls ``os._exit`` itself, or is killed by a
signal, runs neither: what it held is lost.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any, Final, Protocol

_logger = logging.getLogger(__name__)

EXIT_BUDGET_S: Final = 5.0
# Of the budget, what the processors leave for their own bookkeeping after their deadline (a
# processor whose sink hung still counts and reports what it dropped before the hook returns).
_MARGIN_S: Final = 0.1
# multiprocessing runs finalizers of higher priority first: this one runs after the others.
_MP_EXIT_PRIORITY: Final = -10


class _Processor(Protocol):
    @property
    def is_shutdown(self) -> bool: ...

    def shutdown_with_timeout(self, timeout_s: float) -> bool: ...


class _Sink(Protocol):
    def shutdown(self, timeout_s: float) -> None: ...


class _Token:
    """Keeps the ``multiprocessing`` after-fork registration alive (it is held weakly)."""


_MP_TOKEN = _Token()
_lock = threading.Lock()
_processors: weakref.WeakSet[Any] = weakref.WeakSet()
_sinks: weakref.WeakSet[Any] = weakref.WeakSet()
_fork_resets: list[weakref.WeakMethod[Callable[[], None]]] = []
_hook_registered = False
_fork_hook_registered = False
_mp_after_fork_registered = False
_mp_finalizer_pid: int | None = None


def after_fork(reset: Callable[[], None]) -> None:
    """Call the bound method ``reset`` in every forked child (its owner is held weakly)."""
    with _lock:
        _fork_resets.append(weakref.WeakMethod(reset))
    _ensure_fork_hook()


def _ensure_fork_hook() -> None:
    global _fork_hook_registered
    with _lock:
        first = not _fork_hook_registered
        _fork_hook_registered = True
    if first and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_watch_multiprocessing, after_in_child=_after_fork_in_child)


def register_processor(processor: _Processor) -> None:
    """Have ``processor`` shut down (flushed into its sink) at interpreter exit; held weakly."""
    with _lock:
        _processors.add(processor)
    _ensure_hooks()


def register_sink(sink: _Sink) -> None:
    """Have ``sink`` shut down at interpreter exit, after every processor; held weakly."""
    with _lock:
        _sinks.add(sink)
    _ensure_hooks()


def run_exit_sequence(budget_s: float = EXIT_BUDGET_S) -> None:
    """Shut down every registered processor, then every registered sink, within ``budget_s``
    seconds. Never raises. The ``atexit`` hook; callable directly (tests).

    Shutting down twice is harmless: what is already shut down returns at once, and what
    another thread is shutting down is waited for (up to the deadline).
    """
    try:
        start = monotonic()
        deadline = start + max(0.0, budget_s)
        with _lock:
            processors = list(_processors)
            sinks = list(_sinks)
        margin = min(_MARGIN_S, 0.05 * max(0.0, budget_s))
        _shutdown_processors(processors, deadline - margin, deadline)
        for sink in sinks:
            try:
                sink.shutdown(max(0.0, deadline - monotonic()))
            except Exception:
                _logger.warning("telemetry sink shutdown at exit failed", exc_info=True)
        took = monotonic() - start
        if took > budget_s + 0.1:
            _logger.warning("telemetry exit sequence took %.2f s (budget %.1f s)", took, budget_s)
    except Exception:
        _logger.warning("telemetry exit sequence failed", exc_info=True)


def _shutdown_one(processor: _Processor, deadline: float) -> None:
    try:
        processor.shutdown_with_timeout(max(0.0, deadline - monotonic()))
    except Exception:
        _logger.warning("aggregation shutdown at exit failed", exc_info=True)


def _shutdown_processors(processors: list[Any], deadline: float, join_until: float) -> None:
    running = [p for p in processors if not p.is_shutdown]
    threads: list[threading.Thread] = []
    if len(running) > 1:  # side by side: a hung sink must not use up the others' time
        for processor in running:
            thread = threading.Thread(
                target=_shutdown_one, args=(processor, deadline), name="OtelDbsqlExit", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # no new threads this late (CPython 3.12 at exit)
                _shutdown_one(processor, deadline)
                continue
            threads.append(thread)
    elif running:
        _shutdown_one(running[0], deadline)
    for processor in processors:
        if processor not in running:  # closed already: wait for a shutdown under way
            _shutdown_one(processor, deadline)
    for thread in threads:
        thread.join(max(0.0, join_until - monotonic()))


# --------------------------------------------------------------------------- registration


def _ensure_hooks() -> None:
    global _hook_registered
    with _lock:
        first = not _hook_registered
        _hook_registered = True
    if first:
        atexit.register(run_exit_sequence)
        _ensure_fork_hook()
    _watch_multiprocessing()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    live: list[weakref.WeakMethod[Callable[[], None]]] = []
    for ref in _fork_resets:
        reset = ref()
        if reset is None:
            continue
        live.append(ref)
        try:
            reset()
        except Exception:
            _logger.debug("reset after fork failed", exc_info=True)
    _fork_resets[:] = live


def _watch_multiprocessing() -> None:
    """Once ``multiprocessing`` is loaded, make its children run the sequence too.

    Called when the hook is registered and before every fork (in the parent). Never raises.
    """
    global _mp_after_fork_registered
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    try:
        with _lock:
            first = not _mp_after_fork_registered
            _mp_after_fork_registered = True
        if first:
            # Runs in each multiprocessing child after it cleared the finalizers it inherited.
            util.register_after_fork(_MP_TOKEN, _in_multiprocessing_child)
        process = sys.modules.get("multiprocessing.process")
        if process is not None and process.parent_process() is not None:
            _register_mp_finalizer(util)  # instrumented inside a multiprocessing child
    except Exception:
        _logger.debug("could not register with multiprocessing", exc_info=True)


def _in_multiprocessing_child(_token: object) -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    try:
        _register_mp_finalizer(util)
    except Exception:
        _logger.debug("could not register a multiprocessing finalizer", exc_info=True)


def _register_mp_finalizer(util: Any) -> None:
    global _mp_finalizer_pid
    pid = os.getpid()
    with _lock:
        if _mp_finalizer_pid == pid:
            return
        _mp_finalizer_pid = pid
    util.Finalize(None, run_exit_sequence, exitpriority=_MP_EXIT_PRIORITY)
