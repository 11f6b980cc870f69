"""HTTP to one Databricks host: a urllib3 pool with the connection's TLS and proxy settings.

The transport only ever talks to its own host (it takes paths, not URLs, and does not follow
redirects) and never retries: every attempt is visible to the caller, which retries and feeds
the circuit breaker in one layer.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from opentelemetry_instrumentation_dbsql.driver_facts import ProxySettings, TlsSettings
from opentelemetry_instrumentation_dbsql.endpoint import Endpoint


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context for ``tls`` (slow: loads the trust store; call off the application thread)."""
    ctx = ssl.create_default_context()
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif not tls.verify_hostname:
        ctx.check_hostname = False
    if tls.ca_file:
        ctx.load_verify_locations(tls.ca_file)
    if tls.client_cert_file:
        ctx.load_cert_chain(tls.client_cert_file, tls.client_key_file, tls.client_key_password)
    return ctx


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, headers (lower-cased names) and body of one response."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class TransportError(Exception):
    """No HTTP response: connection refused or reset, TLS failure, timeout."""


class HttpTransport:
    """One urllib3 pool manager for one host, built lazily on first use."""

    def __init__(
        self,
        endpoint: Endpoint,
        tls: TlsSettings | None = None,
        proxy: ProxySettings | None = None,
        *,
        pool_maxsize: int = 2,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls or TlsSettings()
        self.proxy = proxy
        self._pool_maxsize = pool_maxsize
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._manager: urllib3.PoolManager | None = None
        self._closed = False

    def _uses_proxy(self) -> bool:
        if self.proxy is None:
            return False
        try:
            return not urllib.request.proxy_bypass(self.endpoint.host)
        except Exception:
            return True

    def _get_manager(self) -> urllib3.PoolManager:
        with self._lock:
            if self._closed:
                raise TransportError("transport closed")
            if self._manager is None:
                kwargs: dict[str, Any] = {
                    "num_pools": 2,
                    "maxsize": self._pool_maxsize,
                    "retries": False,
                    "block": False,
                }
                if self.endpoint.scheme == "https":
                    kwargs["ssl_context"] = ssl_context(self.tls)
                if self._uses_proxy():
                    assert self.proxy is not None
                    self._manager = urllib3.ProxyManager(
                        self.proxy.url, proxy_headers=dict(self.proxy.headers) or None, **kwargs
                    )
                else:
                    self._manager = urllib3.PoolManager(**kwargs)
            return self._manager

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout_s: float,
    ) -> HttpResponse:
        """One attempt; raises ``TransportError`` when there is no HTTP response."""
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        timeout_s = max(timeout_s, 0.001)
        timeout = urllib3.Timeout(
            total=timeout_s, connect=min(self._connect_timeout_s, timeout_s), read=timeout_s
        )
        try:
            manager = self._get_manager()
            response = manager.request(
                method,
                self.endpoint.base_url + path,
                body=body,
                headers=dict(headers),
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except (Urllib3HTTPError, OSError, ssl.SSLError) as exc:
            raise TransportError(type(exc).__name__) from exc
        return HttpResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            data=response.data or b"",
        )

    def close(self) -> None:
        """Close pooled connections; later requests fail with ``TransportError``."""
        with self._lock:
            self._closed = True
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.clear()
