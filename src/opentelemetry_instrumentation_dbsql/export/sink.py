"""``DatabricksTelemetrySink``: records in, Databricks frontend logs out, per connection host.

The instrumentor calls ``native_telemetry_kwargs`` before ``Connection.__init__`` runs,
``register_connection`` right after a connection opened, and ``unregister_connection`` when it
closed. The aggregation processor calls ``export`` from its worker and ``shutdown`` at the end.
None of these make a network call: fetches and POSTs run on the clients' own daemon threads.

At interpreter exit the hook of ``aggregation.at_exit`` first shuts the processors down (their
queued records reach ``export``, then their ``shutdown`` flushes this sink), then every sink
still open; a sink never shuts itself down at exit ahead of the processor feeding it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.metrics import Meter

from opentelemetry_instrumentation_dbsql.aggregation import at_exit
from opentelemetry_instrumentation_dbsql.aggregation.records import TelemetryRecord
from opentelemetry_instrumentation_dbsql.export.circuit_breaker import (
    DEFAULT_CONFIG,
    BreakerConfig,
    CircuitBreakerRegistry,
    parse_retry_after,
)
from opentelemetry_instrumentation_dbsql.export.feature_flags import (
    DEFAULT_TTL_S,
    FeatureFlagCache,
    FlagEntry,
    FlagLease,
    FlagRequester,
)
from opentelemetry_instrumentation_dbsql.export.http_transport import (
    Endpoint,
    HttpTransport,
    ProxySettings,
    TlsSettings,
)
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
    DriverConnectionParams,
    EncodedContext,
    HostInfo,
    encode_context,
    proto_log_literal,
)
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions, parse_tristate

logger = logging.getLogger(__name__)

SHUTDOWN_BUDGET_S = at_exit.EXIT_BUDGET_S
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


def _provider_class(provider: Any) -> str:
    return type(provider).__name__


def _unwrap_provider(provider: Any) -> Any:
    if _provider_class(provider) == "TokenFederationProvider":
        return getattr(provider, "external_provider", provider)
    return provider


def auth_mechanism(provider: Any) -> str | None:
    """PAT, OAUTH or OTHER for the driver's auth provider (None without one)."""
    if provider is None:
        return None
    name = _provider_class(_unwrap_provider(provider))
    if name == "AccessTokenAuthProvider":
        return "PAT"
    if name == "DatabricksOAuthProvider":
        return "OAUTH"
    return "OTHER"


def auth_flow(provider: Any) -> str | None:
    """The ``AuthFlow`` value the driver would report for ``provider``."""
    provider = _unwrap_provider(provider)
    name = _provider_class(provider) if provider is not None else ""
    if name == "DatabricksOAuthProvider":
        has_tokens = getattr(provider, "_access_token", None) and getattr(
            provider, "_refresh_token", None
        )
        return "TOKEN_PASSTHROUGH" if has_tokens else "BROWSER_BASED_AUTHENTICATION"
    if name == "ExternalAuthProvider":
        return "CLIENT_CREDENTIALS"
    return None


def _driver_version() -> str:
    module = sys.modules.get("databricks.sql")
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import version as dist_version

        return dist_version("databricks-sql-connector")
    except Exception:
        return "unknown"


def _opt_bool(value: Any) -> bool | None:
    try:
        return parse_tristate(value)
    except ValueError:
        return None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _proxy_of(conn: Any) -> ProxySettings | None:
    client = getattr(conn, "http_client", None)
    if client is None:
        return None
    try:
        if not client.using_proxy():
            return None
        uri = client.proxy_uri
    except Exception:
        return None
    if not isinstance(uri, str) or not uri:
        return None
    raw_headers = getattr(client, "_proxy_auth", None)
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(raw_headers, Mapping):
        headers = tuple((str(k), str(v)) for k, v in raw_headers.items())
    return ProxySettings(url=uri, headers=headers)


def _tls_of(session: Any, kwargs: Mapping[str, Any]) -> TlsSettings:
    ssl_options = getattr(session, "ssl_options", None)
    if ssl_options is not None:
        return TlsSettings(
            verify=bool(getattr(ssl_options, "tls_verify", True)),
            verify_hostname=bool(getattr(ssl_options, "tls_verify_hostname", True)),
            ca_file=getattr(ssl_options, "tls_trusted_ca_file", None),
            client_cert_file=getattr(ssl_options, "tls_client_cert_file", None),
            client_key_file=getattr(ssl_options, "tls_client_cert_key_file", None),
            client_key_password=getattr(ssl_options, "tls_client_cert_key_password", None),
        )
    return TlsSettings(
        verify=not bool(_opt_bool(kwargs.get("_tls_no_verify"))),
        ca_file=kwargs.get("_tls_trusted_ca_file"),
    )


