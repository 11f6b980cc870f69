"""Where a connection points: the one place that parses and normalises a host.

A ``server_hostname`` is read by ``split_host`` only; ``Endpoint`` is the one type for a server,
whether it names the warehouse that statements run on (spans and metrics) or the workspace
that feature flags and telemetry go to (the Databricks export).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_WAREHOUSE_RE = re.compile(r"/(?:warehouses|endpoints)/([A-Za-z0-9_-]+)")
_CLUSTER_RE = re.compile(r"/protocolv1/o/\d+/([A-Za-z0-9_-]+)")
# A ``server_hostname`` that is nothing but an address: host (or [IPv6]), optional scheme and
# port, optional trailing slash.
_PLAIN_ADDRESS = re.compile(
    r"(?:https?://)?(?:[a-z0-9][a-z0-9.-]{0,252}|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?/?",
    re.IGNORECASE,
)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server: scheme, host (lower-cased) and port; for a warehouse also its http path,
    ids and backend, as recorded on spans and metrics."""

    scheme: str
    host: str
    port: int
    http_path: str = ""
    warehouse_id: str | None = None
    catalog: str | None = None
    schema: str | None = None
    backend: str = "thrift"
    # ``db.namespace``: ``catalog|schema`` with the parts that are known (every span names it).
    namespace: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [p for p in (self.catalog, self.schema) if p]
        object.__setattr__(self, "namespace", "|".join(parts) if parts else None)

    @property
    def address(self) -> str:
        """``server.address``: the host."""
        return self.host

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]``, the port omitted when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _default_port(self.scheme):
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def key(self) -> str:
        """Registry key of the host: the host, plus the port when it is not the default."""
        if self.port == _default_port(self.scheme):
            return self.host
        return f"{self.host}:{self.port}"

    @classmethod
    def from_server_hostname(cls, server_hostname: str, port: int | None) -> Endpoint:
        """Parse ``server_hostname`` as the driver takes it (with or without a scheme).

        A port written in ``server_hostname`` wins; otherwise ``port`` (the ``_port`` kwarg),
        else the scheme's default.
        """
        host, written_port, scheme = split_host(server_hostname)
        return cls(scheme, host or "", written_port or port or _default_port(scheme))


def split_host(value: str) -> tuple[str | None, int | None, str]:
    """``(host, port, scheme)`` of a server hostname as the driver takes it, with or without a
    scheme (https by default): host lower-cased, None when there is none; port None when it
    is absent or not a valid port; scheme lower-cased."""
    text = value.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = None
    return parts.hostname, port, (parts.scheme or "https").lower()


def is_plain_address(value: str) -> bool:
    """Whether ``value`` is only an address (scheme, host, port, trailing slash): no
    credentials, path or query that must not leave the process."""
    return _PLAIN_ADDRESS.fullmatch(value) is not None


def warehouse_id_of(http_path: str) -> str | None:
    """The warehouse (or cluster) id in an http path, if it has one."""
    match = _WAREHOUSE_RE.search(http_path) or _CLUSTER_RE.search(http_path)
    return match.group(1) if match else None


def endpoint_of(server_hostname: str, http_path: str, kwargs: Mapping[str, Any]) -> Endpoint:
    """Derive the endpoint from ``connect()`` arguments without touching the network."""
    host, port, scheme = split_host(str(server_hostname))
    address = host or str(server_hostname)
    uri = kwargs.get("_connection_uri")
    if isinstance(uri, str) and uri:
        host, port, scheme = split_host(uri)
        address = host or uri
    explicit_port = kwargs.get("_port")
    if port is None and isinstance(explicit_port, int):
        port = explicit_port
    if port is None:
        port = 80 if scheme == "http" else 443
    catalog = kwargs.get("catalog")
    schema = kwargs.get("schema")
    backend = "kernel" if kwargs.get("use_kernel") else "sea" if kwargs.get("use_sea") else "thrift"
    return Endpoint(
        scheme=scheme,
        host=address.lower(),
        port=port,
        http_path=str(http_path),
        warehouse_id=warehouse_id_of(str(http_path)),
        catalog=catalog if isinstance(catalog, str) else None,
        schema=schema if isinstance(schema, str) else None,
        backend=backend,
    )
