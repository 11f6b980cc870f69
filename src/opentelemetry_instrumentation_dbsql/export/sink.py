"""``DatabricksTelemetrySink``: records in, Databricks frontend logs out, per connection host.

The instrumentor calls ``native_telemetry_kwargs`` before ``Connection.__init__`` runs,
``register_connection`` right after a connection opened, and ``unregister_connection`` when it
closed. The aggregation processor calls ``export`` from its worker and ``shutdown`` at the end.
None of these make a network call: fetches and POSTs run on the clients' own daemon threads.

At interpreter exit the hook of ``process_events`` first shuts the processors down (their
queued records reach ``export``, then their ``shutdown`` flushes this sink), then every sink
still open; a sink never shuts itself down at exit ahead of the processor feeding it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import Meter

from opentelemetry_instrumentation_dbsql import process_events
from opentelemetry_instrumentation_dbsql.aggregation.records import TelemetryRecord
from opentelemetry_instrumentation_dbsql.connection_export import ExportRegistration
from opentelemetry_instrumentation_dbsql.driver_facts import (
    DriverFacts,
    ProxySettings,
    TlsSettings,
    read_facts,
)
from opentelemetry_instrumentation_dbsql.endpoint import Endpoint
from opentelemetry_instrumentation_dbsql.export.circuit_breaker import (
    DEFAULT_CONFIG,
    BreakerConfig,
    CircuitBreakerRegistry,
    parse_retry_after,
)
from opentelemetry_instrumentation_dbsql.export.connection_params import connection_params
from opentelemetry_instrumentation_dbsql.export.feature_flags import (
    DEFAULT_TTL_S,
    FeatureFlagCache,
    FlagEntry,
    FlagLease,
    FlagRequester,
)
from opentelemetry_instrumentation_dbsql.export.http_transport import HttpTransport
from opentelemetry_instrumentation_dbsql.export.launcher import ThreadLauncher
from opentelemetry_instrumentation_dbsql.export.opt_in import (
    KW_ENABLE,
    KW_FORCE,
    Decision,
    OptInDecision,
    decide_connection,
)
from opentelemetry_instrumentation_dbsql.export.stats import (
    DropReason,
    ExportStats,
    global_stats,
    register_export_metrics,
)
from opentelemetry_instrumentation_dbsql.export.telemetry_client import (
    ClientConfig,
    ClientState,
    HostTelemetryClient,
)
from opentelemetry_instrumentation_dbsql.export.wire_format import (
    USER_AGENT_PRODUCT,
    ConnectionContext,
    EncodedContext,
    encode_context,
    proto_log_literal,
)
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions

logger = logging.getLogger(__name__)

SHUTDOWN_BUDGET_S = process_events.EXIT_BUDGET_S
_TOMBSTONES = 4096

# The resolved ``instrument()`` options; None: none given (defaults, no environment).
OptionsLike = InstrumentationOptions | None


# --------------------------------------------------------------------------- options


def native_telemetry_kwargs(
    connect_kwargs: Mapping[str, Any], options: OptionsLike = None
) -> dict[str, Any]:
    """Kwargs to merge into ``databricks.sql.connect`` so the driver's own telemetry is off.

    ``enable_telemetry=False`` (with ``force_enable_telemetry=False``) makes the driver skip its
    blocking feature-flag fetch in ``connect()`` and use its no-op telemetry client. Empty when
    the option ``keep_native_telemetry`` is set. ``connect_kwargs`` is not modified; pass the
    original kwargs to ``register_connection``, which reads the user's choice from them.
    """
    if options is not None and options.keep_native_telemetry:
        return {}
    # Explicitly off for this connection: this exporter never runs for it, so the driver's
    # own telemetry is left as the user configured it.
    if decide_connection(connect_kwargs, options).decision is Decision.OFF:
        return {}
    return {KW_ENABLE: False, KW_FORCE: False}


# --------------------------------------------------------------------------- connections


def _header_source(
    provider: Any, user_agent: str, extra: Mapping[str, str]
) -> Callable[[], dict[str, str]]:
    def headers() -> dict[str, str]:
        out = {"User-Agent": user_agent, **extra}
        if provider is not None:
            provider.add_headers(out)
        return out

    return headers


class ConnectionHandle:
    """One registered connection, returned by ``register_connection``."""

    def __init__(
        self,
        session_id: str,
        host_key: str,
        decision: OptInDecision,
        context: ConnectionContext,
        token: int,
    ) -> None:
        self.session_id = session_id
        self.host_key = host_key
        self.decision = decision
        self.context = context
        self._encoded: EncodedContext | None = None
        self.token = token
        self.client: HostTelemetryClient | None = None
        self.flag_lease: FlagLease | None = None
        # Outlives the lease: records that arrive after close still obey the flag.
        self.flag: FlagEntry | None = None
        self.closed = False

    @property
    def encoded_context(self) -> EncodedContext:
        """``context`` encoded, on first use (by the export worker, not by ``connect()``)."""
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = encode_context(self.context)
        return encoded

    @property
    def export_possible(self) -> bool:
        """Whether the opt-in rules leave export possible (the server's flag may still say no)."""
        return self.decision.decision is not Decision.OFF

    @property
    def may_export(self) -> bool:
        """False when this connection's records are certain to be discarded."""
        if self.closed or self.decision.decision is Decision.OFF:
            return False
        flag = self.flag
        return flag is None or flag.peek() is not False

    def __repr__(self) -> str:
        return (
            f"ConnectionHandle(host={self.host_key!r}, decision={self.decision.decision.value}, "
            f"by={self.decision.decided_by!r}, closed={self.closed})"
        )


# --------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class SinkConfig:
    """Timings and limits of a sink; the defaults are the production values."""

    client: ClientConfig = field(default_factory=ClientConfig)
    breaker: BreakerConfig = DEFAULT_CONFIG
    flag_ttl_s: float = DEFAULT_TTL_S
    flag_error_retry_s: float = 60.0
    flag_fetch_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0


class DatabricksTelemetrySink:
    """Routes records to per-host telemetry clients; implements ``RecordSink``."""

    def __init__(
        self,
        *,
        config: SinkConfig | None = None,
        stats: ExportStats | None = None,
        meter: Meter | None = None,
        breakers: CircuitBreakerRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SinkConfig()
        self.stats = stats if stats is not None else global_stats()
        self._clock = clock
        self.breakers = (
            breakers
            if breakers is not None
            else CircuitBreakerRegistry(self.config.breaker, clock=clock)
        )
        # Started now, at instrument() time, so that connect() never waits for a thread start.
        self._launcher = ThreadLauncher()
        self._launcher.start()
        self.flags = FeatureFlagCache(
            default_ttl_s=self.config.flag_ttl_s,
            error_retry_s=self.config.flag_error_retry_s,
            fetch_timeout_s=self.config.flag_fetch_timeout_s,
            clock=clock,
            launcher=self._launcher,
        )
        self._lock = threading.Lock()
        self._clients: dict[str, HostTelemetryClient] = {}
        self._sessions: dict[str, ConnectionHandle] = {}
        self._closed_sessions: OrderedDict[str, ConnectionHandle] = OrderedDict()
        # Retired clients still closing (one may hold records waiting for the flag).
        self._retiring: list[HostTelemetryClient] = []
        self._latest_by_host: dict[str, ConnectionHandle] = {}
        self._next_token = 0
        self._closed = False
        self._shutdown_done = threading.Event()
        if meter is not None:
            register_export_metrics(meter, self.stats)
        process_events.after_fork(self._after_fork_in_child)
        # Exit: after the processors, so that their queued records are still exported here.
        process_events.register_sink(self)

    # -- driver kwargs ------------------------------------------------------------------------
    def native_telemetry_kwargs(
        self, connect_kwargs: Mapping[str, Any], options: OptionsLike = None
    ) -> dict[str, Any]:
        """See the module function ``native_telemetry_kwargs``."""
        return native_telemetry_kwargs(connect_kwargs, options)

    # -- connections --------------------------------------------------------------------------
    def register_connection(
        self,
        conn: Any,
        connect_kwargs: Mapping[str, Any],
        options: OptionsLike = None,
        facts: DriverFacts | None = None,
    ) -> ConnectionHandle:
        """Register an open ``databricks.sql.client.Connection``; never touches the network.

        ``connect_kwargs`` are the caller's original kwargs (before ``native_telemetry_kwargs``);
        ``facts`` the connection's facts when the caller read them already (the spans have).
        """
        kwargs = dict(connect_kwargs)
        if facts is None:
            facts = read_facts(conn, kwargs)
        if facts.session_id is None:
            raise ValueError("connection without a session id")
        session_id = facts.session_id
        endpoint = facts.workspace
        key = endpoint.key
        user_agent = f"{facts.user_agent} {USER_AGENT_PRODUCT}"
        driver_version = facts.driver_version
        context = ConnectionContext(
            driver_version=driver_version,
            user_agent=user_agent,
            params=connection_params(facts),
            client_app_name=facts.client_app_name,
        )
        decision = decide_connection(kwargs, options)
        headers = _header_source(facts.auth_provider, user_agent, facts.spog_headers)
        with self._lock:
            self._next_token += 1
            handle = ConnectionHandle(session_id, key, decision, context, self._next_token)
            if self._closed or decision.decision is Decision.OFF:
                handle.closed = self._closed
                self._sessions[session_id] = handle
                return handle
            client = self._clients.get(key)
            if client is None or not client.try_acquire(handle.token, headers):
                client = self._new_client(key, endpoint, facts.tls, facts.proxy)
                client.try_acquire(handle.token, headers)
                self._clients[key] = client
                client.start()
            handle.client = client
            if decision.decision is Decision.FLAG_DECIDES:
                # Before the handle is published: its records must find the flag entry.
                requester = FlagRequester(client.transport, headers, driver_version)
                handle.flag_lease = self.flags.acquire(key, requester)
                handle.flag = handle.flag_lease.entry
            self._sessions[session_id] = handle
            self._latest_by_host[key] = handle
        return handle

    def _new_client(
        self, key: str, endpoint: Endpoint, tls: TlsSettings, proxy: ProxySettings | None
    ) -> HostTelemetryClient:
        transport = HttpTransport(
            endpoint, tls, proxy, connect_timeout_s=self.config.connect_timeout_s
        )
        return HostTelemetryClient(
            key,
            transport,
            self.breakers.get(key),
            self.stats,
            self.config.client,
            clock=self._clock,
            retry_after_parser=parse_retry_after,
            on_idle=self._retire,
            launcher=self._launcher,
        )

    def _retire(self, client: HostTelemetryClient) -> None:
        with self._lock:
            if client.retire_if_idle():
                if self._clients.get(client.host_key) is client:
                    del self._clients[client.host_key]
                self._retiring = [c for c in self._retiring if c.state is not ClientState.CLOSED]
                self._retiring.append(client)

    def unregister_connection(self, handle: ExportRegistration) -> None:
        """The connection closed: release its client and flag entry. Idempotent."""
        if not isinstance(handle, ConnectionHandle):
            return
        with self._lock:
            if handle.closed and handle.client is None and handle.flag_lease is None:
                return
            handle.closed = True
            client, handle.client = handle.client, None
            lease, handle.flag_lease = handle.flag_lease, None
            if self._sessions.get(handle.session_id) is handle:
                del self._sessions[handle.session_id]
                self._closed_sessions[handle.session_id] = handle
                while len(self._closed_sessions) > _TOMBSTONES:
                    self._closed_sessions.popitem(last=False)
            if client is not None:
                client.release(handle.token)
        if lease is not None:
            self.flags.release(lease)

    def client_for(self, key: str) -> HostTelemetryClient | None:
        """The live client of a host key (tests and diagnostics)."""
        with self._lock:
            return self._clients.get(key)

    # -- records ------------------------------------------------------------------------------
    def _route(self, record: TelemetryRecord) -> ConnectionHandle | None:
        sid = record.session_id
        if sid is not None:
            handle = self._sessions.get(sid) or self._closed_sessions.get(sid)
            if handle is not None:
                return handle
        key = Endpoint.from_server_hostname(record.host, record.port).key
        return self._latest_by_host.get(key)

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        """Serialize and queue one batch; returns at once (the POST happens on a worker)."""
        if not records:
            return
        groups: dict[
            tuple[int, Decision], tuple[ConnectionHandle, HostTelemetryClient, list[str]]
        ] = {}
        with self._lock:
            if self._closed:
                self.stats.record_dropped(DropReason.SHUTDOWN, len(records))
                return
            routed: list[tuple[TelemetryRecord, ConnectionHandle, HostTelemetryClient]] = []
            for record in records:
                handle = self._route(record)
                if handle is None:
                    self.stats.record_dropped(DropReason.UNROUTABLE)
                    continue
                if handle.decision.decision is Decision.OFF:
                    self.stats.record_dropped(DropReason.DISABLED)
                    continue
                client = self._clients.get(handle.host_key)
                if client is None:
                    self.stats.record_dropped(DropReason.UNROUTABLE)
                    continue
                routed.append((record, handle, client))
        for record, handle, client in routed:
            try:
                proto_log = proto_log_literal(record, handle.encoded_context)
            except Exception:
                logger.debug("Telemetry record not encodable", exc_info=True)
                self.stats.record_dropped(DropReason.ENCODE_ERROR)
                continue
            group_key = (id(client), handle.decision.decision)
            group = groups.get(group_key)
            if group is None:
                group = (handle, client, [])
                groups[group_key] = group
            group[2].append(proto_log)
        for handle, client, logs in groups.values():
            flag = None
            if handle.decision.decision is Decision.FLAG_DECIDES:
                flag = handle.flag or self.flags.get(handle.host_key)
                if flag is None:
                    self.stats.record_dropped(DropReason.DISABLED, len(logs))
                    continue
            client.enqueue(logs, flag)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every client has sent what it holds (tests); True when all are idle."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            clients = list(self._clients.values())
        ok = True
        for client in clients:
            ok = client.wait_idle(max(deadline - time.monotonic(), 0.0)) and ok
        return ok

    # -- shutdown -----------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = SHUTDOWN_BUDGET_S) -> None:
        """Flush every client and stop; returns within ``timeout_s`` even if endpoints hang.

        Idempotent and safe to call from several threads: later callers wait (up to their own
        ``timeout_s``) for the first one to finish. Records dropped meanwhile (an endpoint that
        does not answer in time) are logged as one warning and counted in ``stats``.
        """
        start = time.monotonic()
        with self._lock:
            first = not self._closed
            self._closed = True
            clients = list(self._clients.values())
            clients.extend(c for c in self._retiring if c.state is not ClientState.CLOSED)
            self._clients.clear()
            self._retiring = []
            handles = list(self._sessions.values())
        if not first:
            self._shutdown_done.wait(max(timeout_s, 0.0))
            return
        dropped_before = self.stats.snapshot().dropped
        unanswered = 0
        try:
            self.flags.close()
            # Keep a little of the budget for the bookkeeping after the joins.
            budget = max(timeout_s * 0.95 - 0.01, 0.0)
            deadline = self._clock() + budget
            for client in clients:
                client.begin_close(deadline)
            for client in clients:
                if not client.join(budget - (time.monotonic() - start)):
                    unanswered += client.unanswered
            for handle in handles:
                if handle.flag_lease is not None:
                    self.flags.release(handle.flag_lease)
                    handle.flag_lease = None
                handle.client = None
                handle.closed = True
        finally:
            self._launcher.stop()
            self._shutdown_done.set()
            self._report_shutdown_drops(dropped_before, unanswered, timeout_s)

    def _report_shutdown_drops(
        self, before: Mapping[str, int], unanswered: int, timeout_s: float
    ) -> None:
        """One warning when shutting down lost records (or may have: ``unanswered`` records
        were sent but not answered in time, and their answer is lost if the process ends)."""
        try:
            after = self.stats.snapshot().dropped
            lost = {
                reason: count - before.get(reason, 0)
                for reason, count in after.items()
                # Records the server's flag turned away are not lost.
                if reason != DropReason.DISABLED.value and count > before.get(reason, 0)
            }
            parts = []
            if lost:
                detail = ", ".join(f"{k}={v}" for k, v in lost.items())
                parts.append(f"{sum(lost.values())} records not sent ({detail})")
            if unanswered:
                parts.append(f"{unanswered} records sent without an answer in time")
            if parts:
                logger.warning(
                    "Databricks telemetry shutdown (%.1f s budget): %s", timeout_s, "; ".join(parts)
                )
        except Exception:
            logger.debug("Telemetry shutdown report failed", exc_info=True)

    def _after_fork_in_child(self) -> None:
        """A forked child has none of the parent's threads: start over with empty state.

        Locks may have been held by parent threads at the fork, so they are replaced too. The
        parent's connections are not usable in the child; their records become unroutable. A
        sink shut down before the fork stays shut down.
        """
        if self._closed:
            self._lock = threading.Lock()
            return
        self._lock = threading.Lock()
        self._clients = {}
        self._sessions = {}
        self._closed_sessions = OrderedDict()
        self._retiring = []
        self._latest_by_host = {}
        self._shutdown_done = threading.Event()
        self._launcher = ThreadLauncher()
        self.flags = FeatureFlagCache(
            default_ttl_s=self.config.flag_ttl_s,
            error_retry_s=self.config.flag_error_retry_s,
            fetch_timeout_s=self.config.flag_fetch_timeout_s,
            clock=self._clock,
            launcher=self._launcher,
        )
        self.breakers = CircuitBreakerRegistry(self.config.breaker, clock=self._clock)

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown`` started."""
        with self._lock:
            return self._closed
