"""Option types shared by the command modules."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output (full values).")]
Wait = Annotated[bool, typer.Option(help="Wait for the job (always, embedded).")]
BackupArg = Annotated[str, typer.Argument(metavar="BACKUP")]
