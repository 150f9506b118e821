"""Human-readable quantities, the one spelling every front and message uses."""

from __future__ import annotations


def size(n: int | float | None) -> str:
    """``1.5 GiB`` (``512 B`` below a KiB); ``-`` when unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)
