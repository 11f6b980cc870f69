"""The live statements: keyed by statement id, bounded in count, evicted when idle.

Every method takes the table lock once and does constant work under it (except the sweeps,
which are bounded per call and run on the worker, and ``close_session``, which is linear in the
statements of that one session). States are returned to the caller, which hands them to the
batcher after the lock is released.

Out-of-order arrival: a statement completes when both its STATEMENT span and (if the
STATEMENT span said ``databricks.result.open``) its RESULT span have ended, in either order.
A RESULT span seen first is kept as a partial state until its STATEMENT span arrives. A CANCEL
span seen before its STATEMENT span is remembered (bounded) and applied when it arrives. Spans
for a statement that completed recently (bounded memory of completed ids) are counted as late
and ignored, so a straggler never produces a second record.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from opentelemetry_instrumentation_dbsql.aggregation.records import (
    COMPLETION_CONNECTION_CLOSED,
    COMPLETION_EVICTED_CAPACITY,
    COMPLETION_EVICTED_IDLE,
    COMPLETION_SHUTDOWN,
)
from opentelemetry_instrumentation_dbsql.aggregation.statement_state import StatementState

RECENT_CAPACITY = 4096  # completed statement ids remembered (x1 to x2) to ignore stragglers
EARLY_CANCEL_CAPACITY = 1024  # CANCEL spans waiting for their STATEMENT span
SWEEP_LIMIT = 1024  # states evicted per lock hold during a sweep

Completion = tuple[StatementState | None, StatementState | None]  # (completed, evicted)
_NOTHING: Completion = (None, None)


class StatementTable:
    """Live statement states and the bookkeeping around them (thread-safe)."""

    def __init__(self, max_live: int) -> None:
        self._max_live = max_live
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._live: OrderedDict[str, StatementState] = OrderedDict()
        self._by_session: dict[str, dict[str, None]] = {}
        # Completed ids, remembered in two generations of RECENT_CAPACITY: a set insert per
        # completion, and between RECENT_CAPACITY and twice that many ids remembered.
        self._recent: set[str] = set()
        self._recent_old: set[str] = set()
        self._cancels: OrderedDict[str, None] = OrderedDict()
        self._closed = False
        self.evicted_idle = 0
        self.evicted_capacity = 0
        self.late_spans = 0

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock and empty state (never acquires the old lock)."""
        self._init_runtime()

    def __len__(self) -> int:
        return len(self._live)

    # --- span events (application threads) ---------------------------------------------------

    def _first_sight(self, fresh: StatementState) -> Completion | None:
        """The first span seen for a key with no live state (called under the lock): a late
        duplicate, or a statement arriving after shutdown, ends here; None means go on."""
        key = fresh.key
        if key in self._recent or key in self._recent_old:
            self.late_spans += 1
            return _NOTHING
        if self._cancels and self._cancels.pop(key, 0) is None:
            fresh.cancelled = True
        if self._closed:
            fresh.complete = False
            fresh.reason = COMPLETION_SHUTDOWN
            return fresh, None
        return None

    def statement_ended(self, fresh: StatementState, result_open: bool) -> Completion:
        """A STATEMENT span ended; ``fresh`` holds it (built by the caller, outside the lock).

        Returns (completed state, state evicted for capacity).
        """
        key = fresh.key
        with self._lock:
            state = self._live.get(key)
            if state is None:
                seen = self._first_sight(fresh)
                if seen is not None:
                    return seen
                if not result_open:
                    self._remember(key)
                    return fresh, None
                return None, self._insert(fresh)
            if state.stmt is not None:
                self.late_spans += 1  # the same STATEMENT span fed twice
                return _NOTHING
            # A live state without a STATEMENT span holds a RESULT span: complete.
            state.stmt = fresh.stmt
            state.stmt_start = fresh.stmt_start
            state.stmt_end = fresh.stmt_end
            state.terminal = state.terminal or fresh.terminal
            self._remove(state)
            if state.session_id is None:
                state.session_id = fresh.session_id
            self._remember(key)
            return state, None

    def result_ended(self, fresh: StatementState) -> Completion:
        """A RESULT span ended; ``fresh`` holds it in its ``result*`` fields.

        Returns (completed state, state evicted for capacity).
        """
        key = fresh.key
        with self._lock:
            state = self._live.get(key)
            if state is None:
                seen = self._first_sight(fresh)
                if seen is not None:
                    return seen
                return None, self._insert(fresh)  # wait for the STATEMENT span
            if state.result is not None or state.stmt is None:
                self.late_spans += 1  # the same RESULT span fed twice
                return _NOTHING
            state.result = fresh.result
            state.result_start = fresh.result_start
            state.result_end = fresh.result_end
            state.terminal = state.terminal or fresh.terminal
            self._remove(state)
            if state.session_id is None:
                state.session_id = fresh.session_id
            self._remember(key)
            return state, None

    def cancel(self, key: str, now: float) -> None:
        """A CANCEL span ended: mark the statement cancelled, now or when it shows up."""
        with self._lock:
            state = self._live.get(key)
            if state is not None:
                state.cancelled = True
                state.last_seen = now
                self._live.move_to_end(key)
            elif key not in self._recent and key not in self._recent_old:
                cancels = self._cancels
                cancels[key] = None
                if len(cancels) > EARLY_CANCEL_CAPACITY:
                    cancels.popitem(last=False)

    def close_session(self, session_id: str) -> list[StatementState]:
        """A DELETE_SESSION span ended: complete the session's live statements."""
        with self._lock:
            keys = self._by_session.pop(session_id, None)
            if not keys:
                return []
            done = []
            for key in keys:
                state = self._live.pop(key, None)
                if state is not None:
                    state.reason = COMPLETION_CONNECTION_CLOSED
                    self._remember(key)
                    done.append(state)
            return done

    # --- worker ------------------------------------------------------------------------------

    def sweep_idle(self, now: float, idle_timeout_s: float) -> list[StatementState]:
        """Evict (as incomplete) up to ``SWEEP_LIMIT`` states idle for ``idle_timeout_s``."""
        cutoff = now - idle_timeout_s
        evicted: list[StatementState] = []
        with self._lock:
            live = self._live
            while live and len(evicted) < SWEEP_LIMIT:
                state = live[next(iter(live))]
                if state.last_seen > cutoff:
                    break
                live.popitem(last=False)
                self._unindex(state)
                self._remember(state.key)
                state.complete = False
                state.reason = COMPLETION_EVICTED_IDLE
                evicted.append(state)
            self.evicted_idle += len(evicted)
            if len(evicted) < SWEEP_LIMIT:
                empty = [sid for sid, keys in self._by_session.items() if not keys]
                for sid in empty:
                    del self._by_session[sid]
        return evicted

    def close(self) -> list[StatementState]:
        """Stop tracking: return every live state as incomplete (``shutdown``)."""
        with self._lock:
            self._closed = True
            states = list(self._live.values())
            self._live = OrderedDict()
            self._by_session = {}
            self._cancels = OrderedDict()
        for state in states:
            state.complete = False
            state.reason = COMPLETION_SHUTDOWN
        return states

    # --- helpers (lock held) -----------------------------------------------------------------

    def _insert(self, state: StatementState) -> StatementState | None:
        live = self._live
        evicted = None
        if len(live) >= self._max_live:
            _, evicted = live.popitem(last=False)
            self._unindex(evicted)
            self._remember(evicted.key)
            evicted.complete = False
            evicted.reason = COMPLETION_EVICTED_CAPACITY
            self.evicted_capacity += 1
        live[state.key] = state
        if state.session_id is not None:
            self._index(state)
        return evicted

    def _index(self, state: StatementState) -> None:
        session_id = state.session_id
        if session_id is None:
            return
        keys = self._by_session.get(session_id)
        if keys is None:
            keys = self._by_session[session_id] = {}
        keys[state.key] = None

    def _unindex(self, state: StatementState) -> None:
        session_id = state.session_id
        if session_id is None:
            return
        keys = self._by_session.get(session_id)
        if keys is not None:
            keys.pop(state.key, None)  # an emptied entry is dropped by the next sweep

    def _remove(self, state: StatementState) -> None:
        del self._live[state.key]
        self._unindex(state)

    def _remember(self, key: str) -> None:
        recent = self._recent
        recent.add(key)
        if len(recent) >= RECENT_CAPACITY:
            self._recent_old = recent
            self._recent = set()
