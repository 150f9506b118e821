"""Fuzzing a running volkeeper API from its own OpenAPI schema (schemathesis + hypothesis).

``fuzz_api`` loads ``/api/v1/openapi.json`` with the admin token and sends, for every
operation, generated requests of two kinds — *positive* (valid by the schema) and
*negative* (invalid: wrong types, missing fields, out-of-range values) — each twice: with
every parameter generated, and with the path parameters pinned to objects that exist
(a host, a volume, a target, a backup, a job) so the requests reach past the lookups.
Operations that delete (``DELETE``) go last, so pinned deletes do not starve the rest.

Each response is checked for two things: its status is below 500, and neither its body
nor its headers hold a secret of the set-up (``needles``), also inside any base64 token
(how the secrets scan of tests/integration/fleet/test_secrets_scan.py looks). Nothing is
raised while fuzzing: the report counts requests, statuses, server errors and leaks, so
one run gives the whole figure. The seed fixes what hypothesis generates; ``budget``
(seconds) bounds the run, split evenly over the operations still to go.

Used by tests/integration/api/test_fuzz.py: bounded in CI, and the longer run behind
docs/reliability.md with VOLKEEPER_TEST_FUZZ_SECONDS / VOLKEEPER_TEST_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

_BASE64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")


@dataclass
class FuzzReport:
    """What one fuzzing run sent and what came back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        top = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.requests} requests to {len(self.per_operation)} operation variants in "
                f"{self.seconds:.0f}s; statuses {top}; server errors "
                f"{len(self.server_errors)}; leaks {len(self.leaks)}; transport errors "
                f"{len(self.transport_errors)}")


def leaked(data: bytes, needles: dict[str, str]) -> list[str]:
    """Names of the needles found in ``data`` or in any base64 token of it."""
    raw = data
    for token in _BASE64.findall(data):
        try:
            raw += b"\n" + base64.b64decode(token + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            continue
    return [name for name, value in needles.items() if value.encode() in raw]


def _pins_for(path: str, names: list[str], pins: dict[str, str]) -> dict[str, str] | None:
    """Existing objects for the path parameters ``names`` of ``path`` (None: no pinning)."""
    out: dict[str, str] = {}
    for name in names:
        if name == "name":
            key = "target" if "/targets/" in path else "volume" if "/volumes/" in path else ""
        else:
            key = {"backup_id": "backup", "job_id": "job", "host": "host",
                   "key_id": "key"}.get(name, "")
        if key not in pins:
            return None
        out[name] = pins[key]
    return out


def _variants(schema: Any, pins: dict[str, str]) -> list[tuple[str, Any, dict[str, str]]]:
    """(label, operation, pinned path parameters) in the order to fuzz them."""
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        names = [p.name for p in op.path_parameters]
        out.append((f"{op.method.upper()} {op.path}", op, {}))
        pinned = _pins_for(op.path, names, pins) if names else None
        if pinned:
            out.append((f"{op.method.upper()} {op.path} (pinned)", op, pinned))
    return sorted(out, key=lambda v: (v[1].method.upper() == "DELETE", v[0]))


def fuzz_api(base_url: str, token: str, needles: dict[str, str], *, seed: int = 1,
             examples: int = 20, budget: float = 60.0, pins: dict[str, str] | None = None,
             timeout: float = 20.0) -> FuzzReport:
    """Fuzz every operation of the API at ``base_url`` (see the module docstring)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    auth = {"Authorization": f"Bearer {token}"}
    doc = httpx.get(base_url + "/api/v1/openapi.json", headers=auth, timeout=30)
    doc.raise_for_status()
    schema = schemathesis.openapi.from_dict(doc.json())
    report = FuzzReport()
    began = time.monotonic()
    variants = [(label + f" [{mode.value}]", op, pinned, mode)
                for label, op, pinned in _variants(schema, pins or {})
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for i, (label, op, pinned, mode) in enumerate(variants):
        left = budget - (time.monotonic() - began)
        stop_at = time.monotonic() + max(0.0, left) / (len(variants) - i)

        run = settings(max_examples=examples, deadline=None, database=None,
                       phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                       )(given(op.as_strategy(generation_mode=mode,
                                              path_parameters=pinned or None))(
                           _sender(report, label, stop_at, base_url, auth, needles, timeout)))
        try:
            fix_seed(seed + i)(run)()
        except Unsatisfiable:  # nothing to make invalid (an operation without input)
            continue
    report.seconds = time.monotonic() - began
    return report


def _sender(report: FuzzReport, label: str, stop_at: float, base_url: str,
            auth: dict[str, str], needles: dict[str, str], timeout: float) -> Any:
    """The test function hypothesis calls with each generated case."""

    def send(case: Any) -> None:
        if time.monotonic() > stop_at:
            return
        report.requests += 1
        report.per_operation[label] += 1
        try:
            r = case.call(base_url=base_url, headers=auth, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - counted: the server hung or hung up
            report.transport_errors.append(f"{label}: {type(e).__name__}: {e}")
            return
        report.statuses[r.status_code] += 1
        if r.status_code >= 500:
            report.server_errors.append(
                f"{label}: {r.status_code} {r.text[:300]}\n  {case.as_curl_command()}")
        found = leaked(r.content + str(dict(r.headers)).encode(), needles)
        if found:
            report.leaks.append(f"{label}: {', '.join(found)} in {r.text[:200]}")

    return send
