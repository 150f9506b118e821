"""Task secrets (a new repository passphrase) cross the broker sealed: the Celery message's
kwargs and its repr hold no passphrase; the worker opens it, for that job only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.dispatch import CeleryDispatcher
from common.config import Settings
from common.errors import InvalidInput
from common.secretbox import seal_task_secrets, unseal_task_secrets

PASS = "correct horse battery staple"


def test_the_celery_message_carries_no_passphrase_and_the_worker_opens_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path, database_url="sqlite://", secret_key="k" * 40)
    dispatcher = CeleryDispatcher("memory://", settings)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(dispatcher.app, "send_task",
                        lambda name, **kw: sent.append(kw | {"name": name}))
    dispatcher.send("volkeeper.keys", "h1", {"job_id": "j1"}, secrets={"new_password": PASS})
    [msg] = sent
    wire = json.dumps(msg["kwargs"]) + msg["kwargsrepr"]
    assert PASS not in wire and "new_password" not in wire
    assert unseal_task_secrets(msg["kwargs"], settings) == {"job_id": "j1",
                                                            "new_password": PASS}
    other = Settings(home=tmp_path, database_url="sqlite://", secret_key="x" * 40)
    with pytest.raises(InvalidInput, match="different VOLKEEPER_SECRET_KEY"):
        unseal_task_secrets(msg["kwargs"], other)
    with pytest.raises(InvalidInput, match="another job"):
        unseal_task_secrets(msg["kwargs"] | {"job_id": "j2"}, settings)


def test_without_a_secret_key_the_fleet_refuses_to_send_a_secret(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="sqlite://")
    with pytest.raises(InvalidInput, match="no secret key") as e:
        seal_task_secrets({"new_password": PASS}, "j1", settings)
    assert "VOLKEEPER_SECRET_KEY" in str(e.value.hint)


def test_a_message_without_secrets_passes_unchanged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert unseal_task_secrets({"job_id": "j1"}, settings) == {"job_id": "j1"}
