"""The table of driver hook points, and installing / removing the wrappers defensively."""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wrapt

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.hooks import connection, internals, kernel, sea, staging
from opentelemetry_instrumentation_dbsql.hooks.cursor import CursorHooks
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once, log_missing_hook_once


@dataclass(frozen=True, slots=True)
class HookPoint:
    """One driver attribute to wrap, at the first of ``locations`` (module, class) that has it.

    Several locations cover connector releases that moved a class; ``public`` hook points are
    the driver API, the others its internals. A ``lazy`` hook point is in a module the driver
    imports only when a connection needs it (the SEA and kernel backends): it is installed
    when the driver imports that module, which instrumenting never does.
    """

    locations: tuple[tuple[str, str], ...]
    name: str
    wrapper: Callable[..., Any]
    public: bool
    lazy: bool = False


def _at(module: str, owner: str) -> tuple[tuple[str, str], ...]:
    return ((module, owner),)


def _execute_supports_query_tags() -> bool:
    try:
        from databricks.sql.client import Cursor

        return "query_tags" in inspect.signature(Cursor.execute).parameters
    except Exception:
        return False


def hook_points() -> list[HookPoint]:
    """Every hook point, in install order. Imports only driver modules the client already has."""
    cursor = CursorHooks(supports_query_tags=_execute_supports_query_tags())
    client = "databricks.sql.client"
    points = [
        HookPoint(_at(client, "Connection"), "__init__", connection.connection_init, True),
        HookPoint(_at(client, "Connection"), "close", connection.connection_close, True),
        HookPoint(_at(client, "Connection"), "commit", connection.transaction("COMMIT"), True),
        HookPoint(_at(client, "Connection"), "rollback", connection.transaction("ROLLBACK"), True),
        HookPoint(_at(client, "Cursor"), "execute", cursor.execute, True),
        HookPoint(_at(client, "Cursor"), "executemany", cursor.executemany, True),
        HookPoint(_at(client, "Cursor"), "execute_async", cursor.execute_async, True),
        HookPoint(_at(client, "Cursor"), "get_query_state", cursor.get_query_state, True),
        HookPoint(
            _at(client, "Cursor"),
            "get_async_execution_result",
            cursor.get_async_execution_result,
            True,
        ),
        HookPoint(_at(client, "Cursor"), "cancel", cursor.cancel, True),
        HookPoint(_at(client, "Cursor"), "close", cursor.close, True),
    ]
    for method in ("catalogs", "schemas", "tables", "columns"):
        points.append(HookPoint(_at(client, "Cursor"), method, cursor.metadata(method), True))
    for method in ("fetchall", "fetchmany", "fetchall_arrow", "fetchmany_arrow"):
        points.append(HookPoint(_at(client, "Cursor"), method, cursor.fetch, True))
    # Staging (volume) transfers: _handle_staging_put_stream arrived after 4.0.0, and 4.0.0
    # sends the transfer through requests, not connection.http_client (no status or bytes).
    for method, direction, operation, stream in (
        ("_handle_staging_put", attr.VOLUME_UPLOAD, "PUT", False),
        ("_handle_staging_put_stream", attr.VOLUME_UPLOAD, "PUT", True),
        ("_handle_staging_get", attr.VOLUME_DOWNLOAD, "GET", False),
        ("_handle_staging_remove", attr.VOLUME_DELETE, "REMOVE", False),
    ):
        wrapper = staging.transfer(direction, operation, stream=stream)
        points.append(HookPoint(_at(client, "Cursor"), method, wrapper, False))
    points.append(
        HookPoint(
            _at("databricks.sql.common.unified_http_client", "UnifiedHttpClient"),
            "request",
            staging.http_request,
            False,
        )
    )
    points += [
        HookPoint(
            (("databricks.sql.result_set", "ResultSet"), (client, "ResultSet")),
            "close",
            internals.result_set_close,
            False,
        ),
        HookPoint(
            (("databricks.sql.result_set", "ThriftResultSet"), (client, "ResultSet")),
            "_fill_results_buffer",
            internals.fill_results_buffer,
            False,
        ),
        HookPoint(
            (
                ("databricks.sql.backend.thrift_backend", "ThriftDatabricksClient"),
                ("databricks.sql.thrift_backend", "ThriftBackend"),
            ),
            "_poll_for_status",
            internals.poll_for_status,
            False,
        ),
        HookPoint(
            (
                ("databricks.sql.backend.thrift_backend", "ThriftDatabricksClient"),
                ("databricks.sql.thrift_backend", "ThriftBackend"),
            ),
            "_check_command_not_in_error_or_closed_state",
            internals.check_operation_state,
            False,
        ),
        HookPoint(
            (
                ("databricks.sql.utils", "ThriftResultSetQueueFactory"),
                ("databricks.sql.utils", "ResultSetQueueFactory"),
            ),
            "build_queue",
            internals.build_queue,
            False,
        ),
    ]
    downloader = _at("databricks.sql.cloudfetch.downloader", "ResultSetDownloadHandler")
    points += [
        HookPoint(downloader, "__init__", internals.download_handler_init, False),
        HookPoint(downloader, "run", internals.download_run, False),
        HookPoint(downloader, "_log_download_metrics", internals.log_download_metrics, False),
        # Releases that do not override increment inherit urllib3's; the wrapper counts only
        # the driver's own policy objects there.
        HookPoint(
            (
                ("databricks.sql.auth.retry", "DatabricksRetryPolicy"),
                ("urllib3.util.retry", "Retry"),
            ),
            "increment",
            internals.retry_increment,
            False,
        ),
    ]
    return points + _backend_points()


