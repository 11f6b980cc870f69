"""The driver releases this instrumentation supports."""

_instruments = ("databricks-sql-connector >= 4.0, < 5",)

_supports_metrics = True
