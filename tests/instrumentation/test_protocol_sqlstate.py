"""The SQLSTATE comes from the protocol's status fields, the message text only as a fallback.

The Thrift backend raises with the server's message only; a server error whose message has no
``SQLSTATE:`` suffix still names its SQLSTATE in ``TStatus.sqlState`` or
``TGetOperationStatusResp.sqlState``, which the hooks read before the driver drops it. The SEA
backend drops the ``sql_state`` of a failed statement's status the same way (a hook reads it);
the kernel keeps it on the exception it raises.
"""

from __future__ import annotations

from typing import Any

import databricks.sql
import pytest
from databricks.sql.exc import DatabaseError

from tests.conftest import Telemetry, every_backend

# Each backend reports a failure's SQLSTATE its own way.
pytestmark = every_backend

# 42501 (insufficient privilege) classifies as permission_error; the scripted error class in
# the message ("SCRIPTED_ERROR") says nothing, so only the SQLSTATE can tell.
SQLSTATE = "42501"


@pytest.mark.parametrize("error_style", ["operation", "status"])
@pytest.mark.parametrize("in_message", [False, True], ids=["protocol-only", "protocol-and-text"])
def test_sqlstate_of_a_failing_statement(
    warehouse: Any, telemetry: Telemetry, backend: str, error_style: str, in_message: bool
) -> None:
    if error_style == "status" and backend != "thrift":
        # The REST API answers an error status with an HTTP error: its body has no SQLSTATE
        # field (and the SEA backend does not even read the body). Nothing to record.
        pytest.skip("a REST error response carries no SQLSTATE field")
    sql = "SELECT secret FROM vault"
    warehouse.script(
        sql,
        error="User does not have SELECT on table vault",
        sqlstate=SQLSTATE,
        sqlstate_in_message=in_message,
        error_style=error_style,
    )
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with pytest.raises(DatabaseError) as caught:
            cursor.execute(sql)
    assert (SQLSTATE in str(caught.value.message)) is in_message  # what the driver kept
    (statement,) = telemetry.spans_by_role("STATEMENT")
    attributes = dict(statement.attributes or {})
    assert attributes["db.response.status_code"] == SQLSTATE
    assert attributes["databricks.error.category"] == "permission_error"
    telemetry.tracer_provider.force_flush()
    telemetry.instrumentor.uninstrument()  # flushes the statement records
    errors = [r.error for r in telemetry.sink.records if getattr(r, "error", None) is not None]
    assert errors, telemetry.sink.records
    assert errors[0].sqlstate == SQLSTATE
    assert errors[0].category == "permission_error"


def test_message_text_is_the_fallback_without_protocol_fields(
    warehouse: Any, telemetry: Telemetry
) -> None:
    # A table the engine does not know: the warehouse reports 42P01 in both places; the
    # classification is the same whichever is read, so this guards the text path staying on.
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with pytest.raises(DatabaseError):
            cursor.execute("SELECT * FROM no_such_table")
    (statement,) = telemetry.spans_by_role("STATEMENT")
    assert dict(statement.attributes or {})["db.response.status_code"] == "42P01"