def _backend_points() -> list[HookPoint]:
    """The SEA and kernel backends' hook points (each module imported by the driver on the
    first connection that uses it)."""
    sea_backend = _at("databricks.sql.backend.sea.backend", "SeaDatabricksClient")
    responses = "databricks.sql.backend.sea.models.responses"
    kernel_client = _at("databricks.sql.backend.kernel.client", "KernelDatabricksClient")
    fetcher = _at("databricks.sql.backend.sea.queue", "LinkFetcher")
    return [
        # One GetStatement: a status poll, as GetOperationStatus is on Thrift.
        HookPoint(sea_backend, "_poll_query", internals.poll_for_status, False, True),
        HookPoint(
            sea_backend,
            "_check_command_not_in_failed_or_closed_state",
            sea.check_status,
            False,
            True,
        ),
        HookPoint(sea_backend, "get_chunk_links", sea.chunk_links, False, True),
        HookPoint(
            _at(responses, "ExecuteStatementResponse"),
            "from_dict",
            sea.statement_response,
            False,
            True,
        ),
        HookPoint(
            _at(responses, "GetStatementResponse"), "from_dict", sea.statement_response, False, True
        ),
        HookPoint(
            _at("databricks.sql.backend.sea.queue", "SeaResultSetQueueFactory"),
            "build_queue",
            sea.build_queue,
            False,
            True,
        ),
        HookPoint(fetcher, "__init__", sea.link_fetcher_init, False, True),
        HookPoint(fetcher, "_worker_loop", sea.link_fetcher_worker, False, True),
        # One status call of an async statement; the kernel's own polls are native code.
        HookPoint(kernel_client, "get_query_state", internals.poll_for_status, False, True),
        HookPoint(kernel_client, "execute_command", kernel.execute_command, False, True),
        HookPoint(kernel_client, "_synthetic_command_id", kernel.synthetic_command_id, False, True),
        # KernelResultSet.close does not call ResultSet.close.
        HookPoint(
            _at("databricks.sql.backend.kernel.result_set", "KernelResultSet"),
            "close",
            internals.result_set_close,
            False,
            True,
        ),
    ]


@dataclass(slots=True)
class InstalledHook:
    """A wrapper in place, to be removed on uninstrument."""

    owner: Any
    name: str
    original: Any


def _find_owner(point: HookPoint) -> Any:
    for module_name, owner_name in point.locations:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner = getattr(module, owner_name, None)
        if owner is not None and point.name in vars(owner):
            return owner
    return None


class InstalledHooks(list[InstalledHook]):
    """The wrappers ``install`` put in place, and those it will add when the driver imports a
    lazy hook point's module (until ``uninstall``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.active = True


def install(points: list[HookPoint]) -> list[InstalledHook]:
    """Wrap every hook point the installed driver has; log the missing ones once. Lazy hook
    points whose module is not imported yet are wrapped when the driver imports it."""
    installed = InstalledHooks()
    deferred: dict[str, list[HookPoint]] = {}
    for point in points:
        module_name = point.locations[0][0]
        if point.lazy and module_name not in sys.modules:
            deferred.setdefault(module_name, []).append(point)
        else:
            _install_point(point, installed)
    for module_name, waiting in deferred.items():
        wrapt.register_post_import_hook(_installer(waiting, installed), module_name)
    return installed


def _installer(points: list[HookPoint], installed: InstalledHooks) -> Callable[[Any], None]:
    def on_import(_module: Any) -> None:
        try:
            with installed.lock:
                if not installed.active:
                    return
                for point in points:
                    _install_point(point, installed)
        except Exception as exc:
            log_failure_once("install-lazy", exc)

    return on_import


def _install_point(point: HookPoint, installed: list[InstalledHook]) -> None:
    module_name, owner_name = point.locations[0]
    target = f"{module_name}.{owner_name}.{point.name}"
    try:
        owner = _find_owner(point)
        if owner is None:
            log_missing_hook_once(target)
            return
        if isinstance(vars(owner)[point.name], wrapt.FunctionWrapper):
            return
        original = vars(owner)[point.name]
        wrapt.wrap_function_wrapper(owner, point.name, point.wrapper)
        installed.append(InstalledHook(owner, point.name, original))
    except Exception as exc:
        if point.public:
            log_failure_once("install:" + target, exc)
        log_missing_hook_once(target)


def uninstall(installed: list[InstalledHook]) -> None:
    """Restore every wrapped attribute exactly (the very object that was there before); lazy
    hook points not installed yet never will be."""
    if isinstance(installed, InstalledHooks):
        with installed.lock:
            installed.active = False
            hooks = list(installed)
    else:
        hooks = list(installed)
    for hook in reversed(hooks):
        try:
            setattr(hook.owner, hook.name, hook.original)
        except Exception as exc:
            log_failure_once("uninstall", exc)
