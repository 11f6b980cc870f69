"""Fixtures of the end-to-end tests: a real OTLP/gRPC receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otlp_receiver import OtlpReceiver


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/gRPC receiver on 127.0.0.1 at an ephemeral port, empty at the start."""
    with OtlpReceiver() as receiver:
        yield receiver
