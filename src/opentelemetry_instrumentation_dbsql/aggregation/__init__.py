"""Per-statement aggregation: spans in, one immutable record per statement out."""