def _endpoint_of(conn: Any, session: Any, kwargs: Mapping[str, Any]) -> Endpoint:
    host = getattr(session, "host", None) or kwargs.get("server_hostname") or ""
    port = _opt_int(getattr(session, "port", None))
    return Endpoint.from_server_hostname(str(host), port)


def host_key(endpoint: Endpoint) -> str:
    """Registry key of a host: lower-cased host, plus the port when it is not the default."""
    default = 443 if endpoint.scheme == "https" else 80
    if endpoint.port is None or endpoint.port == default:
        return endpoint.host
    return f"{endpoint.host}:{endpoint.port}"


# A ``server_hostname`` that is a workspace address: host (or [IPv6]), optional scheme and port.
_HOST_URL = re.compile(
    r"(?:https?://)?(?:[a-z0-9][a-z0-9.-]{0,252}|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?/?",
    re.IGNORECASE,
)


def _port_number(value: Any) -> int | None:
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        return None
    return value


def _host_info(session: Any, kwargs: Mapping[str, Any], endpoint: Endpoint) -> HostInfo:
    """``HostDetails`` as the connector reports them: ``server_hostname`` as the application
    passed it, and the ``_port`` kwarg (443 by default). Anything beyond a scheme, host, port and
    trailing slash is not sent: then the host name alone."""
    given = getattr(session, "host", None) or kwargs.get("server_hostname")
    host = given if isinstance(given, str) and _HOST_URL.fullmatch(given) else endpoint.host
    port = _port_number(getattr(session, "port", None))
    return HostInfo(host, port if port is not None else endpoint.port or 443)


