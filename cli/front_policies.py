"""The policy part of the ``Front`` interface, and its two implementations: embedded
(``LocalPolicies``: ``common.jobs.policies`` in this process) and remote
(``RemotePolicies``: ``/api/v1/policies``). Both return the same JSON-able views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from cli.errors import Json

if TYPE_CHECKING:
    from common.jobs.embedded import EmbeddedRuntime
    from common.jobs.policies import PolicyService
    from common.jobs.policy_runs import RunResult


class PolicyFront(Protocol):
    def policies(self) -> list[Json]: ...
    def policy(self, name: str) -> Json: ...
    def create_policy(self, body: Json) -> Json: ...
    def update_policy(self, name: str, changes: Json) -> Json:
        """Change the fields in ``changes`` (a PATCH)."""
        ...
    def delete_policy(self, name: str) -> None: ...
    def run_policy(self, name: str) -> Json:
        """``{policy, jobs, skipped}``: the backups queued now."""
        ...
    def check_policy(self, name: str, kind: str) -> Json:
        """``{policy, jobs, skipped}``: the policy's ``kind`` (verify, drill) queued now."""
        ...
    def retention_preview(self, name: str) -> list[Json]: ...
    def policy_followups(self, job_ids: list[str]) -> list[Json] | None:
        """Embedded: copy and apply retention after these finished policy jobs now (the
        jobs it queued; None when a running server's scheduler does it). Remote: None."""
        ...
    def apply_policies(self, body: Json) -> Json:
        """``{policies, prune, dry_run}`` → ``{dry_run, changes}``."""
        ...


class LocalPolicies:
    """Mixed into ``cli.local.LocalFront`` (which has ``runtime``)."""

    runtime: EmbeddedRuntime

    def _policies(self) -> PolicyService:
        from common.jobs.policies import PolicyService

        return PolicyService(self.runtime.service)

    def policies(self) -> list[Json]:
        return _dump(self._policies().list_policies())

    def policy(self, name: str) -> Json:
        return _dump(self._policies().show(name))

    def create_policy(self, body: Json) -> Json:
        from common.jobs.inputs import parse
        from common.jobs.policy_inputs import PolicyIn

        return _dump(self._policies().create(parse(PolicyIn, body), actor=_user()))

    def update_policy(self, name: str, changes: Json) -> Json:
        from common.jobs.inputs import parse
        from common.jobs.policy_inputs import PolicyPatch

        return _dump(self._policies().patch(name, parse(PolicyPatch, changes), actor=_user()))

    def delete_policy(self, name: str) -> None:
        self._policies().delete(name, actor=_user())

    def run_policy(self, name: str) -> Json:
        return self._run_out(self._policies().run(name, actor=_user()))

    def check_policy(self, name: str, kind: str) -> Json:
        from common.jobs.policy_checks import run_check

        result = run_check(self._policies(), name, kind, actor=_user(), refuse_busy=True)
        return self._run_out(result)

    def _run_out(self, result: RunResult) -> Json:
        from common.jobs.policy_views import RunOut
        from common.jobs.views import job_out

        return _dump(RunOut(policy=result.policy, skipped=result.skipped,
                            jobs=[job_out(j, self.runtime.bus) for j in result.jobs]))

    def retention_preview(self, name: str) -> list[Json]:
        return _dump(self._policies().retention_preview(name))

    def policy_followups(self, job_ids: list[str]) -> list[Json] | None:
        from common.db.models import utcnow
        from common.jobs.policy_followups import follow_up_now
        from common.jobs.views import job_out

        queued = follow_up_now(self._policies(), job_ids, utcnow())
        if queued is None:
            return None
        return [_dump(job_out(j, self.runtime.bus)) for j in queued]

    def apply_policies(self, body: Json) -> Json:
        from common.jobs.inputs import parse
        from common.jobs.policy_inputs import ApplyIn

        return _dump(self._policies().apply(parse(ApplyIn, body), actor=_user()))


class RemotePolicies:
    """Mixed into ``cli.remote.RemoteFront`` (which has ``_call``)."""

    def _call(self, method: str, path: str, *, body: Json | None = None,
              params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def policies(self) -> list[Json]:
        return self._call("GET", "/policies")

    def policy(self, name: str) -> Json:
        return self._call("GET", f"/policies/{name}")

    def create_policy(self, body: Json) -> Json:
        return self._call("POST", "/policies", body=body)

    def update_policy(self, name: str, changes: Json) -> Json:
        return self._call("PATCH", f"/policies/{name}", body=changes)

    def delete_policy(self, name: str) -> None:
        self._call("DELETE", f"/policies/{name}")

    def run_policy(self, name: str) -> Json:
        return self._call("POST", f"/policies/{name}/run")

    def check_policy(self, name: str, kind: str) -> Json:
        return self._call("POST", f"/policies/{name}/{kind}")

    def retention_preview(self, name: str) -> list[Json]:
        return self._call("GET", f"/policies/{name}/retention-preview")

    def policy_followups(self, job_ids: list[str]) -> list[Json] | None:
        return None  # the server's scheduler does them

    def apply_policies(self, body: Json) -> Json:
        return self._call("POST", "/policies/apply", body=body)


def _user() -> str:
    from common.audit import LOCAL_ACTOR

    return LOCAL_ACTOR


def _dump(data: Any) -> Any:
    from common.jobs.views import dump

    return dump(data)
