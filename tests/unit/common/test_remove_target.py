"""A target that still holds backups is not removed, and the refusal names them: a
replace-restore's safety snapshot is not listed by `volkeeper backups`, so "delete those
backups first" alone left the user without a way to find what to forget."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from common.db import Database, catalog
from common.db.migrate import upgrade
from common.errors import Conflict


def test_the_refusal_names_the_backups_safety_snapshots_too(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db, quiet=True)
    with db.session() as s:
        catalog.ensure_target(s, "t2", (tmp_path / "t2").as_uri())
        safety = catalog.add_backup(s, host="h", volume="v", target="t2", format="tar.zst",
                                    key="k", manifest_key="k.m", checksum="0" * 64,
                                    kind="safety").id
    with db.session() as s, pytest.raises(Conflict) as e:
        catalog.remove_target(s, "t2")
    assert f"{safety} (safety)" in e.value.message
    assert "volkeeper forget ID" in (e.value.hint or "")
    with db.session() as s:
        catalog.delete_backup(s, safety)
    with db.session() as s:
        catalog.remove_target(s, "t2")
    with db.session() as s:
        assert [t.name for t in catalog.list_targets(s)] == []
    db.dispose()


def test_a_target_a_policy_names_is_not_removed(tmp_path: Path) -> None:
    """Removed, the policy's copies to it never happened (a warning in serve's log only)
    and the policy could not even be disabled any more (each change checks its targets)."""
    from common.db import Policy

    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db, quiet=True)
    with db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "l").as_uri())
        catalog.ensure_target(s, "t2", (tmp_path / "t2").as_uri())
        s.add(Policy(name="shop", selection={"volumes": ["v"]}, schedule="@daily",
                     tz="UTC", targets=["local", "t2"], retention={}))
        s.add(Policy(name="other", selection={"volumes": ["w"]}, schedule="@daily",
                     tz="UTC", targets=["local"], retention={}))
    with db.session() as s, pytest.raises(Conflict) as e:
        catalog.remove_target(s, "t2")
    assert e.value.message == "target 't2' is named by policy 'shop'"
    assert "--copy-to ''" in (e.value.hint or "")
    with db.session() as s, pytest.raises(Conflict) as e:
        catalog.remove_target(s, "local")
    assert e.value.message == "target 'local' is named by policies 'other', 'shop'"
    with db.session() as s:
        s.get(Policy, s.scalar(select(Policy.id).where(Policy.name == "shop"))).targets = [
            "local"]
    with db.session() as s:
        catalog.remove_target(s, "t2")
    with db.session() as s:
        assert [t.name for t in catalog.list_targets(s)] == ["local"]
    db.dispose()
