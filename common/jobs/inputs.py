"""What a front accepts: the request models of every job and catalog change.

The API validates request bodies with these models; the embedded CLI validates the same
dictionaries with ``parse`` before calling the services, so both fronts refuse the same
input with the same message."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from common.errors import InvalidInput
from common.formats import BackupFormat

Format = BackupFormat
#: how a backup uses a filesystem snapshot (``common.hooks.snapshots``)
SnapshotMode = Literal["auto", "btrfs", "zfs", "lvm", "off"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
M = TypeVar("M", bound=BaseModel)


def text_problem(value: Any, where: str = "") -> str | None:
    """Why ``value`` (a string, or any string key or value nested in it) cannot be stored:
    a NUL character (PostgreSQL text cannot hold one) or invalid Unicode (a lone surrogate,
    which no UTF-8 database takes); None when every string is fine."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where or 'a value'} holds a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where or 'a value'} is not valid Unicode (a lone surrogate)"
        return None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{where}.{k}" if where else str(k)
            items += [(f"a key of {where or 'the body'}", k), (name, v)]
    elif isinstance(value, list | tuple):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    for name, v in items:
        problem = text_problem(v, name)
        if problem:
            return problem
    return None


class Input(BaseModel):
    """Base of every request model: unknown fields are refused, and no string in the
    request may hold a NUL character or invalid Unicode — found by fuzzing the API: on
    PostgreSQL such a ``host`` was a 500 (the database refuses the query)."""

    # defer_build: a model's validator is built at its first use, so a command that sends
    # one request does not build them all (~1-3 ms each at a command's start)
    model_config = ConfigDict(extra="forbid", defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        problem = text_problem(data)
        if problem:
            raise ValueError(f"{problem}: send text without it")
        return data


class TargetIn(Input):
    name: str = Field(pattern=NAME, max_length=100)
    url: str = Field(min_length=3, examples=["s3://bucket/prefix", "file:///srv/backups"])
    options: dict[str, Any] = Field(
        default_factory=dict, description="endpoint_url, region, path_style, part_size")
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="access_key_id, secret_access_key — stored, never returned")
    replace: bool = False


class BackupIn(Input):
    volume: str = Field(pattern=NAME, max_length=255)
    host: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=100)
    format: Format | None = None
    stop_containers: bool = Field(
        default=False, description="stop the running containers using the volume for the "
        "backup (always started again); also asked by the label "
        "volkeeper.stop-during-backup=true on the volume or a container")
    excludes: list[str] = Field(
        default_factory=list, max_length=100,
        description="glob patterns of paths to leave out (with the volume's "
        "volkeeper.exclude label and its .volkeeperignore), e.g. 'cache/**', '*.tmp'")
    snapshot: SnapshotMode | None = Field(
        default=None, description="back up from a filesystem snapshot instead of stopping "
        "the containers: btrfs/zfs/lvm (an error when the volume is not on one), auto (a "
        "snapshot where possible, else as configured), off; default: the "
        "volkeeper.snapshot label, else off")
    dump: str | None = Field(
        default=None, max_length=20,
        description="back up a database dump instead of the files: postgres, mysql, "
        "mariadb, redis, sqlite or mongodb (run inside the volume's database container; "
        "also asked by the label volkeeper.dump=KIND on that container)")
    dump_databases: list[str] = Field(
        default_factory=list, max_length=100,
        description="postgres, mysql, mariadb: dump these databases, each alone (loadable "
        "into a database of another name), instead of every database in one stream; "
        "default: the label volkeeper.dump-database=NAME[,NAME] of the database's container")

    @field_validator("dump")
    @classmethod
    def _check_dump(cls, kind: str | None) -> str | None:
        return dump_kind(kind)

    @field_validator("dump_databases")
    @classmethod
    def _check_databases(cls, names: list[str]) -> list[str]:
        return dump_database_names(names)

    @field_validator("excludes")
    @classmethod
    def _check_excludes(cls, patterns: list[str]) -> list[str]:
        return exclude_patterns(patterns)


def dump_kind(kind: str | None) -> str | None:
    """The canonical name of a dump kind (None: none); ValueError naming the kinds."""
    from common.hooks.dump_kinds import kind_of

    if kind is None:
        return None
    try:
        return kind_of(kind).name
    except InvalidInput as e:
        raise ValueError(f"{e.message} ({e.hint})") from None


def dump_database_names(names: list[str]) -> list[str]:
    """The databases of ``dump_databases`` (a comma list each, checked, once each);
    ValueError naming the bad one."""
    from common.hooks.dump_kinds import database_names

    try:
        return database_names(names, "dump_databases")
    except InvalidInput as e:
        raise ValueError(f"{e.message} ({e.hint})") from None


