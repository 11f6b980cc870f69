"""What the connector tells about a connection, read in one place, once, when it opened.

Spans (``hooks/connection.py``) and Databricks records (``export/sink.py``) both take their
connection facts from one ``DriverFacts``, so they cannot name a different host, backend or
auth mechanism for the same connection. Connector releases keep these facts in different
places (before 4.1 on the connection itself, without a ``session``); only this module knows.

Nothing here imports the driver: its classes are recognised by name. Nor anything from
``export/``: these are plain facts, and the exporter builds its wire format from them
(``export/connection_params.py``), so instrumenting never loads the exporter or its HTTP stack.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry_instrumentation_dbsql.endpoint import (
    Endpoint,
    endpoint_of,
    is_plain_address,
    split_host,
)
from opentelemetry_instrumentation_dbsql.options import parse_tristate


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The connection's TLS options (``_tls_no_verify``, ``_tls_trusted_ca_file``, ...)."""

    verify: bool = True
    verify_hostname: bool = True
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_key_password: str | None = None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """The proxy the connection's HTTP client uses, with its authentication headers."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReportedParameters:
    """Connection settings as the connector reports them in its own telemetry.

    Values are the ones it reports, not necessarily the ones in effect (``socket_timeout_s``
    is None for a fractional timeout, which the connector cannot report either).
    """

    # ``HostDetails``: ``server_hostname`` as given (or its host alone) and the session's port.
    host_url: str
    port: int
    socket_timeout_s: int | None = None
    azure_workspace_resource_id: str | None = None
    azure_tenant_id: str | None = None
    tls_no_verify: bool = False
    hybrid_disposition: bool = False
    pool_maxsize: int | None = None
    complex_types: bool = True  # Arrow-native complex types; the connector's default
    arrow_available: bool = False
    rows_per_block: int | None = None


@dataclass(frozen=True, slots=True)
class DriverFacts:
    """One open connection as the connector describes it."""

    session_id: str | None
    # The warehouse that statements run on, as spans and metrics name it.
    endpoint: Endpoint
    # ``server_hostname``: where the connector sends feature-flag and telemetry requests.
    workspace: Endpoint
    auth_mechanism: str | None  # PAT | OAUTH | OTHER; None without an auth provider
    auth_flow: str | None
    driver_version: str
    user_agent: str  # the connector's own User-Agent
    spog_headers: Mapping[str, str]
    proxy: ProxySettings | None
    tls: TlsSettings
    client_app_name: str | None
    # The rest of what the connector reports; backend, http path, auth and proxy are above.
    reported: ReportedParameters
    auth_provider: Any = field(default=None, repr=False, compare=False)


def connect_endpoint(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Endpoint:
    """The endpoint named by ``Connection.__init__`` arguments, before anything is opened."""
    server_hostname = args[0] if args else kwargs.get("server_hostname", "")
    http_path = args[1] if len(args) > 1 else kwargs.get("http_path", "")
    return endpoint_of(str(server_hostname), str(http_path), kwargs)


def read_facts(
    conn: Any, connect_kwargs: Mapping[str, Any], endpoint: Endpoint | None = None
) -> DriverFacts:
    """The facts of an open connection.

    ``connect_kwargs`` are the application's ``connect()`` arguments ({} for a connection
    opened before instrumentation); ``endpoint`` the one ``connect_endpoint`` gave for them
    (derived from the connection when None). The backend is the session's: the connector
    may open another one than the arguments asked for.
    """
    session = _session_of(conn)
    given = getattr(session, "host", None) or connect_kwargs.get("server_hostname") or ""
    raw_port = getattr(session, "port", None)
    if endpoint is None:
        endpoint = _endpoint_of_session(session, connect_kwargs, given)
    backend = _backend_of(session)
    if endpoint.backend != backend:
        endpoint = dataclasses.replace(endpoint, backend=backend)
    workspace = Endpoint.from_server_hostname(str(given), _opt_int(raw_port))
    provider = getattr(session, "auth_provider", None)
    mechanism = auth_mechanism(provider)
    flow = auth_flow(provider)
    proxy = _proxy_of(conn)
    version = _driver_version()
    user_agent = str(getattr(session, "useragent_header", "") or "")
    reported = _reported_parameters(connect_kwargs, _host_info(given, raw_port, workspace))
    return DriverFacts(
        session_id=_session_id(conn),
        endpoint=endpoint,
        workspace=workspace,
        auth_mechanism=mechanism,
        auth_flow=flow,
        driver_version=version,
        user_agent=user_agent or f"PyDatabricksSqlConnector/{version}",
        spog_headers=_spog_headers(session),
        proxy=proxy,
        tls=_tls_of(session, connect_kwargs),
        client_app_name=_app_name(connect_kwargs),
        reported=reported,
        auth_provider=provider,
    )


# --------------------------------------------------------------------------- connector layout


class _LegacySession:
    """What connector releases before 4.1 keep on the connection instead of a ``session``."""

    def __init__(self, conn: Any) -> None:
        backend = getattr(conn, "thrift_backend", None)
        self.host = getattr(conn, "host", None)
        self.port = getattr(conn, "port", None)
        self.auth_provider = getattr(backend, "_auth_provider", None)
        self.ssl_options = getattr(conn, "_ssl_options", None)
        self.http_path = getattr(conn, "http_path", None)
        self.catalog = getattr(conn, "catalog", None)
        self.schema = getattr(conn, "schema", None)


def _session_of(conn: Any) -> Any:
    session = getattr(conn, "session", None)
    return session if session is not None else _LegacySession(conn)


def _session_id(conn: Any) -> str | None:
    try:
        value = conn.get_session_id_hex()
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _backend_of(session: Any) -> str:
    # The session's, not the arguments': the connector reopens a session that a warehouse
    # refused over Thrift on the kernel. The kernel talks the Statement Execution API, so its
    # wire ``mode`` is SEA (export/wire_format.py); spans name the client that ran it.
    if getattr(session, "use_kernel", False):
        return "kernel"
    if getattr(session, "use_sea", False):
        return "sea"
    return "thrift"


def _endpoint_of_session(session: Any, kwargs: Mapping[str, Any], given: Any) -> Endpoint:
    options = {
        "catalog": getattr(session, "catalog", None),
        "schema": getattr(session, "schema", None),
        "_port": getattr(session, "port", None),
        "_connection_uri": kwargs.get("_connection_uri"),
    }
    http_path = getattr(session, "http_path", None) or kwargs.get("http_path") or ""
    return endpoint_of(str(given), str(http_path), options)


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


def _spog_headers(session: Any) -> Mapping[str, str]:
    get_spog = getattr(session, "get_spog_headers", None)
    if not callable(get_spog):
        return {}
    try:
        return dict(get_spog())
    except Exception:
        return {}


# --------------------------------------------------------------------------- auth


def _unwrap_provider(provider: Any) -> Any:
    # Token federation wraps the provider the application chose; that one names the mechanism.
    if _is_a(provider, "TokenFederationProvider"):
        return getattr(provider, "external_provider", provider)
    return provider


def _is_a(provider: Any, class_name: str) -> bool:
    """``isinstance`` against a connector class, by name (the driver is not imported)."""
    return any(cls.__name__ == class_name for cls in type(provider).__mro__)


def auth_mechanism(provider: Any) -> str | None:
    """PAT, OAUTH or OTHER for the connector's auth provider (None without one)."""
    provider = _unwrap_provider(provider)
    if provider is None:
        return None
    if _is_a(provider, "AccessTokenAuthProvider"):
        return "PAT"
    if _is_a(provider, "DatabricksOAuthProvider"):
        return "OAUTH"
    return "OTHER"


