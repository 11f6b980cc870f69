"""The typed seam between the driver hooks and the Databricks exporter.

The hooks ask the exporter two things about a connection (which ``connect()`` arguments turn the
connector's own telemetry off, and whether the connection's statements may be exported) and
tell it when the connection opens and closes. They never look inside its decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry_instrumentation_dbsql.driver_facts import DriverFacts
    from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions


class ExportRegistration(Protocol):
    """One connection registered with the exporter."""

    @property
    def export_possible(self) -> bool:
        """Whether the opt-in rules leave export possible (the server's flag may still say no)."""

    @property
    def may_export(self) -> bool:
        """False when this connection's records are certain to be discarded now."""


class ConnectionExport(Protocol):
    """What the hooks need of the Databricks exporter."""

    def native_telemetry_kwargs(
        self, connect_kwargs: Mapping[str, Any], options: InstrumentationOptions | None
    ) -> dict[str, Any]:
        """Arguments to merge into ``connect()`` so the connector's own telemetry stays off."""

    def register_connection(
        self,
        conn: Any,
        connect_kwargs: Mapping[str, Any],
        options: InstrumentationOptions | None,
        facts: DriverFacts | None = None,
    ) -> ExportRegistration:
        """An open connection; never touches the network."""

    def unregister_connection(self, handle: ExportRegistration) -> None:
        """The connection closed."""