def exclude_patterns(patterns: list[str]) -> list[str]:
    """Exclude glob patterns as stored; ValueError saying which one is bad (an empty one
    too: it would be dropped, silently — a label's or .volkeeperignore's empty item is
    skipped instead)."""
    from common.archive.excludes import Excludes

    if any(not p.strip() for p in patterns):
        raise ValueError("an exclude pattern is empty: give a glob such as '*.tmp' or "
                         "'cache/**', or leave the exclude out")
    try:
        return list(Excludes.of(patterns).patterns)
    except InvalidInput as e:
        raise ValueError(f"{e.message} ({e.hint})") from None


class RestoreIn(Input):
    backup_id: str = Field(min_length=1, max_length=32)
    into: str | None = Field(default=None, pattern=NAME, max_length=255,
                             description="volume to restore into (default: the original name)")
    host: str | None = Field(default=None, max_length=200,
                             description="host to restore on (default: the backup's host)")
    mode: Literal["new", "replace"] = Field(
        default="new", description="new: into a missing/empty volume; replace: snapshot the "
        "current content, replace it, verify, roll back on failure")
    stop_containers: bool = Field(
        default=False, description="replace: stop running containers using the volume "
        "(always restarted afterwards)")
    paths: list[str] | None = Field(
        default=None, max_length=1000,
        description="restore only these paths (relative to the volume root; a directory "
        "brings everything below it)")
    dump_into: str | None = Field(
        default=None, pattern=r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=255,
        description="load the backup's database dump into this running container (its "
        "loader: psql, mysql, mongorestore …; Redis is restarted) instead of restoring "
        "files into a volume")
    dump_from: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$", max_length=255,
        description="with dump_into, for a backup holding several dumps: the one of this "
        "container (the name it had when dumped), this database, CONTAINER@DATABASE or "
        "this file name")
    database: str | None = Field(
        default=None, max_length=4096,
        description="with dump_into, a one-database dump (dump_databases): load it into a "
        "new database of this name (default: its own name), refused if it exists unless "
        "replace_database; SQLite: a new database file, an absolute path in the container")
    replace_database: bool = Field(
        default=False, description="with dump_into: drop and replace the database "
        "(database, or the dump's own) when it exists (PostgreSQL: only after the dump "
        "loaded into a new one)")

    @field_validator("database")
    @classmethod
    def _check_database(cls, name: str | None) -> str | None:
        import re

        from common.hooks.dump_kinds import DATABASE_NAME

        if name is None or DATABASE_NAME.match(name) or (
                re.fullmatch(r"/[A-Za-z0-9_./-]+", name) and "/../" not in f"{name}/"):
            return name
        raise ValueError(f"{name!r} is not a database name volkeeper takes: use 1-63 "
                         "letters, digits, '_', '.' or '-' (not first); for SQLite an "
                         "absolute file path such as /data/copy.db")

    @field_validator("paths")
    @classmethod
    def _clean_paths(cls, paths: list[str] | None) -> list[str] | None:
        if paths is None:
            return None
        out = []
        for p in paths:
            clean = p.strip().lstrip("/")
            clean = clean[2:] if clean.startswith("./") else clean
            clean = clean.rstrip("/")
            parts = clean.split("/")
            if not clean or "\x00" in clean or any(x in ("", ".", "..") for x in parts):
                raise ValueError(f"invalid path {p!r}: use a path inside the volume such as "
                                 "'db/base' (no '..', no empty segments)")
            out.append(clean)
        # once each, and none inside another one given (its directory brings it): GNU tar
        # fails a name no member was extracted for ("db/base: Not found in archive")
        return [c for i, c in enumerate(out) if c not in out[:i]
                and not any(c.startswith(k + "/") for k in out)]


class BackupPatch(Input):
    add_tags: list[str] = Field(default_factory=list, max_length=50)
    remove_tags: list[str] = Field(default_factory=list, max_length=50)
    pinned: bool | None = None
    host: str | None = Field(default=None, max_length=200, description="repo backups: host "
                             "whose worker writes the change into the snapshot (default: the "
                             "backup's host)")


class CopyIn(Input):
    target: str = Field(pattern=NAME, max_length=100, description="destination target")
    host: str | None = Field(default=None, max_length=200,
                             description="host whose worker copies (default: the backup's)")


