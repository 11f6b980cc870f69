"""``DriverConnectionParameters`` on the wire, from the facts the connector gave at connect.

The facts (``driver_facts``) are plain values; which of them the wire format names, and the
constants the connector always reports, are the exporter's business and live here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry_instrumentation_dbsql.driver_facts import DriverFacts, ProxySettings
from opentelemetry_instrumentation_dbsql.export.wire_format import (
    DriverConnectionParams,
    HostInfo,
    mode_for_backend,
)


def connection_params(facts: DriverFacts) -> DriverConnectionParams:
    """The ``DriverConnectionParameters`` the connector reports for this connection."""
    reported = facts.reported
    proxy = facts.proxy
    return DriverConnectionParams(
        http_path=facts.endpoint.http_path,
        mode=mode_for_backend(facts.endpoint.backend) or "THRIFT",
        host_info=HostInfo(reported.host_url, reported.port),
        auth_mech=facts.auth_mechanism,
        auth_flow=facts.auth_flow,
        # Seconds, as the connector sends it (its model's comment says milliseconds).
        socket_timeout=reported.socket_timeout_s,
        azure_workspace_resource_id=reported.azure_workspace_resource_id,
        azure_tenant_id=reported.azure_tenant_id,
        # The connector sends one flag for both: whether its HTTP client uses a proxy.
        use_proxy=proxy is not None,
        use_system_proxy=proxy is not None,
        proxy_host_info=proxy_host(proxy),
        use_cf_proxy=False,
        allow_self_signed_support=reported.tls_no_verify,
        # Constants: the connector sends the same values whatever the connection's settings.
        use_system_trust_store=True,
        enable_arrow=reported.arrow_available,
        enable_direct_results=True,
        enable_sea_hybrid_results=reported.hybrid_disposition,
        http_connection_pool_size=reported.pool_maxsize,
        rows_fetched_per_block=reported.rows_per_block,
        async_poll_interval_millis=2000,
        support_many_parameters=True,
        enable_complex_datatype_support=reported.complex_types,
    )


def proxy_host(proxy: ProxySettings | None) -> HostInfo | None:
    """``HostDetails`` of the proxy: its host and port (8080 when the URL names none)."""
    if proxy is None:
        return None
    parts = urlsplit(proxy.url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or 8080
    except ValueError:  # a port out of range or not a number
        port = 8080
    return HostInfo(parts.hostname, port)
