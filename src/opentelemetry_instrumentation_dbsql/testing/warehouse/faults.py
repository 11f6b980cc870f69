"""Fault injection for Thrift RPCs, decided per RPC name before the RPC is processed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

ANY_RPC = "*"


@dataclass(frozen=True)
class RpcFault:
    """What to do to one RPC call.

    With ``status`` the RPC is not processed: the answer is that HTTP status with ``headers``
    and an empty body. ``reset`` drops the connection (TCP reset) without an answer. Otherwise
    the RPC is processed normally after ``delay`` seconds.
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False


class FaultPlan:
    """Pending faults per RPC name (``"*"`` matches every RPC); the oldest applies first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[tuple[str, RpcFault, list[int | None]]] = []

    def add(self, name: str, fault: RpcFault, times: int | None) -> None:
        """Apply ``fault`` to the next ``times`` calls of ``name`` (None: every call)."""
        if times is not None and times <= 0:
            raise ValueError("times must be positive or None")
        with self._lock:
            self._faults.append((name, fault, [times]))

    def take(self, name: str) -> RpcFault | None:
        """The fault for this call of ``name``, if any, using up one of its ``times``."""
        with self._lock:
            for index, (target, fault, remaining) in enumerate(self._faults):
                if target not in (name, ANY_RPC):
                    continue
                if remaining[0] is not None:
                    remaining[0] -= 1
                    if remaining[0] <= 0:
                        del self._faults[index]
                return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()
