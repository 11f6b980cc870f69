"""UUID text written without ``uuid.UUID`` objects (statement and event ids on hot paths)."""

from __future__ import annotations


def uuid_text(hex32: str) -> str:
    """32 hex digits as UUID text (8-4-4-4-12), as ``str(uuid.UUID(hex=...))`` writes them."""
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"
