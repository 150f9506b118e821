"""What a front accepts for a migration (``POST /api/v1/migrations``, ``volkeeper
migrate``): validated by the API with this model, and by the embedded CLI with
``inputs.parse``, so both refuse the same input with the same message."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from common.jobs.inputs import NAME, Input

DRIVER = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$"


class MigrationIn(Input):
    volume: str = Field(pattern=NAME, max_length=255, description="the volume to migrate")
    host: str | None = Field(default=None, max_length=200,
                             description="its host (default: this host / the API's)")
    to_host: str = Field(min_length=1, max_length=200,
                         description="the destination host (may be the same host)")
    to_volume: str | None = Field(default=None, pattern=NAME, max_length=255,
                                  description="the destination name (default: the same)")
    driver: str = Field(default="local", pattern=DRIVER, max_length=100,
                        description="the destination's volume driver")
    driver_opts: dict[str, str] = Field(
        default_factory=dict, max_length=20,
        description="driver options, e.g. local: type=none, o=bind, device=/srv/data")
    via: str | None = Field(default=None, max_length=100,
                            description="the target carrying the data (default: the "
                            "default target, else the first registered one)")
    cutover: Literal["stop", "none"] = Field(
        default="stop", description="stop: stop the containers using the source for the "
        "final copy (they stay stopped when it succeeds); none: no stop")
    dry_run: bool = Field(default=False, description="only run the checks")
    remove_source: bool = Field(default=False, description="after a verified copy: a "
                                "pinned backup of the source, then the source removed")
    recreate_containers: bool = Field(
        default=False, description="after a verified copy, recreate the containers "
        "stopped for the cut-over with the same configuration on the new volume (on the "
        "destination host; the old ones are kept, stopped — renamed on the same host)")

    @field_validator("driver_opts")
    @classmethod
    def _check_opts(cls, opts: dict[str, str]) -> dict[str, str]:
        for k, v in opts.items():
            if not k or len(k) > 100 or len(v) > 1000 or "=" in k:
                raise ValueError(f"invalid driver option {k!r}: a name (no '=') of at most "
                                 "100 characters and a value of at most 1000")
        return opts
