"""One change of state, as every channel tells it (``notifier`` makes them, ``channels``
send them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Message:
    """One change of state, as every channel tells it."""

    event: str  # "failed" | "overdue" | "recovered"
    kind: str
    subject: str
    state: str
    previous: str | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def title(self) -> str:
        return f"[volkeeper] {self.summary}"

    def as_json(self) -> dict[str, Any]:
        return {"source": "volkeeper", "event": self.event, "kind": self.kind,
                "subject": self.subject, "state": self.state, "previous": self.previous,
                "summary": self.summary, "details": self.details, "at": self.at}

    def text(self) -> str:
        lines = [self.summary, ""]
        lines += [f"{k}: {v}" for k, v in self.details.items() if v not in (None, "")]
        lines += ["", f"at {self.at}"]
        return "\n".join(lines)
