"""The broker never sees a task secret: a key job's new passphrase, sent through the
fleet's dispatcher to a real Redis, is absent from the raw message body in the queue;
the worker side opens the sealed kwargs to the passphrase, for that job only."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from api.dispatch import CeleryDispatcher
from common.config import Settings
from common.jobs.names import TASK_KEYS, queue_for
from common.secretbox import unseal_task_secrets

pytestmark = pytest.mark.integration
PASS = "the-new-repository-passphrase-0451"


def test_the_redis_message_of_a_key_job_holds_no_passphrase(
        redis_server: Any, tmp_path: Path) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/7"  # a database of its own
    r = redis.Redis.from_url(url)
    r.flushdb()
    settings = Settings(home=tmp_path, database_url="sqlite://", redis_url=url,
                        secret_key="fleet-secret-" + "k" * 32)
    CeleryDispatcher(url, settings).send(TASK_KEYS, "nobody", {"job_id": "j1"},
                                         secrets={"new_password": PASS})
    raw = r.lrange(queue_for("nobody", TASK_KEYS), 0, -1)
    assert len(raw) == 1
    message = json.loads(raw[0])
    body = base64.b64decode(message["body"])
    everything = raw[0] + body + json.dumps(message["headers"]).encode()
    assert PASS.encode() not in everything and b"new_password" not in everything
    _, kwargs, _ = json.loads(body)
    assert unseal_task_secrets(kwargs, settings) == {"job_id": "j1", "new_password": PASS}
    r.flushdb()
