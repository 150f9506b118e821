"""What both fronts and every command share: the user-facing error and the JSON shape."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


class CliError(Exception):
    """An error to show the user: message, optional hint, exit code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.hint, self.exit_code = message, hint, exit_code
