"""The driver hooks: wrappers that turn driver calls into spans and metrics."""
