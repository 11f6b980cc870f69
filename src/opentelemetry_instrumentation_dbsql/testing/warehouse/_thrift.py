"""The driver's generated Thrift code, typed as ``Any`` (the generated code is untyped)."""

from typing import Any

from databricks.sql.thrift_api.TCLIService import TCLIService as _service
from databricks.sql.thrift_api.TCLIService import ttypes as _ttypes

ttypes: Any = _ttypes
TCLIService: Any = _service
