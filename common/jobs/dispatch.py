"""The dispatcher contract: hand a task, by name, to the workers of one host."""

from __future__ import annotations

from typing import Any, Protocol


class Dispatcher(Protocol):
    def send(self, task: str, host: str, kwargs: dict[str, Any]) -> None:
        """Queue ``task`` for ``host``. Raises common.errors.Unavailable when the broker
        cannot be reached (the job is then failed by the caller, never left queued)."""
        ...
