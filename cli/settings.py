"""This installation's settings, read once; a bad ``VOLKEEPER_*`` variable is a CliError."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cli.errors import CliError

if TYPE_CHECKING:
    from common.config import Settings


def settings() -> Settings:
    """This installation's settings; a bad ``VOLKEEPER_*`` variable is a CliError."""
    from common.config import get_settings

    try:
        return get_settings()
    except Exception as e:  # noqa: BLE001 - pydantic's report of VOLKEEPER_* variables
        raise CliError(f"invalid configuration: {e}", "check the VOLKEEPER_* variables") from None
