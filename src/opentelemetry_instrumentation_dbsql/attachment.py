"""The aggregation processor on a user's ``TracerProvider``, so that it can be taken off again.

The SDK has no way to remove a span processor. Each provider gets one ``ProcessorSlot``
instead, added once; ``instrument()`` points it at the active runtime's processor and
``uninstrument()`` empties it, so an uninstrumented process does no work per span and holds no
reference to the processor it shut down.
"""

from __future__ import annotations

import threading
import weakref

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from opentelemetry_instrumentation_dbsql.log_once import log_failure_once


class ProcessorSlot(SpanProcessor):
    """Forwards ended spans to the processor it holds, if any."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do: the aggregation processor reads spans when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Hand the span to the processor in the slot."""
        target = self.target
        if target is not None:
            target.on_end(span)

    def shutdown(self) -> None:
        """The provider shuts down: so does the processor in the slot."""
        target = self.target
        if target is not None:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the processor in the slot."""
        target = self.target
        return target.force_flush(timeout_millis) if target is not None else True


_lock = threading.Lock()
_slots: weakref.WeakKeyDictionary[TracerProvider, ProcessorSlot] = weakref.WeakKeyDictionary()


def attach(provider: TracerProvider, processor: SpanProcessor) -> ProcessorSlot:
    """Put ``processor`` in ``provider``'s slot (adding the slot on first use)."""
    with _lock:
        slot = _slots.get(provider)
        if slot is None:
            slot = _slots[provider] = ProcessorSlot()
            provider.add_span_processor(slot)
        slot.target = processor
        return slot


def detach(processor: SpanProcessor) -> None:
    """Empty every slot that holds ``processor``."""
    try:
        with _lock:
            for slot in _slots.values():
                if slot.target is processor:
                    slot.target = None
    except Exception as exc:
        log_failure_once("detach", exc)