def _whole_seconds(value: Any) -> int | None:
    """``_socket_timeout`` (seconds) as the integer the field holds; None for a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _app_name(kwargs: Mapping[str, Any]) -> str | None:
    """The name the application gives itself: ``user_agent_entry`` (or the deprecated
    ``_user_agent_entry``), which the connector also puts in its User-Agent."""
    value = kwargs.get("user_agent_entry")
    if value is None:
        value = kwargs.get("_user_agent_entry")
    name = _short_str(value)
    return name if name is not None and name.isprintable() else None


def _connection_params(
    conn: Any,
    session: Any,
    kwargs: Mapping[str, Any],
    endpoint: Endpoint,
    proxy: ProxySettings | None,
) -> DriverConnectionParams:
    provider = getattr(session, "auth_provider", None)
    use_sea = bool(getattr(session, "use_sea", False) or getattr(session, "use_kernel", False))
    proxy_info = None
    if proxy is not None:
        parts = urlsplit(proxy.url)
        if parts.hostname:
            try:
                proxy_port = parts.port or 8080
            except ValueError:
                proxy_port = 8080
            proxy_info = HostInfo(parts.hostname, proxy_port)
    client_module = sys.modules.get("databricks.sql.client")
    complex_types = _opt_bool(kwargs.get("_use_arrow_native_complex_types"))
    return DriverConnectionParams(
        http_path=str(getattr(session, "http_path", None) or kwargs.get("http_path") or ""),
        mode="SEA" if use_sea else "THRIFT",
        host_info=_host_info(session, kwargs, endpoint),
        auth_mech=auth_mechanism(provider),
        auth_flow=auth_flow(provider),
        # Seconds, as the connector sends it (the model's comment says milliseconds).
        socket_timeout=_whole_seconds(kwargs.get("_socket_timeout")),
        azure_workspace_resource_id=_short_str(kwargs.get("azure_workspace_resource_id")),
        azure_tenant_id=_short_str(kwargs.get("azure_tenant_id")),
        use_proxy=proxy is not None,
        use_system_proxy=proxy is not None,
        proxy_host_info=proxy_info,
        use_cf_proxy=False,
        allow_self_signed_support=bool(_opt_bool(kwargs.get("_tls_no_verify"))),
        use_system_trust_store=True,
        enable_arrow=getattr(client_module, "pyarrow", None) is not None,
        enable_direct_results=True,
        enable_sea_hybrid_results=bool(_opt_bool(kwargs.get("use_hybrid_disposition"))),
        http_connection_pool_size=_opt_int(kwargs.get("_pool_maxsize")),
        rows_fetched_per_block=_opt_int(getattr(client_module, "DEFAULT_ARRAY_SIZE", None)),
        async_poll_interval_millis=2000,
        support_many_parameters=True,
        enable_complex_datatype_support=True if complex_types is None else complex_types,
    )


def _short_str(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def _header_source(
    provider: Any, user_agent: str, extra: Mapping[str, str]
) -> Callable[[], dict[str, str]]:
    def headers() -> dict[str, str]:
        out = {"User-Agent": user_agent, **extra}
        if provider is not None:
            provider.add_headers(out)
        return out

    return headers


class _LegacySession:
    """What connector releases before 4.1 keep on the connection instead of a ``session``."""

    def __init__(self, conn: Any) -> None:
        backend = getattr(conn, "thrift_backend", None)
        self.host = getattr(conn, "host", None)
        self.port = getattr(conn, "port", None)
        self.auth_provider = getattr(backend, "_auth_provider", None)
        self.ssl_options = getattr(conn, "_ssl_options", None)
        self.http_path = getattr(conn, "http_path", None)


def _session_of(conn: Any) -> Any:
    session = getattr(conn, "session", None)
    return session if session is not None else _LegacySession(conn)


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


_live_sinks: weakref.WeakSet[DatabricksTelemetrySink] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_registered = False


def _after_fork_in_child() -> None:
    global _hooks_lock
    _hooks_lock = threading.Lock()
    global_stats().reset_lock()
    for sink in list(_live_sinks):
        sink._after_fork_in_child()


def _ensure_fork_hook() -> None:
    global _hooks_registered
    with _hooks_lock:
        if not _hooks_registered:
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
            _hooks_registered = True


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
        _live_sinks.add(self)
        _ensure_fork_hook()
        # Exit: after the processors, so that their queued records are still exported here.
        at_exit.register_sink(self)

    # -- driver kwargs ------------------------------------------------------------------------
    def native_telemetry_kwargs(
        self, connect_kwargs: Mapping[str, Any], options: OptionsLike = None
    ) -> dict[str, Any]:
        """See the module function ``native_telemetry_kwargs``."""
        return native_telemetry_kwargs(connect_kwargs, options)

    # -- connections --------------------------------------------------------------------------
    def register_connection(
        self, conn: Any, connect_kwargs: Mapping[str, Any], options: OptionsLike = None
    ) -> ConnectionHandle:
        """Register an open ``databricks.sql.client.Connection``; never touches the network.

        ``connect_kwargs`` are the caller's original kwargs (before ``native_telemetry_kwargs``).
        """
        session = _session_of(conn)
        kwargs = dict(connect_kwargs)
        endpoint = _endpoint_of(conn, session, kwargs)
        key = host_key(endpoint)
        proxy = _proxy_of(conn)
        driver_agent = str(getattr(session, "useragent_header", "") or "")
        if not driver_agent:
            driver_agent = f"PyDatabricksSqlConnector/{_driver_version()}"
        user_agent = f"{driver_agent} {USER_AGENT_PRODUCT}"
        spog: Mapping[str, str] = {}
        get_spog = getattr(session, "get_spog_headers", None)
        if callable(get_spog):
            try:
                spog = dict(get_spog())
            except Exception:
                spog = {}
        provider = getattr(session, "auth_provider", None)
        driver_version = _driver_version()
        context = ConnectionContext(
            driver_version=driver_version,
            user_agent=user_agent,
            params=_connection_params(conn, session, kwargs, endpoint, proxy),
            client_app_name=_app_name(kwargs),
        )
        decision = decide_connection(kwargs, options)
        session_id = str(conn.get_session_id_hex())
        headers = _header_source(provider, user_agent, spog)
        with self._lock:
            self._next_token += 1
            handle = ConnectionHandle(session_id, key, decision, context, self._next_token)
            if self._closed or decision.decision is Decision.OFF:
                handle.closed = self._closed
                self._sessions[session_id] = handle
                return handle
            client = self._clients.get(key)
            if client is None or not client.try_acquire(handle.token, headers):
                client = self._new_client(key, endpoint, _tls_of(session, kwargs), proxy)
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

    def unregister_connection(self, handle: ConnectionHandle) -> None:
        """The connection closed: release its client and flag entry. Idempotent."""
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
        endpoint = Endpoint.from_server_hostname(record.host, record.port)
        return self._latest_by_host.get(host_key(endpoint))

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
            _live_sinks.discard(self)
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
        parent's connections are not usable in the child; their records become unroutable.
        """
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
        if self.stats is not global_stats():
            self.stats.reset_lock()

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown`` started."""
        with self._lock:
            return self._closed
