"""Starting the fleet's processes by hand with a setting wrong: one clear error naming
what to fix, never a traceback, never the database password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.db import Database
from common.db.migrate import upgrade
from common.errors import Unavailable, VolkeeperError

REPO = Path(__file__).resolve().parents[3]
#: nothing listens on port 1: the connection is refused at once
DOWN = "postgresql+psycopg2://vk:s3cretpw@127.0.0.1:1/volkeeper"


def test_an_unreachable_database_is_unavailable_naming_it_without_the_password() -> None:
    db = Database(DOWN)
    try:
        with pytest.raises(Unavailable) as e:
            upgrade(db)
    finally:
        db.dispose()
    assert e.value.message.startswith(
        "cannot reach the database postgresql+psycopg2://vk:***@127.0.0.1:1/volkeeper: ")
    assert "s3cretpw" not in e.value.message + (e.value.hint or "")
    assert "VOLKEEPER_DATABASE_URL" in (e.value.hint or "")


@pytest.mark.parametrize("command", [["serve", "--port", "1"],
                                     ["worker", "--host", "h1"],
                                     ["db", "upgrade"]])
def test_serve_worker_and_db_upgrade_say_the_database_is_unreachable(
        tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    env |= {"VOLKEEPER_HOME": str(tmp_path), "VOLKEEPER_DATABASE_URL": DOWN,
            "VOLKEEPER_REDIS_URL": "redis://127.0.0.1:1/0", "VOLKEEPER_API_TOKEN": "t0ken",
            "VOLKEEPER_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    p = subprocess.run([sys.executable, "-m", "cli.main", *command], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-2000:]
    assert "error: cannot reach the database postgresql+psycopg2://vk:***@127.0.0.1:1" in p.stderr
    assert "s3cretpw" not in p.stderr + p.stdout


@pytest.mark.parametrize("token", ["", "  "])
def test_the_fleet_api_refuses_to_start_with_an_empty_token(tmp_path: Path, token: str) -> None:
    from api.main import create_app

    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'f.db'}",
                        redis_url="redis://127.0.0.1:1/0", api_token=SecretStr(token))
    with pytest.raises(VolkeeperError) as e:
        create_app(settings, sweep_every=3600)
    assert "VOLKEEPER_API_TOKEN is not set" in e.value.message
