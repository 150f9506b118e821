"""The deployment files agree with the product: every ``VOLKEEPER_*`` name they use is a
setting, the compose files parse, and the repository passphrase reaches the agents only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from common.config import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _compose(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(data, dict) and data.get("services"), f"{name} has no services"
    return data


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"\bVOLKEEPER_[A-Z0-9_]+", text))


def test_every_volkeeper_name_in_the_deploy_files_is_a_setting() -> None:
    known = {f"VOLKEEPER_{name.upper()}" for name in Settings.model_fields}
    # read by the CLI only (not settings of a server process)
    cli_only = {"VOLKEEPER_SERVER"}
    for path in sorted(DEPLOY.iterdir()):
        if path.is_file() and path.suffix in ("", ".yml", ".example", ".md"):
            unknown = _env_names(path.read_text()) - known - cli_only
            assert not unknown, f"{path.name} names unknown settings {sorted(unknown)}"


def test_the_repository_passphrase_reaches_the_agents_only() -> None:
    env_example = (DEPLOY / ".env.example").read_text()
    assigned = re.findall(r"^\s*(VOLKEEPER_REPOSITORY_PASSWORD\w*)\s*=", env_example, re.M)
    assert assigned == [], "the shared .env (which the API reads too) must not hold it"
    control = _compose("docker-compose.control.yml")
    for name, svc in control["services"].items():
        env = svc.get("environment") or {}
        assert not any("REPOSITORY_PASSWORD" in k for k in env), name
        assert not svc.get("secrets"), name
    agent = _compose("docker-compose.agent.yml")
    worker = agent["services"]["worker"]
    assert worker["secrets"] == ["repository_password"]
    secret_path = "/run/secrets/repository_password"
    assert worker["environment"]["VOLKEEPER_REPOSITORY_PASSWORD_FILE"] == secret_path
    assert "repository.password" in agent["secrets"]["repository_password"]["file"]
