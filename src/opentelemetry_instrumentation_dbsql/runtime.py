"""What an active instrumentation needs at call time: tracer, instruments, options, processor."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics import _internal as _metrics_internal
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span

from opentelemetry_instrumentation_dbsql import attachment
from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.aggregation.direct import DirectSpan
from opentelemetry_instrumentation_dbsql.aggregation.processor import (
    StatementAggregationProcessor,
)
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.metrics import instruments_for
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.query_text import QueryInfo, analyze, sanitize
from opentelemetry_instrumentation_dbsql.version import __version__

if TYPE_CHECKING:
    from opentelemetry_instrumentation_dbsql.connection_export import ConnectionExport

_UNKNOWN = object()
# A URL, or what urllib3 quotes after "url: " when its retries run out: pre-signed volume and
# CloudFetch links carry their signature in it.
_URL_IN_MESSAGE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+|(?<=url: )\S+")
_EMPTY_QUERY = QueryInfo(text=None, summary=None, operation_name=None, target=None)


def _is_noop_tracer_provider(provider: object) -> bool:
    return isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)


def _meter_provider_live(explicit: object, global_meter: object) -> bool:
    """Whether metrics have somewhere to go: an explicit provider, or a global one that was set
    (``global_meter`` is the API's module global, ``_UNKNOWN`` where this release lacks it)."""
    provider = explicit
    if provider is None:
        if global_meter is None:
            return False  # nothing set: the API's proxy
        provider = metrics.get_meter_provider()
        if global_meter is _UNKNOWN:
            return isinstance(provider, SdkMeterProvider)
    return not isinstance(provider, NoOpMeterProvider)


class Runtime:
    """The state of one ``instrument()`` (or ``instrument_connection()``) call."""

    def __init__(
        self,
        options: InstrumentationOptions,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        processor: StatementAggregationProcessor | None = None,
        exporter: ConnectionExport | None = None,
        global_enabled: bool = True,
    ) -> None:
        self.options = options
        self.global_enabled = global_enabled
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.tracer = trace.get_tracer(
            attr.INSTRUMENTATION_SCOPE, __version__, tracer_provider, schema_url=attr.SCHEMA_URL
        )
        self.instruments = instruments_for(meter_provider)
        self.processor = processor
        self.exporter = exporter
        # A sink of the user's own takes every record; the Databricks exporter decides per
        # connection (opt-in rules, server flag).
        self._user_sink = processor is not None and exporter is None
        # The processor joins the SDK pipeline only once records are wanted (a sink of the
        # user's, or a connection whose Databricks export is not ruled out): until then spans
        # cost it nothing.
        self._processor_wanted = self._user_sink
        self._lock = threading.Lock()
        self._attached_to: object | None = None
        # Whether an SDK (any non-no-op) tracer / meter provider is in use; they only turn on.
        # Without one, statements skip span creation, context attach and metric records.
        self.tracing_live = False
        self.metrics_live = False

    # --- is anybody listening? ---------------------------------------------------------------
    def _refresh(self) -> None:
        # The module globals behind the public getters, which read the environment on every
        # call: 0.11 us against 1.8 us for the two getters (benchmarks/bench_shortcuts.py),
        # paid by every statement of a process without an SDK (+5.9 us in all).
        global_tracer = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
        global_meter = getattr(_metrics_internal, "_METER_PROVIDER", _UNKNOWN)
        if (
            self._tracer_provider is None
            and self._meter_provider is None
            and global_tracer is None
            and global_meter is None
        ):
            return
        provider = self._tracer_provider or trace.get_tracer_provider()
        if not self.tracing_live and not _is_noop_tracer_provider(provider):
            self.tracing_live = True
            self._attach_processor(provider)
        if not self.metrics_live and _meter_provider_live(self._meter_provider, global_meter):
            self.metrics_live = True

    def otel_live(self) -> bool:
        """True once an SDK tracer or meter provider is in use (it can only become true)."""
        if self.tracing_live and self.metrics_live:
            return True
        self._refresh()
        return self.tracing_live or self.metrics_live

    def tracing_on(self) -> bool:
        """True once an SDK tracer provider is in use (checked again while it is not)."""
        if not self.tracing_live:
            self._refresh()
        return self.tracing_live

    def wants(self, export_active: bool) -> bool:
        """Whether a statement needs recording at all."""
        # otel_live() first: it also attaches the processor to the SDK provider once one exists.
        return self.otel_live() or export_active or self._user_sink

    def want_processor(self) -> None:
        """Records are wanted from now on: attach the processor if an SDK provider is live."""
        if self._processor_wanted:
            return
        self._processor_wanted = True
        if self.tracing_live:
            self._attach_processor(self._tracer_provider or trace.get_tracer_provider())

    def _attach_processor(self, provider: object) -> None:
        processor = self.processor
        if (
            processor is None
            or not self._processor_wanted
            or not isinstance(provider, SdkTracerProvider)
        ):
            return
        with self._lock:
            if self._attached_to is provider:
                return
            attachment.attach(provider, processor)
            self._attached_to = provider

    def detach_processor(self) -> None:
        """Take the processor off the provider it was attached to (at ``uninstrument()``)."""
        processor = self.processor
        with self._lock:
            self._attached_to = None
        if processor is not None:
            attachment.detach(processor)

    def processor_sees(self, span: Span) -> bool:
        """Whether the SDK hands this (recording) span to the aggregation processor itself."""
        return self._attached_to is not None

    # --- direct feed ---------------------------------------------------------------------------
    def wants_direct_feed(self) -> bool:
        """Whether spans the SDK does not hand to the processor must be fed to it directly."""
        return self.processor is not None and self._processor_wanted

    def feed_processor(self, span: DirectSpan) -> None:
        """Give the processor a span the SDK did not give it (sampled out, or no SDK)."""
        processor = self.processor
        if processor is None or not self._processor_wanted:
            return
        try:
            processor.on_end_direct(span)
        except Exception as exc:
            log_failure_once("direct-feed", exc)

    # --- query text ----------------------------------------------------------------------------
    def query_info(self, sql: object, parameterized: bool) -> QueryInfo:
        """Summary, operation and the text to record, per the capture option."""
        if not isinstance(sql, str):
            return _EMPTY_QUERY
        mode = self.options.capture_query_text
        sanitize_text = mode == "sanitized" and not parameterized
        info = analyze(sql, sanitize=sanitize_text, max_length=self.options.max_query_text_length)
        if mode == "off" and info.text is not None:
            return QueryInfo(
                text=None,
                summary=info.summary,
                operation_name=info.operation_name,
                target=info.target,
            )
        return info

    def safe_error_text(self, message: str | None) -> str | None:
        """An error message fit to record: sanitized unless raw query text was opted into.

        Cut to the query-text length before it is sanitized, as server messages can echo a
        whole statement: a failure costs at most what the text of a statement costs, and a
        message cut to 64 KiB or less is cached by ``analyze``, so a failure recorded on
        several spans (a download's and its statement's) is sanitized once.
        """
        if not message:
            return None
        limit = self.options.max_query_text_length
        message = _URL_IN_MESSAGE.sub("?", message[:limit])
        if self.options.capture_query_text == "raw":
            return message
        try:
            return sanitize(message)
        except Exception:
            return None


_active_lock = threading.Lock()
_active: Runtime | None = None


def active_runtime() -> Runtime | None:
    """The runtime of the global ``instrument()``, if any."""
    return _active


def set_active_runtime(runtime: Runtime | None) -> None:
    """Install or remove the global runtime."""
    global _active
    with _active_lock:
        _active = runtime
