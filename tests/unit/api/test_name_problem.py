"""A bad name is told in words, not as pydantic's "String should match pattern
'^[A-Za-z0-9][A-Za-z0-9_.-]*$'" (`volkeeper policy create "bad name"`)."""

from __future__ import annotations

import pytest

from common.jobs.inputs import InvalidRequest, parse
from common.jobs.policy_inputs import PolicyIn


def test_a_bad_name_is_explained() -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(PolicyIn, {"name": "bad name", "volumes": ["v"], "schedule": "@daily",
                         "targets": ["local"]})
    assert e.value.fields == [{"field": "name", "problem": (
        "'bad name' is not a name: use letters, digits, '_', '.' and '-', starting with a "
        "letter or digit")}]
