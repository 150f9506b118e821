"""This installation's settings, read once; a bad ``VOLKEEPER_*`` variable is a CliError."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cli.errors import CliError

if TYPE_CHECKING:
    from common.config import Settings


def settings() -> Settings:
    """This installation's settings; a bad ``VOLKEEPER_*`` variable is a CliError."""
    from common.config import get_settings

    try:
        return get_settings()
    except Exception as e:  # noqa: BLE001 - pydantic's report of VOLKEEPER_* variables
        raise CliError(f"invalid configuration: {_problems(e)}",
                       "check the VOLKEEPER_* variables") from None


def _problems(e: Exception) -> str:
    """One line per bad variable, named as the user set it (``VOLKEEPER_ZSTD_LEVEL='x':
    Input should be a valid integer``), without pydantic's banner and links."""
    from pydantic import ValidationError

    if not isinstance(e, ValidationError):
        return str(e)
    return "; ".join(_problem(err) for err in e.errors(include_url=False))


def _problem(err: Any) -> str:
    from common.config import ENV_PREFIX

    msg = str(err.get("msg", "invalid value"))
    loc = err.get("loc") or ()
    if not loc:
        return msg
    name = ENV_PREFIX + str(loc[0]).upper()
    return f"{name}={err.get('input')!r}: {msg}"
