"""What a front accepts for a policy: the request models of create, replace, patch and
``apply``. Every rule is checked by ``common.policies`` and a refusal names the field
(``schedule``, ``tz``, ``retention``, ``rpo`` …), the same from the API and the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from common.jobs.inputs import NAME, Format, SnapshotMode
from common.jobs.policy_consistency import (
    CONSISTENCY_FIELDS,
    ConsistencyFields,
    consistency_problem,
)
from common.jobs.policy_consistency import stored as consistency_stored
from common.policies.retention import RetentionError, check_retention
from common.policies.schedule import format_duration, parse_duration, parse_schedule, parse_tz
from common.policies.selection import check_selection, parse_selector

#: the fields a policy has (and a patch may change), in the order they are shown
POLICY_FIELDS = ("volumes", "hosts", "selector", "project", "schedule", "tz",
                 "jitter_seconds", "targets", "format", "retention", "rpo", "verify_subset",
                 "verify_schedule", "drill_schedule", "enabled", *CONSISTENCY_FIELDS)


class PolicyBody(ConsistencyFields):
    """Everything of a policy but its name (the body of ``PUT /policies/{name}``)."""

    model_config = ConfigDict(extra="forbid")
    volumes: list[str] = Field(default_factory=list, max_length=1000,
                               description="volume names")
    hosts: list[str] = Field(default_factory=list, max_length=1000,
                             description="only volumes on these hosts (alone: all of theirs)")
    selector: str | None = Field(default=None, max_length=500,
                                 examples=["volkeeper.policy=nightly"],
                                 description="LABEL=VALUE on the volume or a container "
                                 "using it")
    project: str | None = Field(default=None, max_length=200,
                                description="a Docker Compose project")
    schedule: str = Field(max_length=200, examples=["0 2 * * *", "@daily", "@every 6h"])
    tz: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    jitter_seconds: int = Field(default=0, ge=0, le=86400,
                                description="delay each run by up to this many seconds")
    targets: list[str] = Field(min_length=1, max_length=10, description="the first gets "
                               "the backup, the others a copy of it")
    format: Format | None = None
    retention: dict[str, Any] = Field(
        default_factory=dict, examples=[{"keep_daily": 7, "keep_weekly": 4}],
        description="keep_last, keep_hourly/daily/weekly/monthly/yearly (-1: unlimited), "
        "keep_within (e.g. 30d), keep_tag (list); empty: keep every backup")
    rpo: str | None = Field(default=None, max_length=32, examples=["26h"],
                            description="how old the newest good backup may be (default: "
                            "twice the schedule's interval)")
    verify_subset: float | None = Field(default=None, gt=0, le=100,
                                        description="percent of the data a scheduled verify "
                                        "reads back")
    verify_schedule: str | None = Field(default=None, max_length=200)
    drill_schedule: str | None = Field(default=None, max_length=200)
    enabled: bool = True

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, v: list[str]) -> list[str]:
        import re

        for name in v:
            if not re.fullmatch(NAME.strip("^$"), name) or len(name) > 255:
                raise ValueError(f"invalid volume name {name!r}")
        return v

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v:
            parse_selector(v)
        return v or None

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        parse_tz(v)
        return v

    @field_validator("schedule", "verify_schedule", "drill_schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return parse_schedule(v).expr

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a target is named twice")
        return v

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            return {}  # no retention: every backup is kept
        try:
            return check_retention(v).as_dict()
        except RetentionError as e:
            raise ValueError(str(e)) from None

    @field_validator("rpo")
    @classmethod
    def _rpo(cls, v: str | None) -> str | None:
        return None if v in (None, "") else format_duration(parse_duration(str(v)))

    @model_validator(mode="wrap")
    @classmethod
    def _selects_something(cls, data: Any, handler: Any) -> Any:
        """A selection of nothing is refused naming ``selection`` (the four fields);
        consistency fields that cannot go together name the field to change."""
        body = handler(data)
        try:
            check_selection(body.volumes, body.hosts, body.selector, body.project)
        except ValueError as e:
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("selection", str(e)), loc=("selection",),
                input=data)]) from None
        problem = consistency_problem(body.stop_containers, body.snapshot, body.dump,
                                      body.dump_databases) or _jitter_problem(body)
        if problem:
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("consistency", problem[1]), loc=(problem[0],),
                input=data)]) from None
        return body

    def stored(self) -> dict[str, Any]:
        """The columns of a ``policies`` row."""
        return {
            "selection": {"volumes": self.volumes, "hosts": self.hosts,
                          "selector": self.selector, "project": self.project},
            "schedule": self.schedule, "tz": self.tz, "jitter_seconds": self.jitter_seconds,
            "targets": list(self.targets), "format": self.format,
            "retention": dict(self.retention),
            "rpo_seconds": (int(parse_duration(self.rpo).total_seconds())
                            if self.rpo else None),
            "verify_subset_percent": self.verify_subset,
            "verify_schedule": self.verify_schedule, "drill_schedule": self.drill_schedule,
            "enabled": self.enabled, **consistency_stored(self),
        }


class PolicyIn(PolicyBody):
    """A new policy (``POST /policies``)."""

    name: str = Field(pattern=NAME, max_length=100, examples=["nightly"])

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.startswith(RESERVED_PREFIX):
            raise ValueError(f"names starting with {RESERVED_PREFIX!r} are the API's own "
                             "(/policies/preview-schedule …): choose another name")
        return name


#: policy names the API's routes use (``GET /policies/preview-schedule``)
RESERVED_PREFIX = "preview-"


class PolicyPatch(BaseModel):
    """The fields to change (``PATCH /policies/{name}``); the result is checked whole."""

    model_config = ConfigDict(extra="forbid")
    volumes: list[str] | None = None
    hosts: list[str] | None = None
    selector: str | None = None
    project: str | None = None
    schedule: str | None = None
    tz: str | None = None
    jitter_seconds: int | None = None
    targets: list[str] | None = None
    format: Format | None = None
    retention: dict[str, Any] | None = None
    rpo: str | None = None
    verify_subset: float | None = None
    verify_schedule: str | None = None
    drill_schedule: str | None = None
    enabled: bool | None = None
    stop_containers: bool | None = None
    excludes: list[str] | None = None
    snapshot: SnapshotMode | None = None
    dump: str | None = None
    dump_databases: list[str] | None = None


class ApplyIn(BaseModel):
    """A declarative set of policies (``volkeeper apply -f``): created, changed, and with
    ``prune`` the ones not listed deleted; ``dry_run`` only reports the plan."""

    model_config = ConfigDict(extra="forbid")
    policies: list[PolicyIn] = Field(default_factory=list, max_length=5000)
    prune: bool = False
    dry_run: bool = False

    @field_validator("policies")
    @classmethod
    def _unique(cls, v: list[PolicyIn]) -> list[PolicyIn]:
        seen: set[str] = set()
        for p in v:
            if p.name in seen:
                raise ValueError(f"policy {p.name!r} is listed twice")
            seen.add(p.name)
        return v


def _jitter_problem(body: PolicyBody) -> tuple[str, str] | None:
    """A jitter longer than a schedule's interval is refused naming ``jitter_seconds``: a
    run delayed past its next slot is skipped (``@every 30s`` with 5m ran about one slot
    in six, silently, and its RPO alerts followed)."""
    if not body.jitter_seconds:
        return None
    for name in ("schedule", "verify_schedule", "drill_schedule"):
        expr = getattr(body, name)
        if not expr:
            continue
        interval = parse_schedule(expr, body.tz).interval()
        if body.jitter_seconds > interval.total_seconds():
            return "jitter_seconds", (
                f"a jitter of {format_duration(timedelta(seconds=body.jitter_seconds))} "
                f"is longer than the interval of {name} {expr!r} "
                f"({format_duration(interval)}): runs would be skipped; use at most that")
    return None
