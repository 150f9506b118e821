"""Options that mean nothing alone are refused, never silently ignored: a verify's seed
without a subset (API input model and ``volkeeper verify``); an empty exclude pattern
(of a backup or a policy: it would be dropped) — a label's empty item is just skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import InvalidInput
from common.hooks import labels
from common.jobs.inputs import BackupIn, VerifyIn, parse
from common.jobs.policy_consistency import ConsistencyFields
from tests.unit.cli.test_release import _cli


def test_a_seed_without_a_subset_is_refused() -> None:
    with pytest.raises(InvalidInput) as e:
        parse(VerifyIn, {"seed": 9})
    assert "subset" in str(e.value.to_dict()), e.value.to_dict()
    assert parse(VerifyIn, {"seed": 9, "subset": "5%"}).seed == 9


def test_the_cli_refuses_seed_without_subset(tmp_path: Path) -> None:
    p = _cli(tmp_path, "verify", "b1", "--seed", "3")
    assert p.returncode == 1 and "--subset" in p.stderr, p


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_exclude_pattern_is_refused(blank: str) -> None:
    for model, body in ((BackupIn, {"volume": "data"}), (ConsistencyFields, {})):
        with pytest.raises(InvalidInput) as e:
            parse(model, body | {"excludes": ["*.tmp", blank]})
        assert "exclude pattern is empty" in str(e.value), e.value
        assert parse(model, body | {"excludes": ["*.tmp"]}).excludes == ["*.tmp"]
    assert labels.patterns("a,,b, ") == ["a", "b"]
