"""Where a connection points: server address, port, warehouse id, namespace."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_WAREHOUSE_RE = re.compile(r"/(?:warehouses|endpoints)/([A-Za-z0-9_-]+)")
_CLUSTER_RE = re.compile(r"/protocolv1/o/\d+/([A-Za-z0-9_-]+)")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The server side of a connection, as recorded on spans and metrics."""

    address: str
    port: int
    http_path: str
    warehouse_id: str | None
    catalog: str | None
    schema: str | None
    backend: str
    # ``db.namespace``: ``catalog|schema`` with the parts that are known (every span names it).
    namespace: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [p for p in (self.catalog, self.schema) if p]
        object.__setattr__(self, "namespace", "|".join(parts) if parts else None)


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
    backend = "sea" if kwargs.get("use_sea") or kwargs.get("use_kernel") else "thrift"
    return Endpoint(
        address=address.lower(),
        port=port,
        http_path=str(http_path),
        warehouse_id=warehouse_id_of(str(http_path)),
        catalog=catalog if isinstance(catalog, str) else None,
        schema=schema if isinstance(schema, str) else None,
        backend=backend,
    )