def auth_flow(provider: Any) -> str | None:
    """The ``AuthFlow`` value the connector reports for ``provider``."""
    provider = _unwrap_provider(provider)
    if _is_a(provider, "DatabricksOAuthProvider"):
        has_tokens = getattr(provider, "_access_token", None) and getattr(
            provider, "_refresh_token", None
        )
        return "TOKEN_PASSTHROUGH" if has_tokens else "BROWSER_BASED_AUTHENTICATION"
    if _is_a(provider, "ExternalAuthProvider"):
        return "CLIENT_CREDENTIALS"
    return None


# --------------------------------------------------------------------------- network settings


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


# --------------------------------------------------------------------------- reported values


def _opt_bool(value: Any) -> bool | None:
    try:
        return parse_tristate(value)
    except ValueError:
        return None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _short_str(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def _port_number(value: Any) -> int | None:
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        return None
    return value


def _host_info(given: Any, raw_port: Any, workspace: Endpoint) -> tuple[str, int]:
    """``HostDetails`` as the connector reports them: ``server_hostname`` as the application
    passed it, and the session's port (the ``_port`` kwarg, 443 by default). Anything beyond
    a scheme, host, port and trailing slash is not sent: then the host name alone."""
    host = given if isinstance(given, str) and is_plain_address(given) else workspace.host
    port = _port_number(raw_port)
    if port is None:
        port = split_host(str(given))[1] or _opt_int(raw_port) or 443
    return host, port


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


def _reported_parameters(
    kwargs: Mapping[str, Any], host_info: tuple[str, int]
) -> ReportedParameters:
    client_module = sys.modules.get("databricks.sql.client")
    complex_types = _opt_bool(kwargs.get("_use_arrow_native_complex_types"))
    return ReportedParameters(
        host_url=host_info[0],
        port=host_info[1],
        socket_timeout_s=_whole_seconds(kwargs.get("_socket_timeout")),
        azure_workspace_resource_id=_short_str(kwargs.get("azure_workspace_resource_id")),
        azure_tenant_id=_short_str(kwargs.get("azure_tenant_id")),
        tls_no_verify=bool(_opt_bool(kwargs.get("_tls_no_verify"))),
        hybrid_disposition=bool(_opt_bool(kwargs.get("use_hybrid_disposition"))),
        pool_maxsize=_opt_int(kwargs.get("_pool_maxsize")),
        complex_types=True if complex_types is None else complex_types,
        # The connector imports pyarrow optionally; what it found is what it reports.
        arrow_available=getattr(client_module, "pyarrow", None) is not None,
        rows_per_block=_opt_int(getattr(client_module, "DEFAULT_ARRAY_SIZE", None)),
    )
