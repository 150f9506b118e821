"""The example alert rules and the Grafana dashboard use only metrics ``/metrics``
exports, and both files parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from common import metrics
from common.config import Settings
from common.db import Database
from common.db.migrate import upgrade

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _exported(tmp_path: Path) -> set[str]:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    names = set()
    for fam in metrics.registry(db, Settings(home=tmp_path)).collect():
        names.add(fam.name)
        names |= {fam.name + suffix for suffix in ("_total", "_sum", "_count")}
    db.dispose()
    return names


def _used(text: str) -> set[str]:
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\bvolkeeper_[a-z_]+", code))


def test_alert_rules_and_dashboard_name_only_exported_metrics(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    rules = (DEPLOY / "prometheus/alerts.yml").read_text()
    assert yaml.safe_load(rules)["groups"][0]["rules"]
    dashboard = (DEPLOY / "grafana/volkeeper-dashboard.json").read_text()
    assert json.loads(dashboard)["panels"]
    for name, text in (("alerts.yml", rules), ("dashboard", dashboard)):
        unknown = _used(text) - exported
        assert not unknown, f"{name} names metrics /metrics does not export: {unknown}"
