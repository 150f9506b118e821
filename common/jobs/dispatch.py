"""The dispatcher contract: hand a task, by name, to the workers of one host."""

from __future__ import annotations

from typing import Any, Protocol


class Dispatcher(Protocol):
    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        """Queue ``task`` for ``host``. ``secrets`` are extra keyword arguments that travel
        only in the message (never in the job row, and masked in task events and logs).
        Raises common.errors.Unavailable when the broker cannot be reached (the job is then
        failed by the caller, never left queued)."""
        ...
