"""Options that mean nothing alone are refused, never silently ignored: a verify's seed
without a subset (API input model and ``volkeeper verify``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import InvalidInput
from common.jobs.inputs import VerifyIn, parse
from tests.unit.cli.test_release import _cli


def test_a_seed_without_a_subset_is_refused() -> None:
    with pytest.raises(InvalidInput) as e:
        parse(VerifyIn, {"seed": 9})
    assert "subset" in str(e.value.to_dict()), e.value.to_dict()
    assert parse(VerifyIn, {"seed": 9, "subset": "5%"}).seed == 9


def test_the_cli_refuses_seed_without_subset(tmp_path: Path) -> None:
    p = _cli(tmp_path, "verify", "b1", "--seed", "3")
    assert p.returncode == 1 and "--subset" in p.stderr, p
