"""``DbsqlInstrumentor``: the OpenTelemetry instrumentor of databricks-sql-connector."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from opentelemetry_instrumentation_dbsql.hooks.adoption import adopt_connection
from opentelemetry_instrumentation_dbsql.hooks.patching import (
    InstalledHook,
    hook_points,
    install,
    uninstall,
)
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.options import resolve_options
from opentelemetry_instrumentation_dbsql.package import _instruments
from opentelemetry_instrumentation_dbsql.pipeline import build_pipeline
from opentelemetry_instrumentation_dbsql.runtime import Runtime, active_runtime, set_active_runtime
from opentelemetry_instrumentation_dbsql.statement import CONNECTION_STATE_ATTR

_DRIVER_MODULE = "databricks.sql.client"


class _Hooks:
    """The wrappers in place, installed once when the driver's client module is imported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installed: list[InstalledHook] | None = None
        self._wanted = False

    def want(self) -> None:
        with self._lock:
            self._wanted = True
        # Fires at once if the driver is already imported, else when it is; never imports it.
        wrapt.register_post_import_hook(self._on_import, _DRIVER_MODULE)

    def _on_import(self, _module: object) -> None:
        with self._lock:
            if not self._wanted or self._installed is not None:
                return
            try:
                self._installed = install(hook_points())
            except Exception as exc:
                log_failure_once("install", exc)

    def remove(self) -> None:
        with self._lock:
            self._wanted = False
            installed, self._installed = self._installed, None
        if installed:
            uninstall(installed)

    @property
    def installed(self) -> bool:
        return self._installed is not None


_hooks = _Hooks()


class DbsqlInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments ``databricks.sql`` (databricks-sql-connector) with spans and metrics.

    ``instrument(tracer_provider=None, meter_provider=None, record_sink=None, **options)``;
    the options and their environment variables are listed in README.rst.
    """

    _runtime: Runtime | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The driver releases this instrumentation supports."""
        return _instruments

    def instrument(self, **kwargs: Any) -> None:
        """Validate the options first, so a bad one raises ``ValueError`` before anything else."""
        resolve_options(kwargs)
        super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        options = resolve_options(kwargs)
        pipeline = build_pipeline(options, kwargs.get("record_sink"), kwargs.get("meter_provider"))
        runtime = Runtime(
            options,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            processor=pipeline.processor,
            exporter=pipeline.exporter,
        )
        self._runtime = runtime
        set_active_runtime(runtime)
        _hooks.want()

    def _uninstrument(self, **kwargs: Any) -> None:
        runtime = self._runtime
        self._runtime = None
        set_active_runtime(None)
        _hooks.remove()
        if runtime is not None:
            runtime.detach_processor()
            _shutdown_runtime(runtime, float(kwargs.get("timeout_s", 5.0)))

    @staticmethod
    def instrument_connection(connection: Any, **kwargs: Any) -> Any:
        """Instrument one already-open connection (and its cursors); returns it unchanged.

        Accepts the same options as ``instrument()``; it works without a global
        ``instrument()`` too.
        """
        options = resolve_options(kwargs)
        runtime = active_runtime()
        if runtime is None or kwargs:
            # Options of its own, but the same records pipeline as the global instrumentation.
            processor = runtime.processor if runtime is not None else None
            exporter = runtime.exporter if runtime is not None else None
            runtime = Runtime(
                options,
                tracer_provider=kwargs.get("tracer_provider"),
                meter_provider=kwargs.get("meter_provider"),
                processor=processor,
                exporter=exporter,
                global_enabled=False,
            )
        adopt_connection(connection, runtime)
        _hooks.want()
        return connection

    @staticmethod
    def uninstrument_connection(connection: Any) -> Any:
        """Stop instrumenting one connection; returns it unchanged."""
        state = getattr(connection, CONNECTION_STATE_ATTR, None)
        if state is not None:
            state.enabled = False
        else:
            runtime = active_runtime()
            if runtime is not None:
                adopted = adopt_connection(connection, runtime)
                if adopted is not None:
                    adopted.enabled = False
        return connection


def _shutdown_runtime(runtime: Runtime, timeout_s: float) -> None:
    processor = runtime.processor
    if processor is None:
        return
    try:
        processor.shutdown_with_timeout(timeout_s)
    except Exception as exc:
        log_failure_once("shutdown", exc)
