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


def _host_ip(spec: object) -> str:
    """The host address a compose ``ports`` entry binds ('' = every interface), with
    ``${VAR:-default}`` read as its default (what runs when .env does not set it)."""
    if isinstance(spec, dict):
        return str(spec.get("host_ip", ""))
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(spec))
    assert "${" not in text, f"{spec}: a published port without a safe default"
    host = text.rpartition(":")[0]  # [ip:]host_port of ip:host_port:container_port
    return host.rpartition(":")[0]


def test_no_compose_file_publishes_a_port_on_every_interface_by_default() -> None:
    seen = 0
    for name in ("docker-compose.control.yml", "docker-compose.agent.yml"):
        for svc_name, svc in _compose(name)["services"].items():
            for spec in svc.get("ports") or []:
                seen += 1
                ip = _host_ip(spec)
                assert ip == "127.0.0.1", (
                    f"{name}: {svc_name} publishes {spec!r} on {ip or 'every interface'}")
    assert seen >= 5  # postgres, redis, api, flower, the TLS proxy


def test_postgres_uses_scram_and_redis_a_password() -> None:
    control = _compose("docker-compose.control.yml")["services"]
    pg_env = control["postgres"]["environment"]
    assert pg_env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "--auth-host=scram-sha-256" in pg_env["POSTGRES_INITDB_ARGS"]
    assert "--requirepass" in control["redis"]["command"]
    proxy = control["tls-proxy"]
    assert proxy["profiles"] == ["tls"]
    assert "reverse_proxy api:8470" in (DEPLOY / "Caddyfile").read_text()
    readme = (DEPLOY / "README.md").read_text()
    assert "WireGuard" in readme and "SSH tunnel" in readme and "sslmode=verify-full" in readme
