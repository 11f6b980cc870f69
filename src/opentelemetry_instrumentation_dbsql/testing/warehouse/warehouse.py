"""``LocalWarehouse``: a Databricks SQL warehouse on 127.0.0.1 for the real driver."""

from __future__ import annotations

import functools
import importlib.util
import secrets
import shutil
import tempfile
import threading
import time
from types import TracebackType
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse.endpoints import (
    FeatureFlagEndpoint,
    TelemetryEndpoint,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import Engine, Params
from opentelemetry_instrumentation_dbsql.testing.warehouse.faults import FaultPlan, RpcFault
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import (
    HttpRecord,
    Recorder,
    RpcRecord,
    ServedStatement,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import FileStore
from opentelemetry_instrumentation_dbsql.testing.warehouse.rpc import ThriftEndpoint
from opentelemetry_instrumentation_dbsql.testing.warehouse.scripting import (
    ScriptBook,
    ScriptHandle,
    StatementScript,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.sea_endpoint import SeaEndpoint
from opentelemetry_instrumentation_dbsql.testing.warehouse.sea_service import SeaService
from opentelemetry_instrumentation_dbsql.testing.warehouse.server import (
    Router,
    WarehouseHTTPServer,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import (
    ServedTransfer,
    VolumeStore,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.thrift_service import ThriftService
from opentelemetry_instrumentation_dbsql.testing.warehouse.tls import Certificate, self_signed


@functools.cache
def _driver_has_telemetry() -> bool:
    """Connector releases before the driver's own telemetry (4.0.x) never POST at close."""
    return importlib.util.find_spec("databricks.sql.telemetry") is not None


class LocalWarehouse:
    """A local Databricks SQL warehouse: Thrift TCLIService and the Statement Execution API,
    feature flags, telemetry, CloudFetch, staging (volume) operations over both.

    ``with LocalWarehouse() as wh: databricks.sql.connect(**wh.connect_kwargs())``. Every
    instance has its own port, its own DuckDB database and its own records.

    ``long_poll``: longest time a GetOperationStatus call waits for a statement that is due
    later (``completion_delay``) before answering RUNNING. ``link_ttl``: lifetime of
    CloudFetch links. ``cloudfetch_min_rows``: unscripted results with more rows than this go
    by CloudFetch when the client can download them (else inline Arrow, or column-based for
    clients without Arrow). ``drain_timeout``: how long :meth:`stop` waits for the telemetry
    the driver sends when its last connection closes (see :meth:`stop`).
    """

    def __init__(
        self,
        port: int = 0,
        tls: bool = False,
        host: str = "127.0.0.1",
        *,
        warehouse_id: str | None = None,
        access_token: str | None = None,
        long_poll: float = 0.1,
        link_ttl: float = 900.0,
        cloudfetch_min_rows: int = 100_000,
        drain_timeout: float = 1.0,
    ) -> None:
        self._requested_port = port
        self.tls = tls
        self.host = host
        self.warehouse_id = warehouse_id or secrets.token_hex(8)
        self.access_token = access_token or "dapi" + secrets.token_hex(16)
        self._long_poll = long_poll
        self._link_ttl = link_ttl
        self._cloudfetch_min_rows = cloudfetch_min_rows
        self._drain_timeout = drain_timeout
        self.feature_flags = FeatureFlagEndpoint()
        self.telemetry = TelemetryEndpoint()
        self._recorder = Recorder()
        self._scripts = ScriptBook()
        self._faults = FaultPlan()
        self._files = FileStore()
        self._volumes = VolumeStore(link_ttl)
        self._engine: Engine | None = None
        self._service: ThriftService | None = None
        self._sea: SeaService | None = None
        self._server: WarehouseHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None
        self._certificate: Certificate | None = None
        self._state_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalWarehouse:
        """Bind the port and start serving (idempotent)."""
        with self._state_lock:
            if self._server is not None:
                return self
            ssl_context = None
            if self.tls:
                self._tempdir = tempfile.mkdtemp(prefix="local-warehouse-")
                self._certificate = self_signed(self._tempdir, self.host)
                ssl_context = self._certificate.server_context()
            self._engine = Engine()
            server = WarehouseHTTPServer(
                (self.host, self._requested_port), self._recorder, ssl_context
            )
            self._server = server
            self._service = ThriftService(
                self._engine,
                self._scripts,
                self._recorder,
                self._files,
                self.base_url,
                long_poll=self._long_poll,
                link_ttl=self._link_ttl,
                cloudfetch_min_rows=self._cloudfetch_min_rows,
                volumes=self._volumes,
            )
            self._sea = SeaService(
                self._engine,
                self._scripts,
                self._recorder,
                self._files,
                self.base_url,
                warehouse_id=self.warehouse_id,
                long_poll=self._long_poll,
                link_ttl=self._link_ttl,
                cloudfetch_min_rows=self._cloudfetch_min_rows,
                volumes=self._volumes,
            )
            # The router needs the bound port (CloudFetch links), hence set after binding.
            server.router = Router(
                self.http_path,
                thrift=ThriftEndpoint(self._service, self._faults, self._recorder),
                flags=self.feature_flags,
                telemetry=self.telemetry,
                files=self._files,
                recorder=self._recorder,
                sea=SeaEndpoint(self._sea, self._faults, self._recorder),
                volumes=self._volumes,
            )
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"local-warehouse-{self.port}",
                daemon=True,
            )
            self._thread.start()
            return self

    def _server_busy(self) -> bool:
        return self._server is not None and self._server.active_requests > 0

    def _drain(self) -> None:
        # The driver flushes its telemetry on a background thread when its last connection to
        # a host closes. Stopping before that POST lands makes the driver retry against a
        # closed port for seconds, and interpreter exit waits for those retries.
        service = self._service
        if (
            service is None
            or not service.sessions_opened
            or self.feature_flags.last_answer is False
            or not _driver_has_telemetry()
        ):
            return
        deadline = time.monotonic() + self._drain_timeout
        while time.monotonic() < deadline:
            closed = service.last_session_closed
            posted = self.telemetry.last_post
            if closed is None or service.open_sessions:
                return
            if posted is not None and posted >= closed and not self._server_busy():
                return
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving, end open connections and held requests, drop the database.

        When every driver session has been closed and the driver's telemetry may be on, this
        first waits (at most ``drain_timeout``) for the telemetry POST sent at close.
        """
        with self._state_lock:
            if self._server is None:
                return
            self._drain()
            server, self._server = self._server, None
            server.stopping.set()
            self.telemetry.stop()
            server.shutdown()
            server.close_connections()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._service is not None:
                self._service.close_all()
            if self._sea is not None:
                self._sea.close_all()
            if self._engine is not None:
                self._engine.close()
            self._files.clear()
            self._volumes.clear()
            if self._tempdir is not None:
                shutil.rmtree(self._tempdir, ignore_errors=True)
                self._tempdir = None

    def __enter__(self) -> LocalWarehouse:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    # -- addresses -----------------------------------------------------------------------------

    def _require_server(self) -> WarehouseHTTPServer:
        if self._server is None:
            raise RuntimeError("the warehouse is not running; call start() or use `with`")
        return self._server

    @property
    def port(self) -> int:
        """The TCP port served."""
        return int(self._require_server().server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def http_path(self) -> str:
        """``/sql/1.0/warehouses/<id>``."""
        return f"/sql/1.0/warehouses/{self.warehouse_id}"

    @property
    def cert_file(self) -> str | None:
        """The PEM certificate to trust (TLS only)."""
        return self._certificate.cert_file if self._certificate else None

    def connect_kwargs(
        self, catalog: str | None = "main", schema: str | None = "default", **extra: Any
    ) -> dict[str, Any]:
        """Keyword arguments for ``databricks.sql.connect`` reaching this warehouse.

        ``server_hostname`` is the full origin so that the driver's feature-flag and
        telemetry requests come here too; ``_connection_uri`` carries the Thrift URL (also
        with TLS: without it the driver would build ``https://{host}:{_port}{http_path}``
        while flags and telemetry went to port 443). ``_port`` makes ``session.port`` right.
        With ``use_sea=True`` the REST backend's form is returned (see the comment below);
        ``use_kernel=True`` needs nothing else.
        """
        kwargs: dict[str, Any] = {
            "server_hostname": self.base_url,
            "http_path": self.http_path,
            "access_token": self.access_token,
            "_connection_uri": self.base_url + self.http_path,
            "_port": self.port,
        }
        if self.tls:
            kwargs["_tls_trusted_ca_file"] = self.cert_file
        if extra.get("use_sea"):
            # The SEA backend builds its base URL as "<server_hostname>:<_port>": the origin
            # must come without its port. Feature-flag and telemetry requests then go to the
            # scheme's default port, not here, and a refused flag fetch costs about 30 s of
            # retries: the driver's own telemetry is off unless asked for.
            kwargs["server_hostname"] = f"{'https' if self.tls else 'http'}://{self.host}"
            del kwargs["_connection_uri"]
            kwargs["enable_telemetry"] = False
        if catalog is not None:
            kwargs["catalog"] = catalog
        if schema is not None:
            kwargs["schema"] = schema
        kwargs.update(extra)
        return kwargs

    # -- data and behaviour --------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The DuckDB-backed engine."""
        if self._engine is None:
            raise RuntimeError("the warehouse is not running; call start() or use `with`")
        return self._engine

    def execute_sql(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run Databricks SQL directly on the engine (in ``main.default``); returns the rows."""
        table = self.engine.execute_sql(sql, params).table
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def script(
        self,
        sql: str,
        *,
        running_polls: int = 0,
        poll_delay: float = 0.0,
        result_format: str | None = None,
        lz4: bool | None = None,
        page_size: int | None = None,
        cloudfetch_files: int | None = None,
        completion_delay: float = 0.0,
        error: str | None = None,
        sqlstate: str | None = None,
        sqlstate_in_message: bool = True,
        error_style: str = "operation",
        regex: bool = False,
        times: int | None = None,
        link_ttl: float | None = None,
    ) -> ScriptHandle:
        """Script how statements with this text (or matching this regex) are served."""
        return self._scripts.add(
            StatementScript(
                sql=sql,
                regex=regex,
                running_polls=running_polls,
                poll_delay=poll_delay,
                result_format=result_format,
                lz4=lz4,
                page_size=page_size,
                cloudfetch_files=cloudfetch_files,
                completion_delay=completion_delay,
                error=error,
                sqlstate=sqlstate,
                sqlstate_in_message=sqlstate_in_message,
                error_style=error_style,
                times=times,
                link_ttl=link_ttl,
            )
        )

    def clear_scripts(self) -> None:
        """Remove every script."""
        self._scripts.clear()

    def fault_rpc(
        self,
        name: str,
        status: int | None = None,
        *,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        reset: bool = False,
    ) -> None:
        """Make the next ``times`` calls of RPC ``name`` (``"*"``: any) fail or slow down.

        ``name`` is a Thrift RPC or a REST call name (``ExecuteStatement`` names both).
        """
        self._faults.add(name, RpcFault(status, dict(headers or {}), delay, reset), times)

    def clear_faults(self) -> None:
        """Drop pending RPC and volume-transfer faults."""
        self._faults.clear()
        self._volumes.faults.clear()

    def fault_volume_transfer(
        self,
        status: int | None = None,
        *,
        method: str = "*",
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        reset: bool = False,
    ) -> None:
        """Make the next ``times`` transfers to pre-signed volume URLs with HTTP ``method``
        (``PUT``, ``GET``, ``DELETE``; ``"*"``: any) fail with ``status``, drop the connection
        (``reset``) or wait ``delay`` seconds first."""
        self._volumes.fault(method, RpcFault(status, dict(headers or {}), delay, reset), times)

    # -- volumes (staging operations) ----------------------------------------------------------

    @property
    def volume_files(self) -> dict[str, bytes]:
        """The files held in volumes, by path (``/Volumes/<catalog>/<schema>/<volume>/...``)."""
        return self._volumes.files

    def put_volume_file(self, volume_path: str, data: bytes) -> None:
        """Store a file in a volume directly."""
        self._volumes.put_file(volume_path, data)

    @property
    def volume_transfers(self) -> list[ServedTransfer]:
        """Every request to a pre-signed volume URL, as answered, in order."""
        return self._volumes.transfers

    def expire_links(self, statement_id: str | None = None) -> int:
        """Expire the CloudFetch links of one statement (or all); returns how many."""
        return self._files.expire(statement_id)

    # -- records -------------------------------------------------------------------------------

    @property
    def rpcs(self) -> list[RpcRecord]:
        """Every Thrift RPC and REST call received, in order (see ``RpcRecord.protocol``)."""
        return self._recorder.rpcs

    def rpc_names(self) -> list[str]:
        """The names of the RPCs and REST calls received, in order."""
        return [r.name for r in self._recorder.rpcs]

    @property
    def http_requests(self) -> list[HttpRecord]:
        """Every HTTP request received, in order (header names lower-cased)."""
        return self._recorder.http

    @property
    def served(self) -> dict[str, ServedStatement]:
        """What was served per statement id (the driver's ``cursor.query_id``)."""
        return self._recorder.served

    def reset_records(self) -> None:
        """Forget the RPC, HTTP, served, feature-flag and telemetry records."""
        self._recorder.reset()
        self._volumes.reset_records()
        self.telemetry.reset()
        self.feature_flags.reset()
