"""What the scripts in ``examples/`` need from the local warehouse: the table they query and the
environment variables they read.

The table is a small ``samples.nyctaxi.trips`` (in a Databricks workspace that one is always
there): 500 synthetic trips over 7 pickup and 11 dropoff zip codes, with only the columns the
examples read.
"""

from __future__ import annotations

import json
import shlex

from opentelemetry_instrumentation_dbsql.testing.warehouse.warehouse import LocalWarehouse

SAMPLES_CATALOG = "samples"
SAMPLES_SCHEMA = "nyctaxi"
TRIPS_TABLE = f"{SAMPLES_CATALOG}.{SAMPLES_SCHEMA}.trips"

SAMPLES_SEED: tuple[str, ...] = (
    f"CREATE CATALOG IF NOT EXISTS {SAMPLES_CATALOG}",
    f"CREATE SCHEMA IF NOT EXISTS {SAMPLES_CATALOG}.{SAMPLES_SCHEMA}",
    f"CREATE OR REPLACE TABLE {TRIPS_TABLE} AS SELECT "
    "CAST(i % 37 AS DOUBLE) / 2 AS trip_distance, "
    "CAST(5 + i % 53 AS DOUBLE) AS fare_amount, "
    "10001 + i % 7 AS pickup_zip, 10001 + i % 11 AS dropoff_zip "
    "FROM range(500) t(i)",
)


def seed_samples(warehouse: LocalWarehouse) -> int:
    """Create ``samples.nyctaxi.trips`` in ``warehouse``; returns its row count."""
    for sql in SAMPLES_SEED:
        warehouse.execute_sql(sql)
    ((count,),) = warehouse.execute_sql(f"SELECT count(*) FROM {TRIPS_TABLE}")
    return int(count)


def example_environment(warehouse: LocalWarehouse, seeded: bool) -> dict[str, str]:
    """The variables the scripts in ``examples/`` read, pointing at ``warehouse``.

    The driver builds its Thrift URL as ``https://{host}:{_port}{http_path}`` unless given
    ``_connection_uri``: a local endpoint needs it (and ``_port``, the TLS file with ``--tls``),
    which the examples take from ``DBSQL_EXTRA_CONNECT_ARGS``. Catalog and schema are set only
    when the sample table was seeded.
    """
    kwargs = warehouse.connect_kwargs(catalog=None, schema=None)
    environment = {
        "DATABRICKS_SERVER_HOSTNAME": str(kwargs.pop("server_hostname")),
        "DATABRICKS_HTTP_PATH": str(kwargs.pop("http_path")),
        "DATABRICKS_TOKEN": str(kwargs.pop("access_token")),
    }
    if seeded:
        environment["DATABRICKS_CATALOG"] = SAMPLES_CATALOG
        environment["DATABRICKS_SCHEMA"] = SAMPLES_SCHEMA
    environment["DBSQL_EXTRA_CONNECT_ARGS"] = json.dumps(kwargs)
    return environment


def export_lines(environment: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines, quoted for POSIX shells."""
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