class TargetJobIn(Input):
    host: str | None = Field(default=None, max_length=200, description="host whose worker "
                             "runs the job (default: embedded, this host; fleet, the online "
                             "host that most recently backed up to the target)")


class PruneIn(TargetJobIn):
    dry_run: bool = False


class RepairIn(TargetJobIn):
    dry_run: bool = Field(default=False, description="only report what would be done")
    read_data: bool = Field(default=False, description="read every pack first and repair "
                            "what is damaged (otherwise: what checks recorded as damaged)")
    forget_broken: bool = Field(default=False, description="rewrite the snapshots that need "
                                "lost data without the broken files (tagged repaired) and "
                                "forget the originals")


class TargetMigrateIn(TargetJobIn):
    destination: str = Field(pattern=NAME, max_length=100, description="the target the "
                             "backups move to")
    volumes: list[str] = Field(default_factory=list, max_length=1000, description="only the "
                               "backups of these volumes (default: all)")
    delete_source: bool = Field(default=False, description="forget each backup at the "
                                "source once its copy verified (a pinned one is kept)")


class SnapshotsIn(TargetJobIn):
    adopt: bool = Field(default=False, description="add the snapshots the catalog does not "
                        "know to it as backups (after losing or replacing the database)")


class KeyAddIn(TargetJobIn):
    new_password: str = Field(min_length=1, max_length=1024,
                              description="passphrase of the new key; sent to the worker in "
                              "the task message only, never stored or returned")


class VerifyIn(Input):
    read_data: bool = Field(
        default=False, description="repo snapshots: read back, decrypt and re-hash every "
        "blob the snapshot references (default: a structure check). Archives are always "
        "read whole.")
    subset: str | float | None = Field(
        default=None, description="repo snapshots: read back a random share of the "
        "snapshot's packs, in percent (\"5%\" or 5). Refused for archives.")
    seed: int | None = Field(default=None, ge=0, lt=2**32,
                             description="seed of the subset's random choice (reported "
                             "in the result; random when not given)")
    host: str | None = Field(default=None, max_length=200,
                             description="host whose worker verifies (default: the "
                             "backup's); also accepted as the query parameter ?host=")

    @model_validator(mode="after")
    def _seed_needs_subset(self) -> VerifyIn:
        if self.seed is not None and self.subset is None:
            raise ValueError("seed only seeds a subset's random choice: give subset "
                             "too (e.g. \"5%\"), or leave seed out")
        return self


class DrillIn(Input):
    backup_id: str = Field(min_length=1, max_length=32)
    host: str | None = Field(default=None, max_length=200,
                             description="host to drill on (default: the backup's host)")


def problems(errors: list[Any]) -> list[dict[str, str]]:
    """``[{field, problem}]`` of pydantic's errors (the locations without body/query)."""
    fields = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        problem = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":  # loc: ("body", character offset)
            detail = (err.get("ctx") or {}).get("error") or "JSON decode error"
            fields.append({"field": "body", "problem": f"not valid JSON ({detail} at "
                           f"character {loc[0] if loc else 0})"})
            continue
        if tuple(err.get("loc", ())) == ("body",):
            problem = (_BODY_PROBLEMS.get(str(err.get("type"))) or problem)
        if err.get("type") == "string_pattern_mismatch" and (
                err.get("ctx") or {}).get("pattern") == NAME:  # not the regex itself
            problem = (f"{err.get('input')!r} is not a name: use letters, digits, '_', '.' "
                       "and '-', starting with a letter or digit")
        fields.append({"field": ".".join(loc) or "body", "problem": problem})
    return fields


#: what a request whose body is missing or no JSON object is told (pydantic's words name
#: dictionaries and "fields to extract")
_BODY_PROBLEMS = {
    "missing": "this request needs a JSON object as its body "
               "(Content-Type: application/json); its fields: /api/docs",
    "model_attributes_type": "the body must be a JSON object "
                             "(Content-Type: application/json)",
    "dict_type": "the body must be a JSON object (Content-Type: application/json)",
}


class InvalidRequest(InvalidInput):
    """A request that fails its model; ``fields`` names each bad field and its problem."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__(f"invalid request: {', '.join(f['field'] for f in fields)}",
                         "; ".join(f"{f['field']}: {f['problem']}" for f in fields))
        self.fields = fields


def invalid_request(errors: list[Any]) -> InvalidRequest:
    """The error both fronts report for a request that fails its model."""
    return InvalidRequest(problems(errors))


def parse(model: type[M], data: dict[str, Any]) -> M:
    """``data`` validated by ``model``; InvalidInput (naming each bad field) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise invalid_request(list(e.errors())) from None
