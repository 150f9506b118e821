"""The remote front: the REST API of a volkeeper server over HTTP (httpx), bearer token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from cli.errors import CliError, Json
from cli.front_migrations import RemoteMigrations
from cli.front_policies import RemotePolicies


class RemoteFront(RemotePolicies, RemoteMigrations):
    embedded = False

    def __init__(self, server: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=30)

    def __enter__(self) -> RemoteFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _call(self, method: str, path: str, *, body: Json | None = None,
              params: dict[str, Any] | None = None) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self.http.request(method, "/api/v1" + path, json=body, params=query)
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach the volkeeper API at {self.server}: {e}",
                           "check --server / VOLKEEPER_SERVER and that `volkeeper serve` runs"
                           ) from None
        if resp.status_code >= 400:
            try:
                err = resp.json().get("error", {})
            except ValueError:
                err = {"message": resp.text[:500]}
            raise CliError(err.get("message", f"HTTP {resp.status_code}"), err.get("hint"))
        return None if resp.status_code == 204 else resp.json()

    # --- reads ---------------------------------------------------------------------
    def hosts(self) -> list[Json]:
        return self._call("GET", "/hosts")

    def volumes(self, host: str | None) -> list[Json]:
        return self._call("GET", "/volumes", params={"host": host})

    def backups(self, **filters: Any) -> list[Json]:
        if filters.get("pinned") is not None:
            filters["pinned"] = str(filters["pinned"]).lower()
        return self._call("GET", "/backups", params=filters)

    def backup_info(self, backup_id: str) -> Json:
        return self._call("GET", f"/backups/{quote(backup_id, safe='')}")

    def jobs(self, limit: int, kind: str | None = None) -> list[Json]:
        return self._call("GET", "/jobs", params={"limit": limit, "kind": kind})

    def job(self, job_id: str) -> Json:
        return self._call("GET", f"/jobs/{job_id}")

    def pause(self, job_id: str, seconds: float, *, until_end: bool = False) -> None:
        import time

        time.sleep(seconds)

    def release_job(self, job_id: str, reason: str | None) -> Json:
        return self._call("POST", f"/jobs/{job_id}/release", body={"reason": reason})

    def cancel_job(self, job_id: str) -> Json:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def create_token(self, name: str, role: str) -> Json:
        return self._call("POST", "/tokens", body={"name": name, "role": role})

    def tokens(self) -> list[Json]:
        return self._call("GET", "/tokens")

    def revoke_token(self, name: str) -> Json:
        return self._call("DELETE", f"/tokens/{name}")

    def audit(self, query: Json) -> list[Json]:
        return self._call("GET", "/audit", params=query)

    def targets(self) -> list[Json]:
        return self._call("GET", "/targets")

    def add_target(self, body: Json) -> Json:
        return self._call("POST", "/targets", body=body)

    def remove_target(self, name: str) -> None:
        self._call("DELETE", f"/targets/{name}")

    def remove_host(self, name: str, update_policies: bool = False) -> Json:
        return self._call("DELETE", f"/hosts/{name}",
                          params={"update_policies": True if update_policies else None})

    # --- jobs ----------------------------------------------------------------------
    def backup(self, body: Json) -> Json:
        return self._call("POST", "/backups", body=body)

    def group_backup(self, body: Json) -> Json:
        return self._call("POST", "/groups", body=body)

    def group_restore(self, group_id: str, body: Json) -> list[Json]:
        return list(self._call("POST", f"/groups/{group_id}/restore", body=body))

    def restore(self, body: Json) -> Json:
        return self._call("POST", "/restores", body=body)

    def validate_restore(self, body: Json) -> Json:
        return self._call("POST", "/restores/validate", body=body)

    def rollback(self, job_id: str) -> Json:
        return self._call("POST", f"/restores/{job_id}/rollback",
                          body={})

    def verify(self, backup_id: str, host: str | None, body: Json) -> Json:
        return self._call("POST", f"/backups/{backup_id}/verify",
                          body=body, params={"host": host})

    def drill(self, body: Json) -> Json:
        return self._call("POST", "/drills", body=body)

    def label(self, backup_id: str, body: Json) -> Json:
        return self._call("PATCH", f"/backups/{backup_id}",
                          body=body)

    def forget(self, backup_id: str, host: str | None) -> Json:
        return self._call("DELETE", f"/backups/{backup_id}",
                          params={"host": host})

    def copy(self, backup_id: str, body: Json) -> Json:
        return self._call("POST", f"/backups/{backup_id}/copy",
                          body=body)

    def target_job(self, action: str, target: str, body: Json) -> Json:
        """POST /targets/{target}/{action} (prune, repair, stats, snapshots, unlock, keys)."""
        return self._call("POST", f"/targets/{target}/{action}",
                          body=body)

    def remove_key(self, target: str, key_id: str, host: str | None) -> Json:
        return self._call("DELETE", f"/targets/{target}/keys/{key_id}",
                          params={"host": host})
