"""Testing aids: a local Databricks SQL warehouse the real driver can talk to.

Nothing here is imported by the instrumentation itself.
"""
