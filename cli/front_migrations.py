"""The migration part of the ``Front`` interface, and its two implementations: embedded
(``LocalMigrations``: ``common.jobs.migrations`` in this process, whose command also drives
the migration: there is no server to do it) and remote (``RemoteMigrations``:
``/api/v1/migrations``). Both return the same JSON-able views."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from cli.errors import Json

if TYPE_CHECKING:
    from common.jobs.embedded import EmbeddedRuntime
    from common.jobs.migration_flow import Coordinator
    from common.jobs.migrations import MigrationService


class MigrationFront(Protocol):
    def migrate(self, body: Json) -> Json:
        """Start a migration (or, with ``dry_run``, only check it)."""
        ...
    def migrations(self, limit: int) -> list[Json]: ...
    def migration(self, migration_id: str) -> Json: ...
    def migration_report(self, migration_id: str) -> str:
        """The report as Markdown."""
        ...
    def cancel_migration(self, migration_id: str) -> Json: ...
    def rollback_migration(self, migration_id: str) -> Json: ...
    def drive_migration(self, migration_id: str) -> Json | None:
        """Embedded: advance the migration one step here (None remotely: the server's
        coordinator does); the migration as it is now."""
        ...
    def wait_migration(self) -> None:
        """Between two looks at a followed migration: embedded, until one of this
        process's jobs ends (at most a second); remotely a second."""
        ...
    def evacuate(self, body: Json) -> Json: ...
    def evacuations(self, limit: int) -> list[Json]: ...
    def evacuation(self, evacuation_id: str) -> Json:
        """The evacuation (embedded: its migrations advanced here first)."""
        ...


class LocalMigrations:
    """Mixed into ``cli.local.LocalFront`` (which has ``runtime``)."""

    runtime: EmbeddedRuntime

    def _migrations(self) -> MigrationService:
        from common.jobs.migrations import MigrationService

        return MigrationService(self.runtime.service)

    def migrate(self, body: Json) -> Json:
        from common.jobs.inputs import parse
        from common.jobs.migration_inputs import MigrationIn

        request = parse(MigrationIn, body).model_dump()
        return self._migrations().submit(request=request, requested_by=_user())

    def migrations(self, limit: int) -> list[Json]:
        return self._migrations().list(limit=limit)

    def migration(self, migration_id: str) -> Json:
        return self._migrations().get(migration_id)

    def migration_report(self, migration_id: str) -> str:
        from common.jobs.migration_views import markdown

        return markdown(self._migrations().get(migration_id))

    def cancel_migration(self, migration_id: str) -> Json:
        return self._migrations().cancel(migration_id=migration_id, requested_by=_user())

    def rollback_migration(self, migration_id: str) -> Json:
        return self._migrations().rollback(migration_id=migration_id, requested_by=_user())

    def _driver(self) -> Coordinator:
        from common.jobs.migration_flow import Coordinator

        coordinator: Coordinator | None = getattr(self, "_coordinator", None)
        if coordinator is None:
            coordinator = Coordinator(self.runtime.service)
            self._coordinator = coordinator
        return coordinator

    def drive_migration(self, migration_id: str) -> Json | None:
        self._driver().advance(migration_id)
        return self.migration(migration_id)

    def wait_migration(self) -> None:
        self._mark: int = self._driver().pause(getattr(self, "_mark", 0), 0.2)

    def evacuate(self, body: Json) -> Json:
        from common.jobs.evacuations import EvacuationService

        return EvacuationService(self._migrations()).evacuate(**body, requested_by=_user())

    def evacuations(self, limit: int) -> list[Json]:
        from common.jobs.evacuations import EvacuationService

        return EvacuationService(self._migrations()).list(limit=limit)

    def evacuation(self, evacuation_id: str) -> Json:
        from common.jobs.evacuations import EvacuationService
        from common.jobs.migration_flow import Coordinator

        Coordinator(self.runtime.service, holder="cli-evacuate").tick()
        return EvacuationService(self._migrations()).get(evacuation_id)


class RemoteMigrations:
    """Mixed into ``cli.remote.RemoteFront`` (which has ``_call`` and ``http``)."""

    def _call(self, method: str, path: str, *, body: Json | None = None,
              params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def migrate(self, body: Json) -> Json:
        return self._call("POST", "/migrations", body=body)

    def wait_migration(self) -> None:
        time.sleep(1.0)  # the server's coordinator drives it

    def migrations(self, limit: int) -> list[Json]:
        return self._call("GET", "/migrations", params={"limit": limit})

    def migration(self, migration_id: str) -> Json:
        return self._call("GET", f"/migrations/{migration_id}")

    def migration_report(self, migration_id: str) -> str:
        from common.jobs.migration_views import markdown

        return markdown(self.migration(migration_id))

    def cancel_migration(self, migration_id: str) -> Json:
        return self._call("POST", f"/migrations/{migration_id}/cancel")

    def rollback_migration(self, migration_id: str) -> Json:
        return self._call("POST", f"/migrations/{migration_id}/rollback")

    def drive_migration(self, migration_id: str) -> Json | None:
        return None

    def evacuate(self, body: Json) -> Json:
        return self._call("POST", "/evacuations", body=body)

    def evacuations(self, limit: int) -> list[Json]:
        return self._call("GET", "/evacuations", params={"limit": limit})

    def evacuation(self, evacuation_id: str) -> Json:
        return self._call("GET", f"/evacuations/{evacuation_id}")


def _user() -> str:
    from common.audit import LOCAL_ACTOR

    return LOCAL_ACTOR
